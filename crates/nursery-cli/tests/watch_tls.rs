//! `nursery watch wss://…` against a local TLS WebSocket server with a private CA
//! (`--ca-file`): it prints what the server sends and closes with 1000 on Ctrl-C; a certificate
//! for another host is a permanent error (exit 1 at once, no retry); an unreadable CA file is a
//! usage error (exit 2).

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nursery_net::{supervise, ConnectionLost, TlsServerConfig, WsConfig, WsConnection};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::{Watch, HANG};
use tokio::net::TcpListener;

/// A CA (written to a PEM file) and a server certificate signed by it for `names`.
fn pki(names: &[&str], test: &str) -> (PathBuf, TlsServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "nursery watch test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let dir = std::env::temp_dir().join(format!("nursery-watch-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let tls =
        TlsServerConfig::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    (ca_file, tls)
}

/// `nursery watch <url> --no-stdin --ca-file <ca_file>`.
fn watch(url: &str, ca_file: &Path) -> Watch {
    let ca_file = ca_file.to_str().expect("a UTF-8 temp path");
    Watch::start(&["watch", url, "--no-stdin", "--ca-file", ca_file], false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_wss_with_a_private_ca_prints_and_closes_on_ctrl_c() {
    let (ca_file, tls) = pki(&["localhost"], "ok");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let conn = WsConnection::accept_tls(socket, &tls, WsConfig::new())
            .await
            .expect("TLS accept");
        let out: Result<(), ConnectionLost> = supervise(conn, |c| async move {
            c.send_text("quote over tls").await?;
            loop {
                c.recv().await?;
            }
        })
        .await;
        out.unwrap_err()
    });
    let mut watch = watch(&url, &ca_file);
    watch.line_with("quote over tls").await;
    watch.signal("INT");
    let (code, stdout, stderr) = watch.finish().await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lost = tokio::time::timeout(HANG, server)
        .await
        .expect("the server saw the close")
        .unwrap();
    assert!(lost.reason.is_clean_close(), "{lost}");
    assert!(lost.to_string().contains("1000"), "{lost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_not_retried() {
    let (ca_file, tls) = pki(&["elsewhere.invalid"], "wrong");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("wss://localhost:{}/", listener.local_addr().unwrap().port());
    let server = tokio::spawn(async move {
        let mut accepted = 0;
        while let Ok(Ok((socket, _))) =
            tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
        {
            accepted += 1;
            let _ = WsConnection::accept_tls(socket, &tls, WsConfig::new()).await;
        }
        accepted
    });
    let (code, _, stderr) = watch(&url, &ca_file).finish().await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not retrying"), "{stderr}");
    assert!(stderr.contains("not valid for this host"), "{stderr}");
    assert_eq!(server.await.unwrap(), 1, "one attempt only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ca_file_is_a_usage_error() {
    let missing = std::env::temp_dir().join("nursery-watch-no-such-ca.pem");
    let (code, _, stderr) = watch("wss://localhost:1/", &missing).finish().await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ca-file"), "{stderr}");
}
