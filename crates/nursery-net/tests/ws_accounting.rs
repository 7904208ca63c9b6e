//! Nothing lost at a loss, on real loopback sockets: every echo the library received is read by
//! the body or handed back unread, in order; drain mode lets the body read them after a clean
//! close; abrupt losses force-exit at once; sends are accounted as unsent or in flight, never
//! both, never neither.
//!
//! Real clock (the client awaits the peer's bytes while timers are pending); timings are only
//! asserted as lower bounds or generous hang guards.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::protocol::frame::coding::CloseCode;
use nursery_net::tungstenite::protocol::CloseFrame;
use nursery_net::tungstenite::Message;
use nursery_net::{Supervisor, WsConfig, WsConnection};
use support::{accept_ws, listener, ws_url, AppError};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const GUARD: Duration = Duration::from_secs(20);

/// How the echo server ends after its burst.
#[derive(Clone, Copy)]
enum End {
    Close1001,
    /// FIN without a close frame.
    Abort,
}

/// Reads `n` messages, echoes each, then ends as told.
async fn echo_burst(listener: tokio::net::TcpListener, n: usize, end: End) {
    let mut ws = accept_ws(&listener).await;
    for _ in 0..n {
        let message = ws.next().await.unwrap().unwrap();
        ws.feed(message).await.unwrap();
    }
    ws.flush().await.unwrap();
    match end {
        End::Close1001 => {
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "shutting down".into(),
            };
            ws.close(Some(frame)).await.unwrap();
            // Answer the client's close answer, if it comes.
            let _ = timeout(GUARD, ws.next()).await;
        }
        End::Abort => drop(ws),
    }
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.to_text().unwrap().to_string())
        .collect()
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("echo {i}")).collect()
}

/// Sends 10, reads `reads` echoes, then waits forever; returns (outcome, read, accounting).
async fn burst(
    end: End,
    reads: usize,
    supervisor: Supervisor,
) -> (
    Result<(), AppError>,
    Vec<String>,
    nursery_net::Accounting<Message>,
) {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(echo_burst(listener, 10, end));
    let conn = WsConnection::connect(ws_url(addr), WsConfig::new())
        .await
        .unwrap();
    let handle = conn.clone();
    let read = Arc::new(Mutex::new(Vec::new()));
    let seen = read.clone();
    let out = timeout(
        GUARD,
        supervisor.run(conn, |conn| async move {
            for i in 0..10 {
                conn.send_text(format!("echo {i}")).await?;
            }
            for _ in 0..reads {
                let message = conn.recv().await?;
                seen.lock()
                    .unwrap()
                    .push(message.to_text().unwrap().to_string());
            }
            std::future::pending::<Result<(), AppError>>().await
        }),
    )
    .await
    .expect("hang guard");
    timeout(GUARD, server).await.unwrap().unwrap();
    let accounting = handle
        .take_accounting()
        .expect("accounting after supervision");
    let read = read.lock().unwrap().clone();
    (out, read, accounting)
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_then_close_1001_accounts_for_all_ten_echoes() {
    let (out, read, accounting) = burst(End::Close1001, 3, Supervisor::new()).await;
    let err = out.unwrap_err();
    match err.reason() {
        nursery_net::LossReason::PeerClosed { code, reason } => {
            assert_eq!(*code, Some(1001));
            assert_eq!(reason.as_deref(), Some("shutting down"));
        }
        other => panic!("expected a clean close, got {other:?}"),
    }
    // Read by the body, then handed back unread: all ten, in order, none twice.
    let mut all = read.clone();
    all.extend(texts(&accounting.unread));
    assert_eq!(all, numbered(10));
    assert_eq!(accounting.received, 10);
    assert_eq!(accounting.read, read.len() as u64);
    assert_eq!(accounting.written, 10);
    assert!(accounting.unsent.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_then_an_abort_accounts_for_all_ten_echoes() {
    let (out, read, accounting) = burst(End::Abort, 2, Supervisor::new()).await;
    let err = out.unwrap_err();
    assert!(err.reason().is_abort(), "{err}");
    assert!(!err.reason().is_clean_close(), "{err}");
    let mut all = read.clone();
    all.extend(texts(&accounting.unread));
    assert_eq!(all, numbered(10));
    assert_eq!(accounting.received, 10);
}

#[tokio::test(flavor = "current_thread")]
async fn drain_lets_the_body_read_everything_then_the_loss_after_a_clean_close() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(echo_burst(listener, 10, End::Close1001));
    let conn = WsConnection::connect(ws_url(addr), WsConfig::new())
        .await
        .unwrap();
    let handle = conn.clone();
    let (got_tx, mut got_rx) = mpsc::unbounded_channel();
    let supervisor = Supervisor::new().drain(Duration::from_secs(60));
    let out: Result<(), AppError> = timeout(
        GUARD,
        supervisor.run(conn, |conn| async move {
            for i in 0..10 {
                conn.send_text(format!("echo {i}")).await?;
            }
            // Wait until the close has arrived: the body is "busy" while it does.
            conn.loss_signal_fired().await;
            loop {
                let message = conn.recv().await?;
                got_tx.send(message.to_text().unwrap().to_string()).unwrap();
            }
        }),
    )
    .await
    .expect("the body ends when recv reports the loss, not at the 60 s grace");
    let err = out.unwrap_err();
    assert_eq!(
        err.reason(),
        &nursery_net::LossReason::PeerClosed {
            code: Some(1001),
            reason: Some("shutting down".into())
        }
    );
    let mut got = Vec::new();
    while let Ok(text) = got_rx.try_recv() {
        got.push(text);
    }
    assert_eq!(
        got,
        numbered(10),
        "the body read every echo after the close"
    );
    let accounting = handle.take_accounting().unwrap();
    assert!(accounting.unread.is_empty());
    assert_eq!((accounting.received, accounting.read), (10, 10));
    timeout(GUARD, server).await.unwrap().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn drain_does_not_delay_an_abort() {
    let started = Instant::now();
    let supervisor = Supervisor::new().drain(Duration::from_secs(60));
    let (out, read, accounting) = burst(End::Abort, 0, supervisor).await;
    assert!(out.unwrap_err().reason().is_abort());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "force-exited at once"
    );
    assert!(read.is_empty());
    assert_eq!(texts(&accounting.unread), numbered(10));
}

#[tokio::test(flavor = "current_thread")]
async fn drain_force_exits_a_body_that_does_not_read_when_the_grace_ends() {
    let grace = Duration::from_millis(300);
    let started = Instant::now();
    let (out, read, accounting) = burst(End::Close1001, 0, Supervisor::new().drain(grace)).await;
    assert!(out.unwrap_err().reason().is_clean_close());
    assert!(started.elapsed() >= grace);
    assert!(read.is_empty());
    assert_eq!(texts(&accounting.unread), numbered(10));
}

/// A handle extension for the drain test: waits until the connection's loss is recorded.
trait FiredExt {
    async fn loss_signal_fired(&self);
}

impl FiredExt for WsConnection {
    async fn loss_signal_fired(&self) {
        use nursery_net::Connection;
        self.loss_signal().fired().await;
    }
}

/// Cross-thread: the body reads on one worker while the driver delivers on another and the
/// loss lands anywhere in the burst; read + unread is always the whole burst, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_read_plus_unread_is_the_whole_burst_on_a_multi_thread_runtime() {
    for round in 0..30 {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let mut ws = accept_ws(&listener).await;
            for i in 0..200 {
                ws.feed(Message::text(format!("m {i}"))).await.unwrap();
            }
            ws.flush().await.unwrap();
            if round % 2 == 0 {
                let _ = ws.close(None).await;
                let _ = timeout(GUARD, ws.next()).await;
            } else {
                drop(ws);
            }
        });
        let conn = WsConnection::connect(ws_url(addr), WsConfig::new().inbound_capacity(16))
            .await
            .unwrap();
        let handle = conn.clone();
        let read = Arc::new(Mutex::new(Vec::new()));
        let seen = read.clone();
        let supervisor = if round % 3 == 0 {
            Supervisor::new().drain(Duration::from_secs(5))
        } else {
            Supervisor::new()
        };
        let out: Result<(), AppError> = timeout(
            GUARD,
            supervisor.run(conn, |conn| async move {
                loop {
                    let message = conn.recv().await?;
                    seen.lock()
                        .unwrap()
                        .push(message.to_text().unwrap().to_string());
                    tokio::task::yield_now().await;
                }
            }),
        )
        .await
        .expect("hang guard");
        assert!(out.is_err());
        timeout(GUARD, server).await.unwrap().unwrap();
        let accounting = handle.take_accounting().unwrap();
        let mut all = read.lock().unwrap().clone();
        all.extend(texts(&accounting.unread));
        let expected: Vec<String> = (0..200).map(|i| format!("m {i}")).collect();
        assert_eq!(all, expected, "round {round}");
        assert_eq!(accounting.received, 200);
    }
}

/// A peer sends a burst, then resets the connection without reading what this side sent. The
/// body reads nothing and keeps sending, so it is a write that finds the reset. The burst is
/// still on this side then (beyond the read-ahead of 2: in the stream's buffer or the kernel),
/// and it is handed back unread, in order, none of it dropped with the socket.
#[tokio::test(flavor = "current_thread")]
async fn a_reset_found_by_a_write_hands_back_the_burst_still_on_this_side() {
    const BURST: usize = 50;
    let (listener, addr) = listener().await;
    let (reset_tx, reset_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        for i in 0..BURST {
            ws.feed(Message::text(format!("echo {i}"))).await.unwrap();
        }
        ws.flush().await.unwrap();
        let socket = ws.into_inner();
        socket.set_zero_linger().unwrap();
        drop(socket);
        reset_tx.send(()).unwrap();
    });
    let config = WsConfig::new().inbound_capacity(2).no_heartbeat();
    let conn = WsConnection::connect(ws_url(addr), config).await.unwrap();
    let handle = conn.clone();
    let out: Result<(), AppError> = timeout(
        GUARD,
        Supervisor::new().run(conn, |conn| async move {
            reset_rx.await.unwrap();
            loop {
                conn.send_text("after the reset").await?;
                tokio::task::yield_now().await;
            }
        }),
    )
    .await
    .expect("hang guard");
    let err = out.unwrap_err();
    assert!(err.reason().is_reset(), "{err}");
    server.await.unwrap();
    let accounting = handle.take_accounting().expect("accounting");
    assert_eq!(texts(&accounting.unread), numbered(BURST));
    assert_eq!(accounting.received, BURST as u64);
    assert_eq!(accounting.read, 0);
}
