//! The chain service: `/chain.Chain/Call` forwards to the next service (through `ClientLayer`)
//! or, at the end of the chain, sleeps. Every request reports when it started, the deadline it
//! saw, when and why it ended, and its cleanup.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use nursery_tower::{ClientLayer, ClientService, RequestCancel, RequestContext};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower_layer::Layer;
use tower_service::Service;

pub const PATH: &str = "/chain.Chain/Call";

/// The one message of the chain, both ways.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hop {
    /// The time left the callee saw, in milliseconds (the Python peer fills it in).
    #[prost(uint64, tag = "1")]
    pub remaining_ms: u64,
    /// Who answered.
    #[prost(string, tag = "2")]
    pub by: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        name: &'static str,
        at: Instant,
        deadline: Option<Instant>,
    },
    /// The handler future ended: returned (`cause` None, `code` its status) or was dropped by
    /// its scope (`cause` why).
    Ended {
        name: &'static str,
        at: Instant,
        cause: Option<RequestCancel>,
        code: Option<Code>,
    },
    Cleanup {
        name: &'static str,
    },
}

pub struct Node {
    pub name: &'static str,
    pub next: Option<ClientService<Channel>>,
    pub work: Duration,
    pub events: mpsc::UnboundedSender<Event>,
}

/// A client for `addr` behind `ClientLayer` with `margin`.
pub fn client(addr: std::net::SocketAddr, margin: Duration) -> ClientService<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_lazy();
    ClientLayer::new().safety_margin(margin).layer(channel)
}

/// One call of `/chain.Chain/Call` through any gRPC service.
pub async fn call<T>(service: T, hop: Hop) -> Result<Hop, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<nursery_tower::BoxError>,
    T::Error: Into<nursery_tower::BoxError>,
{
    let mut grpc = tonic::client::Grpc::new(service);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.into().to_string()))?;
    let codec: ProstCodec<Hop, Hop> = ProstCodec::default();
    grpc.unary(
        tonic::Request::new(hop),
        PathAndQuery::from_static(PATH),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The routing service tonic would generate.
#[derive(Clone)]
pub struct ChainService(pub Arc<Node>);

impl<B> Service<http::Request<B>> for ChainService
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
            if request.uri().path() != PATH {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let codec: ProstCodec<Hop, Hop> = ProstCodec::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(Handler(node), request).await)
        })
    }
}

struct Handler(Arc<Node>);

impl Service<tonic::Request<Hop>> for Handler {
    type Response = tonic::Response<Hop>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<Hop>) -> Self::Future {
        Box::pin(handle(Arc::clone(&self.0), request))
    }
}

/// Reports how the handler future ended, from its `Drop`: also when its scope drops it.
struct EndProbe {
    name: &'static str,
    ctx: RequestContext,
    events: mpsc::UnboundedSender<Event>,
    code: Option<Code>,
}

impl Drop for EndProbe {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Ended {
            name: self.name,
            at: Instant::now(),
            cause: self.ctx.cancel_cause(),
            code: self.code,
        });
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
    let _ = node.events.send(Event::Started {
        name: node.name,
        at: Instant::now(),
        deadline: ctx.deadline(),
    });
    let events = node.events.clone();
    let name = node.name;
    ctx.nursery()
        .defer(async move {
            let _ = events.send(Event::Cleanup { name });
            Ok(())
        })
        .map_err(|_| Status::internal("request nursery closed"))?;
    let mut probe = EndProbe {
        name: node.name,
        ctx: ctx.clone(),
        events: node.events.clone(),
        code: None,
    };
    let out = match &node.next {
        Some(next) => call(next.clone(), Hop::default()).await,
        None => {
            tokio::time::sleep(node.work).await;
            Ok(Hop {
                remaining_ms: 0,
                by: node.name.to_owned(),
            })
        }
    };
    probe.code = Some(out.as_ref().map_or_else(Status::code, |_| Code::Ok));
    out.map(tonic::Response::new)
}
