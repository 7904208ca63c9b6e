//! `ServerLayer` on an axum `Router`, served by `axum::serve` on loopback: the deadline comes
//! from a configured HTTP header, a handler past it is force-exited with 504 and its cleanup runs
//! once, work it spawns is structured under the request, and a handler within its budget answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Extension;
use axum::routing::get;
use axum::Router;
use http::HeaderName;
use nursery_tower::{RequestContext, ServerLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Counts a request's cleanups: the guard is dropped when the handler is force-exited too.
struct Cleanup(Arc<AtomicUsize>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct Counters {
    cleanups: Arc<AtomicUsize>,
    children_ended: Arc<AtomicUsize>,
}

async fn slow(
    Extension(context): Extension<RequestContext>,
    Extension(counters): Extension<Counters>,
) -> &'static str {
    let _cleanup = Cleanup(Arc::clone(&counters.cleanups));
    let ended = Cleanup(Arc::clone(&counters.children_ended));
    // Work the handler starts is structured under the request: cancelled with it.
    let _ = context.nursery().spawn(async move {
        let _ended = ended;
        std::future::pending::<Result<(), nursery_tower::ChildError>>().await
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    "too late"
}

async fn quick(Extension(context): Extension<RequestContext>) -> String {
    let left = context
        .time_remaining()
        .expect("a deadline from the header");
    format!("{}", left <= Duration::from_millis(2_000))
}

/// One HTTP/1.1 request with a timeout header; the status line and body.
async fn call(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nx-timeout: 2S\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_router_under_the_layer_answers_504_at_the_deadline_with_cleanups_run() {
    let counters = Counters::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_counters = counters.clone();
    let outcome = tokio_nursery::nursery(|n| async move {
        let layer =
            ServerLayer::new(n.handle()).timeout_header(HeaderName::from_static("x-timeout"));
        let app = Router::new()
            .route("/slow", get(slow))
            .route("/quick", get(quick))
            .layer(Extension(server_counters))
            .layer(layer);
        let server = n.spawn_returning(async move {
            axum::serve(listener, app).await?;
            Ok::<_, std::io::Error>(())
        });
        let started = Instant::now();
        let (status, body) = call(addr, "/quick").await;
        assert!(status.contains("200"), "{status}");
        assert_eq!(body, "true");

        let (status, _) = call(addr, "/slow").await;
        let took = started.elapsed();
        assert!(status.contains("504"), "{status}");
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(5),
            "{took:?}"
        );
        server.cancel();
        n.cancel();
        Ok::<_, std::io::Error>(())
    })
    .await;
    outcome.expect("the server ran");
    assert_eq!(
        counters.cleanups.load(Ordering::SeqCst),
        1,
        "the handler's cleanup ran once"
    );
    assert_eq!(
        counters.children_ended.load(Ordering::SeqCst),
        1,
        "the child the handler spawned was cancelled with the request"
    );
}
