//! TCP at a loss: bytes received and not read are handed back in order (a clean EOF is a clean
//! close, a reset an abort), the read-ahead stops at its bound, cleanups run once.
//!
//! Real clock; timings only as hang guards.

mod support;

use std::time::Duration;

use nursery_net::{Supervisor, TcpConfig, TcpConnection};
use support::{listener, AppError};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(20);

fn lines() -> Vec<u8> {
    (0..10)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect()
}

/// The peer writes ten lines and ends with a FIN (`reset: false`) or a RST; the body reads
/// nothing. Returns the outcome and the accounting.
async fn ten_lines_then(
    reset: bool,
    config: TcpConfig,
) -> (AppError, nursery_net::Accounting<Vec<u8>>) {
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        go_rx.await.unwrap();
        socket.write_all(&lines()).await.unwrap();
        if reset {
            socket.set_zero_linger().unwrap();
        }
        drop(socket);
    });
    let conn = TcpConnection::connect(addr, config).await.unwrap();
    let handle = conn.clone();
    let out: Result<(), AppError> = timeout(
        GUARD,
        Supervisor::new().run(conn, |conn| async move {
            conn.on_close(|_| async {});
            go_tx.send(()).unwrap();
            std::future::pending().await
        }),
    )
    .await
    .expect("hang guard");
    server.await.unwrap();
    (out.unwrap_err(), handle.take_accounting().unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn bytes_not_read_at_a_clean_eof_are_handed_back_in_order() {
    let (err, accounting) = ten_lines_then(false, TcpConfig::new()).await;
    assert!(err.reason().is_clean_close(), "{err}");
    assert_eq!(accounting.unread.concat(), lines());
    assert_eq!(accounting.received, accounting.unread.len() as u64);
    assert_eq!(accounting.read, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_reset_is_an_abort_and_what_arrived_before_it_is_handed_back() {
    let (err, accounting) = ten_lines_then(true, TcpConfig::new()).await;
    assert!(err.reason().is_abort(), "{err}");
    // The kernel may discard data at a reset; what arrived is a prefix, in order.
    let got = accounting.unread.concat();
    assert!(lines().starts_with(&got), "{got:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_read_ahead_stops_at_its_bound_in_bytes() {
    let config = TcpConfig::new().read_buffer_size(8).inbound_bytes(16);
    let (listener, addr) = listener().await;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (written_tx, written_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        go_rx.await.unwrap();
        socket.write_all(&lines()).await.unwrap();
        written_tx.send(()).unwrap();
        tokio::time::sleep(GUARD).await; // hold the socket open
    });
    let conn = TcpConnection::connect(addr, config).await.unwrap();
    let handle = conn.clone();
    let out: Result<(), AppError> = timeout(
        GUARD,
        Supervisor::new().run(conn, |conn| async move {
            go_tx.send(()).unwrap();
            written_rx.await.unwrap();
            conn.on_close(|_| async {});
            // Some reads may still be on their way; the bound holds whatever their timing.
            tokio::task::yield_now().await;
            handle_trigger(&conn);
            std::future::pending().await
        }),
    )
    .await
    .expect("hang guard");
    assert!(out.unwrap_err().reason().is_external());
    let accounting = handle.take_accounting().unwrap();
    let held: usize = accounting.unread.iter().map(Vec::len).sum();
    // At most the bound plus one read buffer (8 bytes), never all 70 bytes.
    assert!(held < 16 + 8, "{held} bytes held");
    assert!(lines().starts_with(&accounting.unread.concat()));
    server.abort();
}

fn handle_trigger(conn: &TcpConnection) {
    use nursery_net::Connection;
    conn.loss_signal().trigger("enough");
}

/// The peer writes ten lines and resets without reading; the body reads nothing and writes until
/// a write finds the reset. With a read-ahead of one 8-byte chunk, most of the lines are still in
/// this side's kernel then: they are handed back unread, in order, not dropped with the socket.
#[tokio::test(flavor = "current_thread")]
async fn a_reset_found_by_a_write_hands_back_what_the_kernel_still_held() {
    let config = TcpConfig::new().read_buffer_size(8).inbound_capacity(1);
    let (listener, addr) = listener().await;
    let (reset_tx, reset_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(&lines()).await.unwrap();
        socket.set_zero_linger().unwrap();
        drop(socket);
        reset_tx.send(()).unwrap();
    });
    let conn = TcpConnection::connect(addr, config).await.unwrap();
    let handle = conn.clone();
    let out: Result<(), AppError> = timeout(
        GUARD,
        Supervisor::new().run(conn, |conn| async move {
            reset_rx.await.unwrap();
            loop {
                conn.send(b"after the reset").await?;
                tokio::task::yield_now().await;
            }
        }),
    )
    .await
    .expect("hang guard");
    let err = out.unwrap_err();
    assert!(err.reason().is_reset(), "{err}");
    server.await.unwrap();
    let accounting = handle.take_accounting().unwrap();
    assert_eq!(accounting.unread.concat(), lines());
    assert_eq!(accounting.read, 0);
}
