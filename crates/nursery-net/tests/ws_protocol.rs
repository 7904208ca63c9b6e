//! A misbehaving WebSocket peer: invalid frames become typed protocol errors (never panics),
//! and a peer that never answers the close handshake cannot hold the close past its timeout.
//! Cleanup runs exactly once in each case.
//!
//! The invalid-frame tests run in real time (the client awaits the peer's bytes while its
//! heartbeat timer is pending, which the paused clock would skip ahead of). The close-handshake
//! test runs on the paused clock: the answer it waits for never comes, so the timer decides.

mod support;

use std::time::Duration;

use nursery_net::{supervise, LossReason, ProtocolError, Supervisor, WsConfig, WsConnection};
use support::{accept_ws_raw, listener, ws_url, AppError, Counted, Events};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Connects to a raw server that answers the handshake, writes `bytes` once the body runs, and
/// returns the first byte of what the client sent afterwards (its close frame, if any).
async fn lost_after(bytes: Vec<u8>, config: WsConfig) -> (AppError, Option<u8>, usize) {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut socket = accept_ws_raw(&listener).await;
        go_rx.await.unwrap();
        socket.write_all(&bytes).await.unwrap();
        let mut first = [0u8; 1];
        match socket.read(&mut first).await {
            Ok(1) => Some(first[0]),
            _ => None,
        }
    });
    let conn = WsConnection::connect(ws_url(addr), config).await.unwrap();
    let conn = Counted::new(conn);
    let out: Result<(), AppError> = supervise(conn.clone(), |_c| async move {
        go_tx.send(()).unwrap();
        std::future::pending().await
    })
    .await;
    let first = server.await.unwrap();
    (out.unwrap_err(), first, conn.closes())
}

const CLOSE_OPCODE: u8 = 0x88;

#[tokio::test(flavor = "current_thread")]
async fn a_reserved_opcode_is_a_protocol_error() {
    let (err, sent, closes) = lost_after(vec![0x83, 0x00], WsConfig::new()).await;
    match err.reason() {
        LossReason::Protocol(ProtocolError::Violation(message)) => {
            assert!(message.contains("opcode"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sent, Some(CLOSE_OPCODE), "the client tells the peer why");
    assert_eq!(closes, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_masked_frame_from_the_server_is_a_protocol_error() {
    let frame = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    let (err, _sent, closes) = lost_after(frame, WsConfig::new()).await;
    assert!(err.reason().is_protocol(), "{err}");
    assert_eq!(closes, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_fragmented_control_frame_is_a_protocol_error() {
    let frame = vec![0x09, 0x00]; // a ping without FIN
    let (err, _sent, closes) = lost_after(frame, WsConfig::new()).await;
    assert!(err.reason().is_protocol(), "{err}");
    assert_eq!(closes, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_message_over_the_limit_is_message_too_large() {
    let mut frame = vec![0x82, 126, 0x07, 0xD0]; // binary, 2000 bytes
    frame.extend(std::iter::repeat_n(0u8, 2000));
    let config = WsConfig::new().max_message_size(1024);
    let (err, sent, closes) = lost_after(frame, config).await;
    assert_eq!(
        err.reason(),
        &LossReason::Protocol(ProtocolError::MessageTooLarge {
            size: 2000,
            max: 1024
        })
    );
    assert_eq!(sent, Some(CLOSE_OPCODE));
    assert_eq!(closes, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_in_a_text_message_is_a_protocol_error() {
    let frame = vec![0x81, 0x02, 0xff, 0xfe];
    let (err, _sent, closes) = lost_after(frame, WsConfig::new()).await;
    assert_eq!(
        err.reason(),
        &LossReason::Protocol(ProtocolError::InvalidUtf8)
    );
    assert_eq!(closes, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn garbage_after_the_handshake_is_a_typed_error_not_a_panic() {
    // An HTTP response where frames are expected; long enough to be a complete "frame".
    let garbage = b"HTTP/1.1 500 Internal Server Error\r\n".repeat(8);
    let (err, _sent, closes) = lost_after(garbage, WsConfig::new()).await;
    assert!(err.reason().is_protocol(), "{err}");
    assert_eq!(closes, 1);
}

/// The body ends normally; the client sends its close frame; the peer reads it and never
/// answers. The close is dropped at the close timeout and the body's value still comes out.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_peer_that_never_answers_the_close_handshake() {
    let (listener, addr) = listener().await;
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut socket = accept_ws_raw(&listener).await;
        let mut first = [0u8; 1];
        socket.read_exact(&mut first).await.unwrap();
        let _ = release_rx.await; // never answers; holds the socket open
        first[0]
    });
    let conn = WsConnection::connect(ws_url(addr), WsConfig::new().no_heartbeat())
        .await
        .unwrap();
    let conn = Counted::new(conn);
    let events = Events::new();
    let supervisor = Supervisor::new()
        .close_timeout(Duration::from_secs(2))
        .on_event(events.observer());
    let started = Instant::now();
    let out: Result<&str, AppError> = supervisor
        .run(conn.clone(), |_c| async { Ok("done") })
        .await;
    assert_eq!(out, Ok("done"));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(events.names(), ["close timed out 1"]);
    assert_eq!((conn.closes(), conn.finished()), (1, 0));
    release_tx.send(()).unwrap();
    assert_eq!(server.await.unwrap(), CLOSE_OPCODE);
}
