//! Connects and handshakes never hang: `WsConfig::connect_timeout` bounds the TCP connect and
//! the upgrade, `TcpConfig::connect_timeout` the TCP connect, `WsConfig::handshake_timeout`
//! the server side of `accept`, each 10 s by default, each failing with
//! `ConnectError::Timeout` naming its stage.
//!
//! The paused-clock tests wait on I/O that can never complete (a SYN to a full accept queue, a
//! client that sends nothing), so tokio's auto-advance reaches the deadline exactly and the
//! outcome does not depend on timing. Where a peer must make progress first (the upgrade
//! stage, a trickling client), the real clock runs with short timeouts; only lower bounds are
//! asserted, so load cannot break them.

mod support;

use std::time::Duration;

use nursery_net::{ConnectError, ConnectStage, TcpConfig, TcpConnection, WsConfig, WsConnection};
use support::{listener, ws_url};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

const HANG_GUARD: Duration = Duration::from_secs(30);
const DEFAULT: Duration = Duration::from_secs(10);

/// A listener whose accept queue is full: Linux drops further SYNs, so a connect to it stays
/// in the TCP stage. Keep the returned streams alive (they fill the queue).
async fn full_listener() -> (TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("addr");
    // A backlog of 1 holds two connections; no timer is pending while they connect.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            TcpStream::connect(addr)
                .await
                .expect("fill the accept queue"),
        );
    }
    (listener, held)
}

fn assert_timeout(err: &ConnectError, after: Duration, stage: ConnectStage) {
    match err {
        ConnectError::Timeout {
            after: got,
            stage: got_stage,
        } => {
            assert_eq!((*got, *got_stage), (after, stage), "{err}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!err.is_permanent());
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_ws_connect_that_never_gets_past_tcp_times_out_by_default() {
    let (listener, _held) = full_listener().await;
    let url = ws_url(listener.local_addr().unwrap());
    let started = Instant::now();
    let err = WsConnection::connect(url, WsConfig::new())
        .await
        .expect_err("the connect cannot complete");
    assert_eq!(started.elapsed(), DEFAULT, "the default bound, exactly");
    assert_timeout(&err, DEFAULT, ConnectStage::Tcp);
    assert_eq!(err.to_string(), "TCP connect timed out after 10s");
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_tcp_connect_times_out_by_default_and_as_configured() {
    let (listener, _held) = full_listener().await;
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let err = TcpConnection::connect(addr, TcpConfig::new())
        .await
        .expect_err("the connect cannot complete");
    assert_eq!(started.elapsed(), DEFAULT);
    assert_timeout(&err, DEFAULT, ConnectStage::Tcp);

    let short = Duration::from_millis(1500);
    let started = Instant::now();
    let err = TcpConnection::connect(addr, TcpConfig::new().connect_timeout(short))
        .await
        .expect_err("the connect cannot complete");
    assert_eq!(started.elapsed(), short);
    assert_timeout(&err, short, ConnectStage::Tcp);
}

/// A server that accepts TCP and never answers the upgrade left the
/// connect pending forever. Real clock (the TCP stage must finish first).
#[tokio::test(flavor = "current_thread")]
async fn an_upgrade_never_answered_times_out_at_the_upgrade_stage() {
    let (listener, addr) = listener().await;
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        // Never read, never answered; held until the client gives up.
        std::future::pending::<()>().await;
        drop(socket);
    });
    let timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        HANG_GUARD,
        WsConnection::connect(ws_url(addr), WsConfig::new().connect_timeout(timeout)),
    )
    .await
    .expect("hang guard: the connect hung");
    let err = out.expect_err("never answered");
    assert!(started.elapsed() >= timeout);
    assert_timeout(&err, timeout, ConnectStage::Upgrade);
    silent.abort();
}

/// A client that opens a socket and sends nothing cannot hold `accept`: the default bound
/// ends it, and the socket is closed (the client reads EOF).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn accept_bounds_a_silent_client_by_default() {
    let (listener, addr) = listener().await;
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let (socket, _) = listener.accept().await.expect("accept");
    let started = Instant::now();
    let err = WsConnection::accept(socket, WsConfig::new())
        .await
        .expect_err("nothing was sent");
    assert_eq!(started.elapsed(), DEFAULT);
    assert_timeout(&err, DEFAULT, ConnectStage::Upgrade);
    let mut rest = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut rest).await;
    assert_eq!(
        read.map_err(|e| e.kind()).ok(),
        Some(0),
        "the socket was closed"
    );
}

/// One byte every 50 ms never completes a request within 400 ms: the handshake timeout
/// bounds the whole handshake, not the gap between bytes. Real clock.
#[tokio::test(flavor = "current_thread")]
async fn accept_bounds_a_trickling_client() {
    let (listener, addr) = listener().await;
    let trickle = tokio::spawn(async move {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        for byte in request.iter().cycle() {
            if socket.write_all(&[*byte]).await.is_err() {
                return; // the server gave up and closed
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (socket, _) = listener.accept().await.expect("accept");
    let timeout = Duration::from_millis(400);
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        HANG_GUARD,
        WsConnection::accept(socket, WsConfig::new().handshake_timeout(timeout)),
    )
    .await
    .expect("hang guard: accept hung");
    let err = out.expect_err("the request never completes");
    assert!(started.elapsed() >= timeout);
    assert_timeout(&err, timeout, ConnectStage::Upgrade);
    tokio::time::timeout(HANG_GUARD, trickle)
        .await
        .expect("hang guard: the client saw the close")
        .expect("client");
}

/// `Duration::MAX` means no bound (and does not overflow): the connect still completes.
#[tokio::test(flavor = "current_thread")]
async fn an_unbounded_connect_still_connects() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move { support::accept_ws(&listener).await });
    let config = WsConfig::new().connect_timeout(Duration::MAX);
    let conn = tokio::time::timeout(HANG_GUARD, WsConnection::connect(ws_url(addr), config))
        .await
        .expect("hang guard")
        .expect("connect");
    drop(conn);
    server.await.expect("server");
}
