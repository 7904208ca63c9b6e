//! Serving any tower service behind `ServerLayer` on 127.0.0.1, in a root nursery, with a
//! two-phase shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use nursery_tower::{ServerLayer, ServerService};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_nursery::{nursery, CancelHandle, CancelScope};
use tower_layer::Layer;
use tower_service::Service;

/// A server running on loopback until `stop`.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancelHandle,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, drains for the grace period, force-exits the rest; returns when every
    /// request's cleanups have run.
    pub async fn stop(self) {
        self.stop.cancel_with("test over");
        self.task.await.expect("server task");
    }

    pub fn stop_handle(&self) -> CancelHandle {
        self.stop.clone()
    }
}

pub async fn start<S, B>(
    service: S,
    grace: Duration,
    configure: impl FnOnce(ServerLayer<Infallible>) -> ServerLayer<Infallible> + Send + 'static,
    http2_only: bool,
) -> Server
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<nursery_tower::BoxError> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let scope = CancelScope::new().with_grace(grace);
    let stop = scope.handle();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        let _ = scope
            .run(nursery(|n| async move {
                let layered: ServerService<S, Infallible> =
                    configure(ServerLayer::new(n.handle()).shutdown(shutdown.clone()))
                        .layer(service);
                loop {
                    let accepted = tokio::select! {
                        accepted = listener.accept() => accepted,
                        // Phase one: stop accepting.
                        () = shutdown.cancelled() => return Ok::<_, Infallible>(()),
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let svc = TowerToHyperService::new(layered.clone());
                    let shutdown = shutdown.clone();
                    n.spawn(async move {
                        serve_connection(stream, svc, shutdown, http2_only).await;
                        Ok(())
                    });
                }
            }))
            .await;
    });
    Server { addr, stop, task }
}

async fn serve_connection<T>(
    stream: tokio::net::TcpStream,
    svc: TowerToHyperService<T>,
    shutdown: CancelHandle,
    http2_only: bool,
) where
    T: Service<
            http::Request<Incoming>,
            Response = http::Response<nursery_tower::ScopedBody<bytes::Bytes>>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    T::Future: Send + 'static,
{
    let io = TokioIo::new(stream);
    if http2_only {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
    } else {
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
    }
}
