//! Many requests at once on a multi-thread runtime, racing their deadlines, their own completion
//! and client disconnects: every request that reached the service has its cleanup run exactly
//! once, nothing hangs, and the server stops.

mod support;

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::probe::{count, Probe, ProbeService};
use support::raw::grpc_request;
use support::serve::start;
use tokio::sync::mpsc;

const REQUESTS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deadlines_completions_and_disconnects_run_each_cleanup_once() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = start(
        ProbeService { events: tx },
        Duration::from_millis(50),
        |l| l,
        true,
    )
    .await;
    let addr = server.addr;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..REQUESTS {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            // Deadlines of 0..=4 ms race the handler finishing, the stream's first frames and
            // the client dropping its response.
            let timeout = format!("{}m", i % 5);
            let path = ["/ok", "/sleep", "/stream"][i % 3];
            let request = grpc_request(addr, path, &[("grpc-timeout", timeout.as_bytes())]);
            let Ok(response) = send.send_request(request).await else {
                return;
            };
            let mut body = response.into_body();
            if i % 2 == 0 {
                let _ = body.frame().await;
                drop(body); // gone mid-response
            } else {
                while let Some(Ok(_)) = body.frame().await {}
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("no request hangs")
            .expect("task");
    }
    drop(send);
    conn.abort();
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("server stops");
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    let called = count(&seen, |e| matches!(e, Probe::Called { .. }));
    let cleaned = count(&seen, |e| matches!(e, Probe::Cleanup { .. }));
    assert!(called > 0);
    assert_eq!(
        called, cleaned,
        "one cleanup per request that reached the service"
    );
}
