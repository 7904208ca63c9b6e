//! `WsConnection::connect`, `WsConnection::accept` and `TcpConnection::connect` fail with a
//! typed `ConnectError`: the variant, its stage, whether it is permanent, the HTTP status and
//! `Retry-After`, and the source error kept. Loopback peers written here answer with exact
//! bytes; the real clock bounds only a hang.

mod support;

use std::error::Error as _;
use std::io;
use std::time::Duration;

use nursery_net::{ConnectError, ConnectStage, TcpConfig, TcpConnection, WsConfig, WsConnection};
use support::{listener, ws_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HANG_GUARD: Duration = Duration::from_secs(30);

async fn ws_connect(url: String) -> ConnectError {
    tokio::time::timeout(HANG_GUARD, WsConnection::connect(url, WsConfig::new()))
        .await
        .expect("hang guard")
        .expect_err("the connect must fail")
}

/// Reads one HTTP request head (up to the blank line); `false` if the client hung up first.
async fn read_head(socket: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// A server that reads one request and answers with `response`, then hangs up.
async fn answering(response: &'static str) -> String {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        assert!(read_head(&mut socket).await, "the client sent its request");
        socket.write_all(response.as_bytes()).await.expect("write");
        socket.shutdown().await.ok();
    });
    ws_url(addr)
}

/// A loopback port with nothing listening on it.
async fn closed_port() -> std::net::SocketAddr {
    let (listener, addr) = listener().await;
    drop(listener);
    addr
}

#[tokio::test(flavor = "current_thread")]
async fn a_scheme_other_than_ws_or_wss_is_permanent_and_opens_no_socket() {
    let (listener, addr) = listener().await;
    for url in [format!("http://{addr}/"), format!("ftp://{addr}/")] {
        let err = ws_connect(url.clone()).await;
        let ConnectError::UnsupportedScheme { scheme } = &err else {
            panic!("{url}: expected UnsupportedScheme, got {err:?}");
        };
        assert!(url.starts_with(scheme.as_str()), "{url}: {scheme}");
        assert!(err.is_permanent());
        assert_eq!(err.stage(), None);
    }
    // The first connection the listener sees is this one: the failed connects opened none.
    let probe = TcpStream::connect(addr).await.expect("probe");
    let (_accepted, from) = listener.accept().await.expect("accept");
    assert_eq!(from, probe.local_addr().expect("local addr"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_url_that_cannot_be_used_is_permanent() {
    for url in ["notaurl", "ws://", "ws:///path", "::::"] {
        let err = ws_connect(url.into()).await;
        assert!(
            matches!(
                err,
                ConnectError::InvalidUrl { .. } | ConnectError::UnsupportedScheme { .. }
            ),
            "{url}: {err:?}"
        );
        assert!(err.is_permanent(), "{url}: {err}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_connect_is_transient_io_at_the_tcp_stage_with_its_source() {
    let addr = closed_port().await;
    let err = ws_connect(ws_url(addr)).await;
    assert!(!err.is_permanent());
    assert_eq!(err.stage(), Some(ConnectStage::Tcp));
    let source = err.source().expect("the io::Error is kept");
    let io = source.downcast_ref::<io::Error>().expect("an io::Error");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().starts_with("TCP connect failed: "), "{err}");

    let err = TcpConnection::connect(addr, TcpConfig::new())
        .await
        .expect_err("refused");
    assert!(matches!(
        err,
        ConnectError::Io {
            stage: ConnectStage::Tcp,
            ..
        }
    ));
    assert!(!err.is_permanent());
}

#[tokio::test(flavor = "current_thread")]
async fn a_4xx_upgrade_is_permanent_except_408_and_429() {
    let cases: [(&'static str, u16, bool); 5] = [
        (
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            403,
            true,
        ),
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            404,
            true,
        ),
        (
            "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n",
            408,
            false,
        ),
        (
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
            429,
            false,
        ),
        (
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
            502,
            false,
        ),
    ];
    for (response, status, permanent) in cases {
        let err = ws_connect(answering(response).await).await;
        assert_eq!(err.status(), Some(status), "{err:?}");
        assert_eq!(err.is_permanent(), permanent, "{status}");
        assert_eq!(err.retry_after(), None);
        assert_eq!(err.stage(), Some(ConnectStage::Upgrade));
    }
    let err =
        ws_connect(answering("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n").await).await;
    assert_eq!(
        err.to_string(),
        "the server refused the upgrade: HTTP 403 Forbidden"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn retry_after_is_parsed_in_seconds_and_as_an_http_date() {
    let err = ws_connect(
        answering("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n")
            .await,
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.to_string().ends_with("(retry after 7s)"), "{err}");

    let past = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                Content-Length: 0\r\n\r\n";
    let err = ws_connect(answering(past).await).await;
    assert_eq!(err.retry_after(), Some(Duration::ZERO));
    assert!(!err.is_permanent());

    let future =
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Fri, 01 Jan 2100 00:00:00 GMT\r\n\
                  Content-Length: 0\r\n\r\n";
    let err = ws_connect(answering(future).await).await;
    let wait = err.retry_after().expect("a date in the future is a wait");
    assert!(wait > Duration::from_secs(60 * 365 * 24 * 3600), "{wait:?}");

    let garbage =
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: soon\r\nContent-Length: 0\r\n\r\n";
    let err = ws_connect(answering(garbage).await).await;
    assert_eq!(err.retry_after(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn an_invalid_upgrade_answer_is_a_transient_handshake_error() {
    let wrong_key =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Accept: bm9wZQ==\r\n\r\n";
    let err = ws_connect(answering(wrong_key).await).await;
    assert!(matches!(err, ConnectError::Handshake { .. }), "{err:?}");
    assert!(!err.is_permanent());
    assert!(err.source().is_some(), "tungstenite's error is kept");
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_that_hangs_up_during_the_upgrade_is_transient_io() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        read_head(&mut socket).await;
        drop(socket);
    });
    let err = ws_connect(ws_url(addr)).await;
    assert!(
        matches!(
            err,
            ConnectError::Io {
                stage: ConnectStage::Upgrade,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_permanent());
}

#[tokio::test(flavor = "current_thread")]
async fn accept_reports_a_client_that_hangs_up_as_io_at_the_upgrade() {
    let (listener, addr) = listener().await;
    tokio::spawn(async move { drop(TcpStream::connect(addr).await) });
    let (socket, _) = listener.accept().await.expect("accept");
    let err = tokio::time::timeout(HANG_GUARD, WsConnection::accept(socket, WsConfig::new()))
        .await
        .expect("hang guard")
        .expect_err("the client hung up");
    assert!(
        matches!(
            err,
            ConnectError::Io {
                stage: ConnectStage::Upgrade,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn accept_reports_a_request_that_is_not_an_upgrade_as_a_handshake_error() {
    let (listener, addr) = listener().await;
    let client = tokio::spawn(async move {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        // Held open until the server gives up on it.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
    });
    let (socket, _) = listener.accept().await.expect("accept");
    let err = tokio::time::timeout(HANG_GUARD, WsConnection::accept(socket, WsConfig::new()))
        .await
        .expect("hang guard")
        .expect_err("not an upgrade");
    assert!(matches!(err, ConnectError::Handshake { .. }), "{err:?}");
    assert!(err.source().is_some(), "tungstenite's error is kept");
    drop(err);
    client.await.expect("client");
}
