//! The right reason, promptly: a protocol violation is a `Protocol` loss as soon as its bytes
//! arrive — while the body is busy, while unread messages wait, and while a write is stuck
//! because the peer does not read — with the RFC 6455 close code sent to the peer.
//!
//! Real clock (the client awaits the peer's bytes while timers are pending); the hang guards are
//! far below the heartbeat's 30 s, the only other way these connections could end.

mod support;

use std::time::Duration;

use nursery_net::tungstenite::Message;
use nursery_net::{LossReason, ProtocolError, Supervisor, WsConfig, WsConnection};
use support::{accept_ws_raw, listener, ws_url, AppError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(10);

/// An unmasked server text frame.
fn text_frame(text: &str) -> Vec<u8> {
    assert!(text.len() < 126);
    let mut frame = vec![0x81, text.len() as u8];
    frame.extend_from_slice(text.as_bytes());
    frame
}

/// Reads the client's close frame and returns its code.
async fn read_close_code(socket: &mut TcpStream) -> u16 {
    let mut header = [0u8; 2];
    socket.read_exact(&mut header).await.unwrap();
    assert_eq!(header[0], 0x88, "a close frame");
    let len = usize::from(header[1] & 0x7f);
    let mut mask = [0u8; 4];
    socket.read_exact(&mut mask).await.unwrap();
    let mut payload = vec![0u8; len];
    socket.read_exact(&mut payload).await.unwrap();
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    u16::from_be_bytes([payload[0], payload[1]])
}

/// The peer sends five good messages and then `bad`; the body never reads. Returns the
/// outcome, the unread messages, and the close code the peer got.
async fn after_a_burst(bad: Vec<u8>, config: WsConfig) -> (AppError, Vec<Message>, u16) {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut socket = accept_ws_raw(&listener).await;
        go_rx.await.unwrap();
        let mut bytes = Vec::new();
        for i in 0..5 {
            bytes.extend(text_frame(&format!("good {i}")));
        }
        bytes.extend(bad);
        socket.write_all(&bytes).await.unwrap();
        read_close_code(&mut socket).await
    });
    let conn = WsConnection::connect(ws_url(addr), config).await.unwrap();
    let handle = conn.clone();
    let out: Result<(), AppError> = timeout(
        GUARD,
        Supervisor::new().run(conn, |_conn| async move {
            go_tx.send(()).unwrap();
            std::future::pending().await // busy: reads nothing
        }),
    )
    .await
    .expect("the violation ends the connection at once");
    let code = timeout(GUARD, server).await.unwrap().unwrap();
    let unread = handle.take_accounting().unwrap().unread;
    (out.unwrap_err(), unread, code)
}

fn goods(unread: &[Message]) -> Vec<String> {
    unread
        .iter()
        .map(|m| m.to_text().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn reserved_bits_and_opcode_behind_unread_messages_are_protocol_1002() {
    // FIN, RSV1-3 and the reserved data opcode 3: what the peer sent.
    let (err, unread, code) = after_a_burst(vec![0xF3, 0x00], WsConfig::new()).await;
    assert!(err.reason().is_protocol(), "{err}");
    assert_eq!(code, 1002);
    assert_eq!(
        goods(&unread),
        ["good 0", "good 1", "good 2", "good 3", "good 4"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn invalid_utf8_in_a_text_message_is_protocol_1007() {
    let (err, unread, code) = after_a_burst(vec![0x81, 0x02, 0xC3, 0x28], WsConfig::new()).await;
    assert_eq!(
        err.reason(),
        &LossReason::Protocol(ProtocolError::InvalidUtf8)
    );
    assert_eq!(code, 1007);
    assert_eq!(unread.len(), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn an_oversized_message_is_message_too_large_1009() {
    let mut frame = vec![0x82, 126, 0x07, 0xD0]; // binary, 2000 bytes
    frame.extend(std::iter::repeat_n(0u8, 2000));
    let config = WsConfig::new().max_message_size(1024);
    let (err, unread, code) = after_a_burst(frame, config).await;
    assert!(
        matches!(
            err.reason(),
            LossReason::Protocol(ProtocolError::MessageTooLarge { max: 1024, .. })
        ),
        "{err}"
    );
    assert_eq!(code, 1009);
    assert_eq!(unread.len(), 5);
}

#[tokio::test(flavor = "current_thread")]
async fn a_violation_is_seen_while_a_write_waits_for_a_peer_that_does_not_read() {
    let (listener, addr) = listener().await;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut socket = accept_ws_raw(&listener).await;
        // The first bytes of the client's huge frame: its write has started and cannot finish
        // while this peer does not read.
        let mut header = [0u8; 2];
        socket.read_exact(&mut header).await.unwrap();
        socket.write_all(&[0xF3, 0x00]).await.unwrap();
        // Keep the socket, unread, until the client is done with it.
        let _ = done_rx.await;
        drop(socket);
    });
    let conn = WsConnection::connect(ws_url(addr), WsConfig::new())
        .await
        .unwrap();
    let handle = conn.clone();
    let supervisor = Supervisor::new().close_timeout(Duration::from_millis(300));
    let out: Result<(), AppError> = timeout(
        GUARD,
        supervisor.run(conn, |conn| async move {
            conn.send(Message::binary(vec![7u8; 64 << 20])).await?;
            std::future::pending().await
        }),
    )
    .await
    .expect("the violation is seen during the stuck write");
    done_tx.send(()).unwrap();
    let err = out.unwrap_err();
    assert!(err.reason().is_protocol(), "{err}");
    // The cut-short frame counts as in flight (its first bytes were delivered), never unsent.
    let accounting = handle.take_accounting().unwrap();
    assert_eq!(accounting.written, 1);
    assert_eq!(accounting.in_flight.len(), 1);
    assert!(accounting.unsent.is_empty());
    timeout(GUARD, server).await.unwrap().unwrap();
}
