//! The request id as an inherited context value: the server layer binds it for the request, so
//! the handler, a child it spawns and a nursery nested in that child all read it with
//! `RequestId::current()`, and the client layer writes it on an outgoing call made from there
//! without the handler passing it along.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use nursery_tower::{ClientLayer, ClientService, RequestContext, RequestId, ServerLayer};
use support::recorder::Recorder;
use tokio::sync::oneshot;
use tower_layer::Layer;
use tower_service::Service;

/// What each level of the request saw as the current id.
type Seen = Arc<Mutex<Vec<(&'static str, Option<String>)>>>;

fn note(seen: &Seen, level: &'static str) {
    let id = RequestId::current().and_then(|id| id.as_str().map(str::to_owned));
    seen.lock().unwrap().push((level, id));
}

/// The handler: spawns a child into the request's nursery; the child opens a nursery of its own
/// whose child calls downstream. Nothing passes the id by hand.
#[derive(Clone)]
struct Handler {
    client: ClientService<Recorder>,
    seen: Seen,
}

impl<B: Send + 'static> Service<http::Request<B>> for Handler {
    type Response = http::Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let ctx = request
            .extensions()
            .get::<RequestContext>()
            .expect("the server layer's context")
            .clone();
        let (client, seen) = (self.client.clone(), Arc::clone(&self.seen));
        Box::pin(async move {
            note(&seen, "handler");
            let (done_tx, done) = oneshot::channel();
            let child_seen = Arc::clone(&seen);
            ctx.nursery()
                .spawn(async move {
                    note(&child_seen, "child");
                    tokio_nursery::nursery(|n| async move {
                        n.spawn(async move {
                            note(&child_seen, "grandchild");
                            let mut client = client;
                            client.call(http::Request::new(())).await?;
                            let _ = done_tx.send(());
                            Ok(())
                        });
                        Ok(())
                    })
                    .await
                })
                .expect("the request's nursery is open");
            done.await.expect("the grandchild called downstream");
            Ok(http::Response::new(Empty::new()))
        })
    }
}

async fn serve_one<S, B>(server: &mut S, id: Option<&str>)
where
    S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut request = http::Request::get("/fanout").body(Empty::new()).unwrap();
    if let Some(id) = id {
        request
            .headers_mut()
            .insert("x-request-id", id.parse().unwrap());
    }
    std::future::poll_fn(|cx| server.poll_ready(cx))
        .await
        .unwrap();
    let response = server.call(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    response.into_body().collect().await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_request_id_reaches_nested_children_and_their_outgoing_calls() {
    let downstream = Recorder::default();
    let seen = Seen::default();
    let handler = Handler {
        client: ClientLayer::new().layer(downstream.clone()),
        seen: Arc::clone(&seen),
    };
    tokio_nursery::nursery(|root| async move {
        let mut server = ServerLayer::new(root.handle()).layer(handler);
        serve_one(&mut server, Some("req-5")).await;
        serve_one(&mut server, None).await;
        Ok::<_, Infallible>(())
    })
    .await
    .unwrap();
    let id = |s: &str| Some(s.to_owned());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("handler", id("req-5")),
            ("child", id("req-5")),
            ("grandchild", id("req-5")),
            ("handler", None),
            ("child", None),
            ("grandchild", None),
        ]
    );
    let calls = downstream.0.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].get("x-request-id").unwrap(), "req-5");
    assert_eq!(
        calls[1].get("x-request-id"),
        None,
        "no id leaks into the next request"
    );
    // Outside any request there is none.
    assert_eq!(RequestId::current(), None);
}
