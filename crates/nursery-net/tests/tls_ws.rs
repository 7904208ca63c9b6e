//! `wss://` on loopback with a certificate made at test time (rcgen on ring): echo through a
//! supervised connection, certificate and host-name errors as permanent typed errors, a TLS
//! server that never answers, and an EOF without `close_notify` as an abort.

mod support;
#[path = "support/tls.rs"]
mod tls;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nursery_net::tungstenite::Message;
use nursery_net::{
    supervise, ConnectError, ConnectStage, LossReason, TlsConfig, TlsFailure, TlsServerConfig,
    WsConfig, WsConnection,
};
use support::AppError;
use tokio::net::TcpListener;

/// A real-clock bound on each test, as a hang guard only.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// A TLS WebSocket server on 127.0.0.1 presenting `(chain, key)`, serving one connection with
/// `serve`; returns the port.
async fn server<F, Fut>(chain_key: &(String, String), serve: F) -> u16
where
    F: FnOnce(WsConnection) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let tls = TlsServerConfig::from_pem(chain_key.0.as_bytes(), chain_key.1.as_bytes())
        .expect("server TLS config");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        if let Ok(conn) = WsConnection::accept_tls(socket, &tls, WsConfig::new()).await {
            serve(conn).await;
        }
    });
    port
}

fn trusting(pki: &tls::TestPki) -> WsConfig {
    WsConfig::new().tls(TlsConfig::from_pem(pki.ca_pem.as_bytes()).expect("CA"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_wss_connection_echoes_through_tls() {
    let pki = tls::pki();
    let port = server(&pki.localhost, |conn| async move {
        let _: Result<(), AppError> = supervise(conn, |c| async move {
            loop {
                let message = c.recv().await?;
                c.send(message).await?;
            }
        })
        .await;
    })
    .await;
    let url = format!("wss://localhost:{port}/");
    let conn = tokio::time::timeout(HANG_GUARD, WsConnection::connect(url, trusting(&pki)))
        .await
        .expect("hang guard")
        .expect("wss connect");
    let out: Result<Vec<String>, AppError> = supervise(conn, |c| async move {
        let mut echoed = Vec::new();
        for i in 0..50 {
            c.send_text(format!("m{i}")).await?;
            echoed.push(c.recv().await?.into_text().unwrap().to_string());
        }
        Ok(echoed)
    })
    .await;
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(out.unwrap(), expected);
    // An IP address is a valid TLS server name too (the certificate lists 127.0.0.1).
    let port = server(&pki.localhost, |_conn| async move {}).await;
    let url = format!("wss://127.0.0.1:{port}/");
    let _by_ip = tokio::time::timeout(HANG_GUARD, WsConnection::connect(url, trusting(&pki)))
        .await
        .expect("hang guard")
        .expect("wss connect by IP address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_a_permanent_hostname_error() {
    let pki = tls::pki();
    let port = server(&pki.wrong_host, |_conn| async move {}).await;
    let url = format!("wss://localhost:{port}/");
    let err = tokio::time::timeout(HANG_GUARD, WsConnection::connect(url, trusting(&pki)))
        .await
        .expect("hang guard")
        .expect_err("the certificate is for elsewhere.invalid");
    assert!(
        matches!(err, ConnectError::Tls(TlsFailure::Hostname { .. })),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert_eq!(err.stage(), Some(ConnectStage::Tls));
    assert!(err.to_string().contains("not valid for this host"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_permanent_certificate_error() {
    let pki = tls::pki();
    let port = server(&pki.untrusted, |_conn| async move {}).await;
    let url = format!("wss://localhost:{port}/");
    let err = tokio::time::timeout(HANG_GUARD, WsConnection::connect(url, trusting(&pki)))
        .await
        .expect("hang guard")
        .expect_err("self-signed, not under the test CA");
    assert!(
        matches!(err, ConnectError::Tls(TlsFailure::Certificate { .. })),
        "{err:?}"
    );
    assert!(err.is_permanent());
    // The default roots (the bundled Mozilla set) do not trust the test CA either.
    let port = server(&pki.localhost, |_conn| async move {}).await;
    let url = format!("wss://localhost:{port}/");
    let err = WsConnection::connect(url, WsConfig::new())
        .await
        .expect_err("not under a public root");
    assert!(err.is_permanent(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_tls_handshake_times_out_at_the_tls_stage() {
    let pki = tls::pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let config = trusting(&pki).connect_timeout(Duration::from_millis(300));
    let err = tokio::time::timeout(
        HANG_GUARD,
        WsConnection::connect(format!("wss://localhost:{port}/"), config),
    )
    .await
    .expect("hang guard")
    .expect_err("the handshake never completes");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(err.stage(), Some(ConnectStage::Tls));
    assert!(!err.is_permanent());
    silent.abort();
}

/// A TLS peer that ends the TCP connection without `close_notify` (and without a WebSocket
/// close frame) aborted: the loss is not a clean close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eof_without_close_notify_is_an_abort() {
    let pki = tls::pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_server_config(&pki));
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let stream = acceptor.accept(socket).await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        ws.send(Message::text("last words")).await.unwrap();
        let _ = ws.next().await;
        // Tear the TCP connection down under TLS: no close_notify, no close frame.
        let (tcp, _) = ws.into_inner().into_inner();
        drop(tcp);
    });
    let conn = WsConnection::connect(format!("wss://localhost:{port}/"), trusting(&pki))
        .await
        .unwrap();
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        supervise(conn, |c| async move {
            assert_eq!(c.recv().await?.into_text().unwrap(), "last words");
            c.send_text("bye").await?;
            loop {
                c.recv().await?;
            }
        }),
    )
    .await
    .expect("hang guard");
    let Err(AppError::ConnectionLost(lost)) = out else {
        panic!("expected a loss: {out:?}");
    };
    assert!(lost.reason.is_abort(), "{lost}");
    assert!(!matches!(lost.reason, LossReason::PeerClosed { .. }));
}

fn tls_server_config(pki: &tls::TestPki) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    let chain = rustls_pki_types::CertificateDer::pem_slice_iter(pki.localhost.0.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.localhost.1.as_bytes()).unwrap();
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    std::sync::Arc::new(config)
}

/// TCP over TLS: bytes both ways under supervision, and the peer's `close_notify` then EOF is a
/// clean close, while a certificate for another host is refused as for WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_over_tls_carries_bytes_and_a_close_notify_is_a_clean_close() {
    use nursery_net::{TcpConfig, TcpConnection};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = tls::pki();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_server_config(&pki));
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut stream = acceptor.accept(socket).await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        stream.write_all(b"world").await.unwrap();
        // A clean TLS close: close_notify, then FIN.
        stream.shutdown().await.unwrap();
    });
    let ca = TlsConfig::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let conn = TcpConnection::connect_tls(addr, "localhost", &ca, TcpConfig::new())
        .await
        .expect("TLS connect");
    let out: Result<(), AppError> = tokio::time::timeout(
        HANG_GUARD,
        supervise(conn, |c| async move {
            c.send(b"hello").await?;
            let mut got = Vec::new();
            while got.len() < 5 {
                got.extend(c.recv().await?);
            }
            assert_eq!(got, b"world");
            loop {
                c.recv().await?;
            }
        }),
    )
    .await
    .expect("hang guard");
    let Err(AppError::ConnectionLost(lost)) = out else {
        panic!("expected the peer's close: {out:?}");
    };
    assert!(lost.reason.is_clean_close(), "{lost}");

    let port = server(&pki.wrong_host, |_conn| async move {}).await;
    let err = TcpConnection::connect_tls(("127.0.0.1", port), "localhost", &ca, TcpConfig::new())
        .await
        .expect_err("wrong host");
    assert!(
        matches!(err, ConnectError::Tls(TlsFailure::Hostname { .. })),
        "{err:?}"
    );
}
