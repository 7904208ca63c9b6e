//! Three gRPC services on loopback, A -> B -> C, each behind `ServerLayer` and calling the next
//! through `ClientLayer`. The caller gives A 200 ms; C would work for 10 s. Each service prints
//! when it started, the deadline it saw, and when and why it ended. Then the servers shut down
//! in two phases (stop accepting, drain while `cancelled()` says hurry, force-exit).
//!
//! ```text
//! cargo run -p nursery-tower --example chain
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use nursery_tower::{ClientLayer, ClientService, RequestContext, ServerLayer};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_nursery::{nursery, CancelHandle, CancelScope};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;
use tonic_prost::ProstCodec;
use tower_layer::Layer;
use tower_service::Service;

const PATH: &str = "/chain.Chain/Call";

/// The one message, both ways (hand-written: no protoc needed).
#[derive(Clone, PartialEq, prost::Message)]
struct Hop {
    #[prost(string, tag = "2")]
    by: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Node {
    name: &'static str,
    next: Option<ClientService<Channel>>,
    epoch: Instant,
}

fn ms(node: &Node, at: Instant) -> String {
    format!(
        "+{:>3} ms",
        at.saturating_duration_since(node.epoch).as_millis()
    )
}

async fn call(service: ClientService<Channel>) -> Result<Hop, Status> {
    let mut grpc = tonic::client::Grpc::new(service);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let codec: ProstCodec<Hop, Hop> = ProstCodec::default();
    let path = PathAndQuery::from_static(PATH);
    grpc.unary(tonic::Request::new(Hop::default()), path, codec)
        .await
        .map(tonic::Response::into_inner)
}

/// Prints how the handler ended, from `Drop`: also when its scope force-exits it.
struct Report<'a>(&'a Node, RequestContext, Option<String>);

impl Drop for Report<'_> {
    fn drop(&mut self) {
        let why = match (&self.2, self.1.cancel_cause()) {
            (_, Some(cause)) => format!("force-exited: {cause:?}"),
            (Some(answer), None) => format!("returned {answer}"),
            (None, None) => "dropped".to_owned(),
        };
        println!(
            "{}  {:>2} ended    {why}",
            ms(self.0, Instant::now()),
            self.0.name
        );
    }
}

async fn handle(
    node: Arc<Node>,
    request: tonic::Request<Hop>,
) -> Result<tonic::Response<Hop>, Status> {
    let ctx = request
        .extensions()
        .get::<RequestContext>()
        .cloned()
        .ok_or_else(|| Status::internal("not behind ServerLayer"))?;
    let seen = ctx.deadline().map_or("none".to_owned(), |d| ms(&node, d));
    println!(
        "{}  {:>2} started  deadline seen {seen}",
        ms(&node, Instant::now()),
        node.name
    );
    let name = node.name;
    let _ = ctx.nursery().defer(async move {
        println!("           {name:>2} cleanup ran");
        Ok(())
    });
    let mut report = Report(&node, ctx.clone(), None);
    let out = match &node.next {
        Some(next) => call(next.clone()).await,
        None => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Hop {
                by: name.to_owned(),
            })
        }
    };
    report.2 = Some(
        out.as_ref()
            .map_or_else(|s| format!("{:?}", s.code()), |_| "OK".into()),
    );
    drop(report);
    out.map(tonic::Response::new)
}

#[derive(Clone)]
struct Chain(Arc<Node>);

impl<B> Service<http::Request<B>> for Chain
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<nursery_tower::BoxError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let node = Arc::clone(&self.0);
        Box::pin(async move {
            let codec: ProstCodec<Hop, Hop> = ProstCodec::default();
            let handler = tower::service_fn(move |r| handle(Arc::clone(&node), r));
            Ok(tonic::server::Grpc::new(codec)
                .unary(handler, request)
                .await)
        })
    }
}

/// Serves `node` until `shutdown` is cancelled: then stops accepting, lets connections drain
/// for the scope's grace period, and force-exits what is left (cleanups run).
async fn serve(listener: TcpListener, node: Arc<Node>, scope: CancelScope) {
    let shutdown = scope.handle();
    let _ = scope
        .run(nursery(|n| async move {
            let layer = ServerLayer::new(n.handle()).shutdown(shutdown.clone());
            let service = layer.layer(Chain(node));
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    () = shutdown.cancelled() => return Ok::<_, Infallible>(()),
                };
                let service = TowerToHyperService::new(service.clone());
                let shutdown = shutdown.clone();
                n.spawn(async move {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return Ok(()),
                        () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
                    }
                    let _ = conn.await;
                    Ok(())
                });
            }
        }))
        .await;
}

#[tokio::main]
async fn main() {
    let epoch = Instant::now();
    let margin = Duration::from_millis(5);
    let grace = Duration::from_millis(200);
    let mut next = None;
    let mut servers: Vec<(CancelHandle, tokio::task::JoinHandle<()>)> = Vec::new();
    for name in ["C", "B", "A"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let node = Arc::new(Node {
            name,
            next: next.take(),
            epoch,
        });
        let scope = CancelScope::new().with_grace(grace).with_name(name);
        servers.push((scope.handle(), tokio::spawn(serve(listener, node, scope))));
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        next = Some(ClientLayer::new().safety_margin(margin).layer(channel));
    }
    let a = next.expect("A");
    let start = Instant::now();
    let budget = Duration::from_millis(200);
    println!(
        "+{:>3} ms  caller calls A with a {budget:?} budget (deadline +{} ms)",
        start.duration_since(epoch).as_millis(),
        (start + budget).duration_since(epoch).as_millis()
    );
    // The caller's own scope: `ClientLayer` sends A what is left of it.
    let out = tokio_nursery::move_on_after(budget, call(a.clone())).await;
    let when = start.elapsed().as_millis();
    match out {
        Some(Ok(hop)) => println!("caller: OK from {} after {when} ms", hop.by),
        Some(Err(status)) => println!("caller: {:?} after {when} ms", status.code()),
        None => println!("caller: gave up itself after {when} ms"),
    }
    // A second call with a long budget is still in flight when the servers shut down: they
    // stop accepting, drain for the grace period, then force-exit it (its cleanups run).
    let slow = tokio::spawn(tokio_nursery::move_on_after(
        Duration::from_secs(5),
        call(a),
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!(
        "+{:>3} ms  shutting down: stop accepting, drain {grace:?}, then force-exit",
        epoch.elapsed().as_millis()
    );
    for (handle, _) in &servers {
        handle.cancel_with("shutdown");
    }
    for (_, task) in servers {
        let _ = task.await;
    }
    match slow.await {
        Ok(Some(Err(status))) => println!("second caller: {:?}", status.code()),
        other => println!("second caller: {other:?}"),
    }
    println!(
        "+{:>3} ms  all servers stopped, every cleanup run",
        epoch.elapsed().as_millis()
    );
}
