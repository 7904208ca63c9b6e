//! nursery-net's WebSocket server side (`WsConnection::accept`) against a client nobody here
//! wrote: Python `websockets` (`tests/peers/ws_peer.py`) — echo, clean close with codes, abort,
//! kill -9, SIGSTOP (half-open), invalid frames, a client that never sends its upgrade request
//! (or sends it one byte at a time).
//!
//! Real clock and real sockets: the peer's log orders everything; timeouts are hang guards
//! only. Without `NURSERY_PYTHON` each test prints a skip notice and passes (fails under
//! `CI=true`).

#[path = "support/python.rs"]
mod python;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nursery_net::{supervise, Heartbeat, LossReason, ProtocolError, WsConfig, WsConnection};
use python::{closed, returned, text_of, texts, Peer, HANG_GUARD};
use support::{listener, ws_url, AppError};

/// Starts a Python client in `mode` against a fresh listener and accepts its connection.
async fn accept_client(
    test: &str,
    mode: &str,
    args: &[&str],
    config: WsConfig,
) -> Option<(Peer, WsConnection)> {
    let (listener, addr) = listener().await;
    let mut peer = python::client_unready(test, mode, &ws_url(addr), args)?;
    let (socket, _) = tokio::time::timeout(HANG_GUARD, listener.accept())
        .await
        .expect("hang guard: accept")
        .expect("accept");
    let conn = tokio::time::timeout(HANG_GUARD, WsConnection::accept(socket, config))
        .await
        .expect("hang guard: handshake")
        .expect("server handshake");
    peer.ready().await;
    Some((peer, conn))
}

/// Reads every message until the loss: the texts read, the texts handed back unread, the loss.
async fn read_until_lost(conn: WsConnection) -> (Vec<String>, Vec<String>, AppError) {
    let read = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&read);
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        supervise(conn.clone(), |c| async move {
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
async fn echo_to_a_python_client_then_its_close_1000() {
    let args = ["--count", "200", "--code", "1000"];
    let Some((peer, conn)) = accept_client("echo", "echo", &args, WsConfig::new()).await else {
        return;
    };
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        supervise(conn, |c| async move {
            loop {
                let message = c.recv().await?;
                c.send(message).await?;
            }
        }),
    )
    .await
    .expect("hang guard");
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::PeerClosed {
            code: Some(1000),
            reason: None
        }
    );
    let lines = peer
        .wait_until(|l| closed(l, "1").map(|c| (c, l.to_vec())))
        .await;
    assert_eq!(lines.0 .0, 1000, "the close handshake completed");
    assert_eq!(
        texts(&lines.1, "recv"),
        numbers(200),
        "every echo, in order"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_close_code_and_reason_reach_the_loss_reason() {
    for (code, reason) in [(1000, "done"), (1001, "tab closed"), (4000, "app: bye")] {
        let args = [
            "--count",
            "10",
            "--code",
            &code.to_string(),
            "--reason",
            reason,
        ];
        let Some((peer, conn)) =
            accept_client("client close", "burst-close", &args, WsConfig::new()).await
        else {
            return;
        };
        let (_read, _unread, err) = read_until_lost(conn).await;
        assert_eq!(
            err.reason(),
            &LossReason::PeerClosed {
                code: Some(code),
                reason: Some(reason.to_string())
            }
        );
        let (got, _) = peer.wait_until(|l| closed(l, "1")).await;
        assert_eq!(got, code, "the server echoed the client's code");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_burst_then_close_loses_nothing() {
    let args = ["--count", "10", "--code", "1001", "--reason", "bye"];
    let Some((_peer, conn)) =
        accept_client("client burst", "burst-close", &args, WsConfig::new()).await
    else {
        return;
    };
    let (mut read, unread, err) = read_until_lost(conn).await;
    assert!(err.reason().is_peer_closed(), "{err}");
    read.extend(unread);
    assert_eq!(read, numbers(10), "read by the body, then returned unread");
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_abort_is_not_a_clean_close() {
    let args = ["--count", "10"];
    let Some((peer, conn)) =
        accept_client("client abort", "burst-abort", &args, WsConfig::new()).await
    else {
        return;
    };
    let (_read, _unread, err) = read_until_lost(conn).await;
    peer.wait_for(|l| l.kind() == "aborted").await;
    assert!(!err.reason().is_peer_closed(), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_client_burst_then_abort_loses_nothing() {
    let args = ["--count", "10"];
    let Some((_peer, conn)) =
        accept_client("client abort", "burst-abort", &args, WsConfig::new()).await
    else {
        return;
    };
    let (mut read, unread, _err) = read_until_lost(conn).await;
    read.extend(unread);
    assert_eq!(read, numbers(10));
}

/// Waits until the body has read the client's first message, runs `fault` on the peer, and
/// returns the loss.
async fn lost_after_first(
    test: &str,
    config: WsConfig,
    fault: impl FnOnce(&mut Peer),
) -> Option<AppError> {
    let args = ["--count", "1"];
    let (mut peer, conn) = accept_client(test, "hold", &args, config).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = tokio::spawn(supervise(conn, |c| async move {
        c.recv().await?;
        tx.send(()).unwrap();
        std::future::pending::<Result<(), AppError>>().await
    }));
    rx.await.unwrap();
    fault(&mut peer);
    let out = tokio::time::timeout(HANG_GUARD, out)
        .await
        .expect("hang guard")
        .unwrap();
    peer.cont();
    Some(out.unwrap_err())
}

#[tokio::test(flavor = "current_thread")]
async fn kill_9_of_the_client_is_an_abort() {
    let Some(err) = lost_after_first("kill -9", WsConfig::new(), Peer::kill9).await else {
        return;
    };
    assert!(!err.reason().is_peer_closed(), "no close frame came: {err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_stopped_client_is_a_heartbeat_timeout() {
    let heartbeat = Heartbeat::new(Duration::from_millis(200), Duration::from_millis(300));
    let config = WsConfig::new().heartbeat(heartbeat);
    let Some(err) = lost_after_first("SIGSTOP", config, Peer::stop).await else {
        return;
    };
    assert!(err.reason().is_heartbeat_timeout(), "{err}");
}

/// The client writes `count` messages and the invalid (masked) `frame`, then waits: the loss
/// and the close code the client got.
async fn invalid_from_client(frame: &str) -> Option<(AppError, u16, Vec<String>, Vec<String>)> {
    let args = ["--count", "10", "--frame", frame];
    let (peer, conn) = accept_client("invalid", "invalid", &args, WsConfig::new()).await?;
    let (read, unread, err) = read_until_lost(conn).await;
    let (code, _) = peer.wait_until(|l| closed(l, "1")).await;
    Some((err, code, read, unread))
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_client_frames_are_protocol_errors_with_close_1002() {
    for frame in ["opcode", "rsv"] {
        let Some((err, code, _, _)) = invalid_from_client(frame).await else {
            return;
        };
        assert!(err.reason().is_protocol(), "{frame}: {err}");
        assert_eq!(code, 1002, "{frame}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_from_a_client_closes_with_1007() {
    let Some((err, code, _, _)) = invalid_from_client("utf8").await else {
        return;
    };
    assert!(
        matches!(
            err.reason(),
            LossReason::Protocol(ProtocolError::InvalidUtf8)
        ),
        "{err}"
    );
    assert_eq!(code, 1007);
}

#[tokio::test(flavor = "current_thread")]
async fn messages_before_an_invalid_client_frame_are_not_lost() {
    let Some((_err, _code, mut read, unread)) = invalid_from_client("opcode").await else {
        return;
    };
    read.extend(unread);
    assert_eq!(read, numbers(10));
}

/// A client that opens a socket and never sends its upgrade request (or sends it one byte every
/// half second) cannot hold `accept` forever.
/// (The 10 s default is proven on the paused clock in `connect_timeouts.rs`.)
#[tokio::test(flavor = "current_thread")]
async fn accept_bounds_a_silent_or_trickling_handshake() {
    for mode in ["silent", "trickle"] {
        let (listener, addr) = listener().await;
        let Some(mut peer) = python::client_unready("silent client", mode, &ws_url(addr), &[])
        else {
            return;
        };
        let (socket, _) = listener.accept().await.expect("accept");
        peer.ready().await;
        let config = WsConfig::new().handshake_timeout(Duration::from_millis(500));
        let out = tokio::time::timeout(HANG_GUARD, WsConnection::accept(socket, config)).await;
        let err = out
            .expect("accept hangs: no handshake timeout")
            .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{mode}: {err}");
        assert!(err.is_timeout(), "{mode}: {err:?}");
    }
}
