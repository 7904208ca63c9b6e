//! `WsConnection` on real loopback sockets: each loss reason, the external trigger from a
//! foreign OS thread, the close handshake, cleanup exactly once.
//!
//! Only the half-open test runs on the paused clock: there nothing is awaited from the peer.
//! Elsewhere the client awaits the peer's bytes while a timer is pending (the heartbeat, the
//! close timeout); on the paused clock tokio would advance time whenever the kernel has not
//! delivered those bytes yet, so those tests run in real time (they assert no timing). The
//! exact heartbeat and idle timings are in `ws_timing.rs`, on an in-memory stream.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::protocol::frame::coding::CloseCode;
use nursery_net::tungstenite::protocol::CloseFrame;
use nursery_net::tungstenite::Message;
use nursery_net::{
    supervise, Connection, Heartbeat, LossReason, Supervisor, WsConfig, WsConnection,
};
use support::{accept_ws, listener, ws_url, AppError, Counted, Events};
use tokio::sync::oneshot;
use tokio::time::Instant;

async fn connect(addr: std::net::SocketAddr, config: WsConfig) -> Counted<WsConnection> {
    let conn = WsConnection::connect(ws_url(addr), config)
        .await
        .expect("connect");
    Counted::new(conn)
}

/// An echo server for one connection; returns what it saw last (the client's close frame).
async fn echo_once(listener: tokio::net::TcpListener) -> Option<Message> {
    let mut ws = accept_ws(&listener).await;
    let mut last = None;
    while let Some(Ok(message)) = ws.next().await {
        if message.is_text() || message.is_binary() {
            ws.send(message.clone()).await.unwrap();
        }
        last = Some(message);
    }
    last
}

#[tokio::test(flavor = "current_thread")]
async fn echo_then_a_normal_exit_closes_with_the_handshake() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(echo_once(listener));
    let conn = connect(addr, WsConfig::new()).await;
    let events = Events::new();
    let supervisor = Supervisor::new().on_event(events.observer());
    let out: Result<String, AppError> = supervisor
        .run(conn.clone(), |c| async move {
            c.conn.send_text("hello").await?;
            let echoed = c.conn.recv().await?;
            Ok(echoed.into_text().unwrap().to_string())
        })
        .await;
    assert_eq!(out.unwrap(), "hello");
    let last = server.await.unwrap();
    assert!(
        matches!(last, Some(Message::Close(Some(ref f))) if f.code == CloseCode::Normal),
        "{last:?}"
    );
    assert_eq!(events.names(), ["closed 1"]);
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn messages_larger_than_the_read_buffer_arrive_whole() {
    for read_buffer in [16, 4 * 1024] {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(echo_once(listener));
        let config = WsConfig::new().read_buffer_size(read_buffer);
        let conn = connect(addr, config).await;
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let expected = big.clone();
        let out: Result<Vec<u8>, AppError> = supervise(conn.clone(), |c| async move {
            c.conn.send(Message::binary(big)).await?;
            Ok(c.conn.recv().await?.into_data().to_vec())
        })
        .await;
        assert!(
            out.unwrap() == expected,
            "read buffer of {read_buffer} bytes"
        );
        server.await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_close_frame_is_peer_closed_with_its_code_and_reason() {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        go_rx.await.unwrap();
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "restarting".into(),
        };
        ws.close(Some(frame)).await.unwrap();
        // The client answers the close; the stream then ends.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let conn = connect(addr, WsConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        go_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::PeerClosed {
            code: Some(1001),
            reason: Some("restarting".into())
        }
    );
    server.await.unwrap();
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn the_peers_close_frame_is_answered() {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        go_rx.await.unwrap();
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "restarting".into(),
        };
        ws.close(Some(frame)).await.unwrap();
        let mut seen = Vec::new();
        while let Some(message) = ws.next().await {
            seen.push(message.map_err(|e| e.to_string()));
        }
        seen
    });
    let conn = connect(addr, WsConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        go_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    assert!(out.unwrap_err().reason().is_peer_closed());
    // The client's answer echoes the code: the handshake completed, not a reset.
    let seen = server.await.unwrap();
    assert!(
        matches!(&seen[..], [Ok(Message::Close(Some(f)))] if f.code == CloseCode::Away),
        "{seen:?}"
    );
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
}

#[tokio::test(flavor = "current_thread")]
async fn an_end_of_stream_without_close_frame_is_an_abort_not_a_clean_close() {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let ws = accept_ws(&listener).await;
        go_rx.await.unwrap();
        drop(ws); // FIN, no close frame
    });
    let conn = connect(addr, WsConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        go_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    let err = out.unwrap_err();
    assert!(err.reason().is_abort(), "{err}");
    assert!(!err.reason().is_clean_close(), "{err}");
    server.await.unwrap();
    assert_eq!(conn.closes(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_reset_is_reset() {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let ws = accept_ws(&listener).await;
        go_rx.await.unwrap();
        let socket = ws.into_inner();
        socket.set_zero_linger().unwrap();
        drop(socket); // RST
    });
    let conn = connect(addr, WsConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        go_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    let err = out.unwrap_err();
    assert!(err.reason().is_reset(), "{err}");
    server.await.unwrap();
    assert_eq!(conn.closes(), 1);
}

/// Half-open: the server accepts, then never reads again, so no pong ever comes back.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unanswered_ping_is_a_heartbeat_timeout() {
    let (listener, addr) = listener().await;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let ws = accept_ws(&listener).await;
        let _ = done_rx.await; // holds the socket open, reads nothing
        drop(ws);
    });
    let heartbeat = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2));
    let conn = connect(addr, WsConfig::new().heartbeat(heartbeat)).await;
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| std::future::pending()).await;
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::HeartbeatTimeout {
            timeout: Duration::from_secs(2)
        }
    );
    // Lost at 1 s (ping) + 2 s; the close does not wait for a handshake with a dead peer.
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
    done_tx.send(()).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn external_trigger_from_a_foreign_os_thread() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(echo_once(listener));
    let conn = connect(addr, WsConfig::new()).await;
    let signal = conn.loss_signal().clone();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        ready_rx.recv().unwrap();
        signal.trigger("driver callback: link down")
    });
    let started = Instant::now();
    let out: Result<(), AppError> = supervise(conn.clone(), |c| async move {
        c.conn.send_text("hi").await?;
        ready_tx.send(()).unwrap();
        loop {
            c.conn.recv().await?; // force-exited here
        }
    })
    .await;
    assert!(thread.join().unwrap());
    assert_eq!(
        out.unwrap_err().reason(),
        &LossReason::external("driver callback: link down")
    );
    // The peer is alive: the close handshake completes.
    assert!(matches!(server.await.unwrap(), Some(Message::Close(_))));
    assert_eq!((conn.closes(), conn.finished()), (1, 1));
    assert!(started.elapsed() < Duration::from_secs(10), "hang detector");
}

#[tokio::test(flavor = "current_thread")]
async fn sends_queued_at_a_normal_exit_are_flushed_before_the_close() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_ws(&listener).await;
        let mut texts = Vec::new();
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                texts.push(text.to_string());
            }
        }
        texts
    });
    let conn = connect(addr, WsConfig::new()).await;
    let out: Result<(), AppError> = supervise(conn.clone(), |c| async move {
        for i in 0..20 {
            // Queued without waiting for the write: the body ends at once.
            let sent = c.conn.send_text(format!("m{i}"));
            let _ = futures_util::FutureExt::now_or_never(sent);
        }
        Ok(())
    })
    .await;
    out.unwrap();
    let texts = server.await.unwrap();
    assert_eq!(texts, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(conn.closes(), 1);
}
