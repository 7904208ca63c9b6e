//! nursery-net's WebSocket client against a server nobody here wrote: Python `websockets`
//! (`tests/peers/ws_peer.py`), in every way a real server misbehaves — echo, clean close with
//! codes, abort, kill -9, SIGSTOP (half-open), invalid frames, an upgrade never answered, an
//! upgrade answered by a close, a 4xx upgrade, a 503 with `Retry-After`.
//!
//! Real clock and real sockets: the peer's ready line and log order everything; timeouts are
//! hang guards only. Without `NURSERY_PYTHON` each test prints a skip notice and passes (fails
//! under `CI=true`).

#[path = "support/python.rs"]
mod python;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nursery_net::{
    supervise, Backoff, Event, Heartbeat, LossReason, ProtocolError, Reconnect, Supervisor,
    WsConfig, WsConnection,
};
use python::{closed, returned, text_of, texts, Peer, HANG_GUARD};
use support::{AppError, Events};

async fn connect(peer: &Peer, config: WsConfig) -> WsConnection {
    tokio::time::timeout(HANG_GUARD, WsConnection::connect(peer.url(), config))
        .await
        .expect("hang guard: connect")
        .expect("connect")
}

/// Runs a body that says `go` and then reads every message until the loss; returns the texts
/// it read, what the library handed back unread, and the loss.
async fn read_until_lost(peer: &Peer, config: WsConfig) -> (Vec<String>, Vec<String>, AppError) {
    read_until_lost_with(peer, config, Supervisor::new()).await
}

/// `read_until_lost` under a given supervisor (a drain grace, say).
async fn read_until_lost_with(
    peer: &Peer,
    config: WsConfig,
    supervisor: Supervisor,
) -> (Vec<String>, Vec<String>, AppError) {
    let conn = connect(peer, config).await;
    let read = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&read);
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        supervisor.run(conn.clone(), |c| async move {
            c.send_text("go").await?;
            loop {
                let message = c.recv().await?;
                seen.lock().unwrap().push(text_of(&message));
            }
        }),
    )
    .await
    .expect("hang guard: supervise");
    let unread = returned(&out, &conn).unread.iter().map(text_of).collect();
    let read = read.lock().unwrap().clone();
    (read, unread, out.unwrap_err())
}

fn numbers(count: usize) -> Vec<String> {
    (0..count).map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn echo_numbered_messages_in_order_then_close_1000() {
    let Some(peer) = python::server("echo", "echo", &[]).await else {
        return;
    };
    let conn = connect(&peer, WsConfig::new()).await;
    let out: Result<Vec<String>, AppError> = supervise(conn, |c| async move {
        let mut echoed = Vec::new();
        for i in 0..200 {
            c.send_text(i.to_string()).await?;
        }
        for _ in 0..200 {
            echoed.push(text_of(&c.recv().await?));
        }
        Ok(echoed)
    })
    .await;
    assert_eq!(out.unwrap(), numbers(200));
    let lines = peer
        .wait_until(|l| closed(l, "1").map(|c| (c, l.to_vec())))
        .await;
    assert_eq!(
        lines.0,
        (1000, String::new()),
        "a normal exit closes with 1000"
    );
    assert_eq!(
        texts(&lines.1, "recv"),
        numbers(200),
        "the peer got each once, in order"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn clean_close_codes_and_reasons_reach_the_loss_reason() {
    for (code, reason) in [(1000, "done"), (1001, "going away"), (4000, "app: bye")] {
        let args = [
            "--count",
            "10",
            "--code",
            &code.to_string(),
            "--reason",
            reason,
        ];
        let Some(peer) = python::server("clean close", "burst-close", &args).await else {
            return;
        };
        let (_read, _unread, err) = read_until_lost(&peer, WsConfig::new()).await;
        assert_eq!(
            err.reason(),
            &LossReason::PeerClosed {
                code: Some(code),
                reason: Some(reason.to_string()),
            }
        );
        let (got, _) = peer.wait_until(|l| closed(l, "1")).await;
        assert_eq!(
            got, code,
            "the close handshake completed with the peer's code"
        );
    }
}

/// The peer sends 10 and closes cleanly; every message the library
/// received is either read by the body or handed back unread, in order.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_then_a_clean_close_loses_nothing() {
    for code in ["1000", "1001", "4000"] {
        let args = ["--count", "10", "--code", code, "--reason", "bye"];
        let Some(peer) = python::server("burst close", "burst-close", &args).await else {
            return;
        };
        let (mut read, unread, err) = read_until_lost(&peer, WsConfig::new()).await;
        assert!(err.reason().is_peer_closed(), "{err}");
        read.extend(unread);
        assert_eq!(read, numbers(10), "read by the body, then returned unread");
    }
}

/// With a drain grace the body itself reads everything buffered before a clean close, then
/// gets the loss from `recv`.
#[tokio::test(flavor = "current_thread")]
async fn with_drain_the_body_reads_the_whole_burst_before_the_loss() {
    let args = ["--count", "10", "--code", "1001", "--reason", "bye"];
    let Some(peer) = python::server("drain", "burst-close", &args).await else {
        return;
    };
    let drain = Supervisor::new().drain(Duration::from_secs(5));
    let (read, unread, err) = read_until_lost_with(&peer, WsConfig::new(), drain).await;
    assert!(err.reason().is_peer_closed(), "{err}");
    assert_eq!(read, numbers(10), "the body read all 10 itself");
    assert!(unread.is_empty());
}

/// Observation 3: an abort (EOF without a close frame) is not a clean close.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_then_an_abort_is_not_a_clean_close() {
    let Some(peer) = python::server("abort", "burst-abort", &["--count", "10"]).await else {
        return;
    };
    let (_read, _unread, err) = read_until_lost(&peer, WsConfig::new()).await;
    peer.wait_for(|l| l.kind() == "aborted").await;
    assert!(
        !err.reason().is_peer_closed(),
        "an EOF without a close frame reads as a clean close: {err}"
    );
}

/// The bytes left the peer before the abort: nothing may be lost.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_then_an_abort_loses_nothing() {
    let Some(peer) = python::server("abort", "burst-abort", &["--count", "10"]).await else {
        return;
    };
    let (mut read, unread, _err) = read_until_lost(&peer, WsConfig::new()).await;
    read.extend(unread);
    assert_eq!(read, numbers(10));
}

#[tokio::test(flavor = "current_thread")]
async fn kill_9_of_the_server_is_an_abort() {
    let Some(mut peer) = python::server("kill -9", "echo", &[]).await else {
        return;
    };
    let conn = connect(&peer, WsConfig::new()).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = tokio::spawn(supervise(conn, |c| async move {
        c.send_text("hello").await?;
        let echoed = c.recv().await?;
        tx.send(text_of(&echoed)).unwrap();
        std::future::pending::<Result<(), AppError>>().await
    }));
    assert_eq!(rx.await.unwrap(), "hello");
    peer.kill9();
    let err = tokio::time::timeout(HANG_GUARD, out)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap_err();
    assert!(
        !err.reason().is_peer_closed(),
        "a killed peer sent no close frame: {err}"
    );
}

/// SIGSTOP: the peer's kernel keeps the connection open and acknowledges, nothing answers
/// pings: the heartbeat finds it half-open.
#[tokio::test(flavor = "current_thread")]
async fn a_stopped_server_is_a_heartbeat_timeout() {
    let Some(mut peer) = python::server("SIGSTOP", "echo", &[]).await else {
        return;
    };
    let heartbeat = Heartbeat::new(Duration::from_millis(200), Duration::from_millis(300));
    let conn = connect(&peer, WsConfig::new().heartbeat(heartbeat)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = tokio::spawn(supervise(conn, |c| async move {
        c.send_text("hello").await?;
        c.recv().await?;
        tx.send(()).unwrap();
        std::future::pending::<Result<(), AppError>>().await
    }));
    rx.await.unwrap();
    peer.stop();
    let err = tokio::time::timeout(HANG_GUARD, out)
        .await
        .expect("hang guard")
        .unwrap()
        .unwrap_err();
    peer.cont();
    assert!(err.reason().is_heartbeat_timeout(), "{err}");
}

/// Runs a body that says `go` and then never reads (busy elsewhere) against a peer that sends
/// `count` messages and the invalid `frame`; returns the loss and the close code the peer got.
async fn invalid_frame_while_busy(frame: &str, count: &str) -> Option<(AppError, u16)> {
    let args = ["--count", count, "--frame", frame];
    let peer = python::server("invalid frame", "invalid", &args).await?;
    let conn = connect(&peer, WsConfig::new()).await;
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        supervise(conn, |c| async move {
            c.send_text("go").await?;
            std::future::pending().await
        }),
    )
    .await
    .expect("hang guard: the invalid frame went unnoticed");
    let (code, _) = peer.wait_until(|l| closed(l, "1")).await;
    Some((out.unwrap_err(), code))
}

/// Observation 3: an invalid frame is a protocol error as soon as it arrives, while the body is
/// busy (the peer never closes on its own: a late detection would only come from the hang
/// guard), and the peer gets close 1002.
#[tokio::test(flavor = "current_thread")]
async fn invalid_frames_are_protocol_errors_with_close_1002() {
    for frame in ["opcode", "rsv"] {
        let Some((err, code)) = invalid_frame_while_busy(frame, "3").await else {
            return;
        };
        assert!(err.reason().is_protocol(), "{frame}: {err}");
        assert_eq!(code, 1002, "{frame}: the close code sent to the peer");
    }
}

/// RFC 6455 section 7.4.1: invalid UTF-8 in a text message is 1007, not 1002.
#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_is_a_protocol_error_with_close_1007() {
    let Some((err, code)) = invalid_frame_while_busy("utf8", "3").await else {
        return;
    };
    assert!(
        matches!(
            err.reason(),
            LossReason::Protocol(ProtocolError::InvalidUtf8)
        ),
        "{err}"
    );
    assert_eq!(code, 1007, "the close code sent to the peer");
}

/// The messages before the invalid frame were fully received: read or returned.
#[tokio::test(flavor = "current_thread")]
async fn messages_before_an_invalid_frame_are_not_lost() {
    let Some(peer) = python::server("invalid", "invalid", &["--count", "10"]).await else {
        return;
    };
    let (mut read, unread, _err) = read_until_lost(&peer, WsConfig::new()).await;
    read.extend(unread);
    assert_eq!(read, numbers(10));
}

/// Observation 2: a server that accepts TCP but never answers the upgrade.
/// (The 10 s default is proven on the paused clock in `connect_timeouts.rs`.)
#[tokio::test(flavor = "current_thread")]
async fn an_upgrade_never_answered_is_a_connect_timeout() {
    let Some(peer) = python::server("silent", "silent", &[]).await else {
        return;
    };
    let config = WsConfig::new().connect_timeout(Duration::from_millis(500));
    let connect = WsConnection::connect(peer.url(), config);
    let out = tokio::time::timeout(HANG_GUARD, connect).await;
    let err = out.expect("connect hangs: no connect timeout").unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(err.is_timeout() && !err.is_permanent(), "{err:?}");
    assert_eq!(err.stage(), Some(nursery_net::ConnectStage::Upgrade));
    peer.wait_for(|l| l.kind() == "conn").await;
}

/// Observation 4: a server that completes the upgrade and closes at once. The backoff must not
/// reset after a connection that did not stay up: the waits grow.
#[tokio::test(flavor = "current_thread")]
async fn accept_and_close_at_once_backs_off() {
    let Some(peer) = python::server("accept-close", "accept-close", &[]).await else {
        return;
    };
    let events = Events::new();
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(10))
        .jitter(0.0)
        .seed(1);
    let url = peer.url();
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        Reconnect::new()
            .backoff(backoff)
            .max_attempts(6)
            .on_event(events.observer())
            .run(
                || {
                    let url = url.clone();
                    async move {
                        WsConnection::connect(url, WsConfig::new())
                            .await
                            .map_err(|e| AppError::Connect(e.to_string()))
                    }
                },
                |c| async move { c.recv().await.map(|_| ()).map_err(AppError::from) },
            ),
    )
    .await
    .unwrap_or_else(|_| panic!("hang guard: {:?}\n{}", events.names(), peer.dump()));
    assert!(out.unwrap_err().reason().is_peer_closed());
    let delays: Vec<Duration> = events
        .all()
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 5, "{delays:?}");
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "the waits grow when no connection stays up: {delays:?}"
    );
    assert_eq!(peer.wait_count("conn", 6).await, 6);
}

/// Observation 4: an HTTP 4xx on the upgrade is permanent: one attempt, that error.
#[tokio::test(flavor = "current_thread")]
async fn a_403_upgrade_is_permanent_and_not_retried() {
    for status in ["403", "404", "401"] {
        let Some(peer) = python::server("403", "reject", &["--status", status]).await else {
            return;
        };
        let (err, attempts) = reconnect_refused(&peer).await;
        assert!(err.contains(status), "the error names the status: {err}");
        assert_eq!(attempts, 1, "{status} was retried");
        assert_eq!(peer.wait_count("reject", 1).await, 1);
    }
}

/// 408 and 429 are transient: retried.
#[tokio::test(flavor = "current_thread")]
async fn a_429_upgrade_is_retried() {
    let Some(peer) = python::server("429", "reject", &["--status", "429"]).await else {
        return;
    };
    let (_err, attempts) = reconnect_refused(&peer).await;
    assert_eq!(attempts, 3);
    assert_eq!(peer.wait_count("reject", 3).await, 3);
}

/// A 503 with `Retry-After: 1` is retried no sooner than a second later, whatever the backoff.
#[tokio::test(flavor = "current_thread")]
async fn a_503_with_retry_after_waits_that_long() {
    let Some(peer) = python::server("503", "busy", &["--retry-after", "1"]).await else {
        return;
    };
    let events = Events::new();
    let _ = reconnect_with(&peer, events.observer()).await;
    let delays: Vec<Duration> = events
        .all()
        .iter()
        .filter_map(|e| match e {
            Event::Retrying { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert!(!delays.is_empty());
    assert!(
        delays.iter().all(|d| *d >= Duration::from_secs(1)),
        "Retry-After ignored: {delays:?}"
    );
}

/// A `Reconnect` of 3 attempts against a refusing peer: the last error and how many connect
/// attempts were made.
async fn reconnect_refused(peer: &Peer) -> (String, usize) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let out = reconnect_with(peer, move |e| {
        if matches!(e, Event::Connecting { .. }) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let err = match out {
        Err(AppError::Connect(e)) => e,
        other => panic!("expected a connect error, got {other:?}"),
    };
    (err, attempts.load(Ordering::SeqCst))
}

async fn reconnect_with(
    peer: &Peer,
    observer: impl Fn(&Event) + Send + Sync + 'static,
) -> Result<(), AppError> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let url = peer.url();
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20)).seed(1);
    // A boxed error: the default classification reads the `ConnectError` inside it.
    let out: Result<(), BoxError> = tokio::time::timeout(
        HANG_GUARD,
        Reconnect::new()
            .backoff(backoff)
            .max_attempts(3)
            .on_event(observer)
            .run(
                || {
                    let url = url.clone();
                    async move {
                        WsConnection::connect(url, WsConfig::new())
                            .await
                            .map_err(BoxError::from)
                    }
                },
                |_c| async move { Ok(()) },
            ),
    )
    .await
    .expect("hang guard");
    out.map_err(|e| AppError::Connect(e.to_string()))
}
