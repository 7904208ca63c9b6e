//! `wss://` against Python `websockets` (its `ssl` module, OpenSSL underneath): nursery-net's
//! client against a Python TLS server, and a Python TLS client against
//! `WsConnection::accept_tls`, with a CA and certificates generated at test time. Like the other
//! interop tests they skip with a notice without `NURSERY_PYTHON` (and fail under `CI=true`).

#[path = "support/python.rs"]
mod python;
mod support;
#[path = "support/tls.rs"]
mod tls;

use std::path::PathBuf;

use nursery_net::{supervise, TlsConfig, TlsServerConfig, WsConfig, WsConnection};
use python::{texts, HANG_GUARD};
use support::{listener, AppError};

/// Writes the PEM files the Python peer reads into a fresh directory.
fn pem_files(pki: &tls::TestPki, test: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("nursery-tls-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&cert, &pki.localhost.0).unwrap();
    std::fs::write(&key, &pki.localhost.1).unwrap();
    (ca, cert, key)
}

#[tokio::test(flavor = "current_thread")]
async fn our_client_echoes_through_a_python_tls_server() {
    let pki = tls::pki();
    let (_ca, cert, key) = pem_files(&pki, "client");
    let args = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let Some(peer) = python::server("wss echo", "echo", &args).await else {
        return;
    };
    let config = WsConfig::new().tls(TlsConfig::from_pem(pki.ca_pem.as_bytes()).unwrap());
    let conn = tokio::time::timeout(HANG_GUARD, WsConnection::connect(peer.wss_url(), config))
        .await
        .expect("hang guard: connect")
        .expect("wss connect to the Python server");
    let out: Result<Vec<String>, AppError> = supervise(conn, |c| async move {
        let mut echoed = Vec::new();
        for i in 0..100 {
            c.send_text(format!("m{i}")).await?;
        }
        for _ in 0..100 {
            echoed.push(python::text_of(&c.recv().await?));
        }
        Ok(echoed)
    })
    .await;
    let expected: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(out.expect("echo"), expected);
    let logged = peer
        .wait_until(|lines| {
            let got = texts(lines, "recv");
            (got.len() == 100).then_some(got)
        })
        .await;
    assert_eq!(
        logged, expected,
        "the peer received every message, in order"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_python_tls_client_echoes_through_accept_tls() {
    let pki = tls::pki();
    let (ca, _cert, _key) = pem_files(&pki, "server");
    let (listener, addr) = listener().await;
    let url = format!("wss://localhost:{}/", addr.port());
    let args = ["--count", "20", "--ca", ca.to_str().unwrap()];
    let Some(mut peer) = python::client_unready("wss client", "echo", &url, &args) else {
        return;
    };
    let tls =
        TlsServerConfig::from_pem(pki.localhost.0.as_bytes(), pki.localhost.1.as_bytes()).unwrap();
    let (socket, _) = tokio::time::timeout(HANG_GUARD, listener.accept())
        .await
        .expect("hang guard: accept")
        .expect("accept");
    let conn = tokio::time::timeout(
        HANG_GUARD,
        WsConnection::accept_tls(socket, &tls, WsConfig::new()),
    )
    .await
    .expect("hang guard: handshake")
    .expect("TLS and upgrade with the Python client");
    peer.ready().await;
    let out: Result<(), AppError> = supervise(conn, |c| async move {
        loop {
            let message = c.recv().await?;
            c.send(message).await?;
        }
    })
    .await;
    let lost = out.expect_err("the client closes");
    assert!(lost.reason().is_clean_close(), "{lost}");
    let echoed = peer
        .wait_until(|lines| {
            let got = texts(lines, "recv");
            (got.len() == 20).then_some(got)
        })
        .await;
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(echoed, expected);
}
