//! The client layer: the caller's remaining deadline goes out as `grpc-timeout`, minus the
//! margin, rounded down; a spent budget is answered without calling the inner service.

mod support;

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use nursery_tower::{parse_grpc_timeout, ClientLayer, RequestId};
use support::recorder::Recorder;
use tower_layer::Layer;
use tower_service::Service;

fn grpc() -> http::Request<()> {
    http::Request::post("/x")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_remaining_deadline_minus_the_margin_goes_out_rounded_down() {
    let recorder = Recorder::default();
    let mut client = ClientLayer::new()
        .safety_margin(Duration::from_millis(10))
        .layer(recorder.clone());
    tokio_nursery::move_on_after(Duration::from_millis(1000), async {
        client.call(grpc()).await.unwrap();
        // A timeout already on the request is kept when it is shorter.
        let mut shorter = grpc();
        shorter
            .headers_mut()
            .insert("grpc-timeout", "5m".parse().unwrap());
        client.call(shorter).await.unwrap();
        let mut longer = grpc();
        longer
            .headers_mut()
            .insert("grpc-timeout", "1H".parse().unwrap());
        longer
            .extensions_mut()
            .insert(RequestId::new("req-9".parse().unwrap()));
        client.call(longer).await.unwrap();
    })
    .await
    .expect("in time");
    // Outside any scope: no deadline, no header.
    client.call(grpc()).await.unwrap();
    let seen = recorder.0.lock().unwrap();
    let timeout = |h: &http::HeaderMap| {
        h.get("grpc-timeout")
            .map(|v| parse_grpc_timeout(v.to_str().unwrap()).unwrap())
    };
    assert_eq!(timeout(&seen[0]), Some(Duration::from_millis(990)));
    assert_eq!(timeout(&seen[1]), Some(Duration::from_millis(5)));
    assert_eq!(timeout(&seen[2]), Some(Duration::from_millis(990)));
    assert_eq!(seen[2].get("x-request-id").unwrap(), "req-9");
    assert_eq!(timeout(&seen[3]), None);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_spent_budget_is_answered_without_calling_the_inner_service() {
    let recorder = Recorder::default();
    let mut client = ClientLayer::new()
        .safety_margin(Duration::from_millis(10))
        .layer(recorder.clone());
    let (grpc_answer, http_answer) =
        tokio_nursery::move_on_after(Duration::from_millis(5), async {
            let g = client.call(grpc()).await.unwrap();
            let h = client.call(http::Request::new(())).await.unwrap();
            (g, h)
        })
        .await
        .expect("answered at once");
    assert_eq!(grpc_answer.headers().get("grpc-status").unwrap(), "4");
    assert_eq!(http_answer.status(), http::StatusCode::GATEWAY_TIMEOUT);
    assert!(
        recorder.0.lock().unwrap().is_empty(),
        "the network was touched"
    );
}

/// An inner call that never answers: the layer answers at the timeout it wrote.
#[derive(Clone)]
struct Never;

impl Service<http::Request<()>> for Never {
    type Response = http::Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Pending<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        std::future::pending()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_call_still_running_at_the_written_timeout_ends_with_deadline_exceeded() {
    let mut client = ClientLayer::new()
        .safety_margin(Duration::from_millis(10))
        .layer(Never);
    let start = tokio::time::Instant::now();
    // `call` reads the deadline, so it runs inside the scope.
    let answer = tokio_nursery::move_on_after(Duration::from_millis(100), async {
        client.call(grpc()).await
    })
    .await
    .expect("before the caller's own deadline")
    .unwrap();
    assert_eq!(answer.headers().get("grpc-status").unwrap(), "4");
    assert_eq!(start.elapsed(), Duration::from_millis(90));
}
