//! The request's scope lives until the response body is sent: a deadline in the middle of a
//! stream ends it (gRPC: `grpc-status: 4` in the trailers; HTTP: an incomplete body), and a
//! client that goes away mid-response cancels the request, whose cleanups run once.

mod support;

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nursery_tower::RequestCancel;
use support::probe::{collect, count, Probe, ProbeService};
use support::raw::{grpc_request, request};
use support::serve::start;
use tokio::sync::mpsc;

async fn server(
    http2: bool,
    header: &'static str,
) -> (support::serve::Server, mpsc::UnboundedReceiver<Probe>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = start(
        ProbeService { events: tx },
        Duration::from_millis(50),
        move |layer| layer.timeout_header(http::HeaderName::from_static(header)),
        http2,
    )
    .await;
    (server, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_mid_stream_ends_a_grpc_response_with_status_4_in_the_trailers() {
    let (server, mut rx) = server(true, "grpc-timeout").await;
    let answer = request(
        server.addr,
        true,
        grpc_request(server.addr, "/stream", &[("grpc-timeout", b"150m")]),
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::OK);
    assert!(
        answer.headers.get("grpc-status").is_none(),
        "not trailers-only"
    );
    assert!(!answer.data.is_empty(), "frames before the deadline");
    let trailers = answer.trailers.as_ref().expect("trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "4");
    server.stop().await;
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    assert_eq!(
        count(&seen, |e| matches!(e, Probe::Cleanup { .. })),
        1,
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_mid_stream_cuts_a_plain_http_body() {
    let (server, _rx) = server(false, "x-timeout").await;
    let req = http::Request::get(format!("http://{}/stream", server.addr))
        .header("host", "localhost")
        .header("x-timeout", "150m")
        .body(http_body_util::Full::default())
        .unwrap();
    let answer = request(server.addr, false, req).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    assert!(!answer.data.is_empty());
    assert!(
        answer.body_error.is_some(),
        "the client sees the body cut short"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnecting_mid_response_cancels_the_request_and_its_cleanup_runs_once() {
    let (server, mut rx) = server(true, "grpc-timeout").await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let response = send
        .send_request(grpc_request(
            server.addr,
            "/stream",
            &[("grpc-timeout", b"10S")],
        ))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert!(first.is_data());
    // Gone: the connection and everything on it.
    conn.abort();
    drop(body);
    drop(send);
    let mut seen = Vec::new();
    let child = |e: &Probe| matches!(e, Probe::Ended { path, .. } if path == "/stream child");
    collect(&mut rx, &mut seen, |s| s.iter().any(child)).await;
    server.stop().await;
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    assert!(
        seen.contains(&Probe::Ended {
            path: "/stream child".into(),
            cause: Some(RequestCancel::ClientDisconnected)
        }),
        "{seen:?}"
    );
    assert_eq!(
        count(&seen, |e| matches!(e, Probe::Cleanup { .. })),
        1,
        "{seen:?}"
    );
}
