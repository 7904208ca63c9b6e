//! [`ServerLayer`] and the service it makes: reads the deadline, spawns the request's child.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HeaderName;
use http::{Request, Response};
use http_body::Body;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_nursery::{CancelHandle, CancelScope, NurseryHandle};
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{BoxError, RequestId};
use crate::server::body::ScopedBody;
use crate::server::future::ResponseFuture;
use crate::server::task::Job;
use crate::wire::response::{Failure, Protocol};
use crate::wire::timeout::parse_grpc_timeout;

/// Frames in flight between the request's child and hyper: one, so the handler feels
/// backpressure from the client as it would without the layer.
const FRAMES_IN_FLIGHT: usize = 1;

#[derive(Debug, Clone)]
struct Config {
    timeout_header: HeaderName,
    request_id_header: HeaderName,
    max_timeout: Option<Duration>,
    shutdown: Option<CancelHandle>,
}

/// A tower layer for servers (tonic routes, axum routers, any `Service<http::Request<_>>`):
/// every request runs as a child of the server's root nursery, in its own cancel scope and
/// nursery, until its response body has been sent.
///
/// - Its deadline comes from the `grpc-timeout` header (or the one set with
///   [`timeout_header`](Self::timeout_header), same format), capped by
///   [`max_timeout`](Self::max_timeout). A malformed value is answered with `INVALID_ARGUMENT`
///   (gRPC) or 400, without calling the service.
/// - At the deadline the handler is force-exited and the client gets `DEADLINE_EXCEEDED`
///   (`grpc-status: 4`) or 504; in the middle of a streamed gRPC body, `grpc-status: 4` in the
///   trailers.
/// - When hyper drops the response future or body (the client went away), the request's scope
///   is cancelled with [`CLIENT_DISCONNECTED`](crate::CLIENT_DISCONNECTED); the handler's
///   cleanups run once, in the root nursery, which graceful shutdown waits for.
/// - The handler finds a [`RequestContext`](crate::RequestContext) in the request's extensions.
///
/// The root nursery's handle closes when the server's nursery ends: requests arriving after that
/// get `UNAVAILABLE` or 503.
///
/// Tonic's own `transport::Server` applies `grpc-timeout` itself, outside every layer, and
/// answers `CANCELLED` first: serve tonic routes with hyper (as the tests and the `chain` example
/// do) to get the behaviour above.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use nursery_tower::ServerLayer;
/// use tower_layer::Layer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::nursery(|n| async move {
///     let layer = ServerLayer::new(n.handle()).max_timeout(Duration::from_secs(30));
///     let _service = layer.layer(tower_service_fn());
///     // ... accept connections and serve `_service` with hyper, inside this nursery.
///     Ok::<_, Infallible>(())
/// })
/// .await
/// .unwrap();
/// # }
/// # fn tower_service_fn() {}
/// ```
pub struct ServerLayer<E: fmt::Display + Send + 'static> {
    root: NurseryHandle<E>,
    config: Arc<Config>,
}

impl<E: fmt::Display + Send + 'static> Clone for ServerLayer<E> {
    fn clone(&self) -> Self {
        ServerLayer {
            root: self.root.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<E: fmt::Display + Send + 'static> fmt::Debug for ServerLayer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<E: fmt::Display + Send + 'static> ServerLayer<E> {
    /// A layer whose requests are children of `root` (the server's root nursery). Reads
    /// `grpc-timeout` and `x-request-id`; no maximum.
    ///
    /// ```
    /// # async fn f(n: tokio_nursery::NurseryHandle<std::convert::Infallible>) {
    /// let _layer = nursery_tower::ServerLayer::new(n);
    /// # }
    /// ```
    pub fn new(root: NurseryHandle<E>) -> Self {
        ServerLayer {
            root,
            config: Arc::new(Config {
                timeout_header: HeaderName::from_static("grpc-timeout"),
                request_id_header: HeaderName::from_static("x-request-id"),
                max_timeout: None,
                shutdown: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Reads the timeout from `header` instead of `grpc-timeout` (same value format, for plain
    /// HTTP services).
    ///
    /// ```
    /// # fn f(l: nursery_tower::ServerLayer<std::convert::Infallible>) {
    /// let _l = l.timeout_header(http::HeaderName::from_static("x-timeout"));
    /// # }
    /// ```
    pub fn timeout_header(mut self, header: HeaderName) -> Self {
        self.config_mut().timeout_header = header;
        self
    }

    /// Reads the request id from `header` instead of `x-request-id`.
    ///
    /// ```
    /// # fn f(l: nursery_tower::ServerLayer<std::convert::Infallible>) {
    /// let _l = l.request_id_header(http::HeaderName::from_static("x-correlation-id"));
    /// # }
    /// ```
    pub fn request_id_header(mut self, header: HeaderName) -> Self {
        self.config_mut().request_id_header = header;
        self
    }

    /// The server's shutdown scope (a [`CancelScope`] with a grace period around the server):
    /// when it starts draining, [`RequestContext::cancelled`](crate::RequestContext::cancelled)
    /// fires in every request, so handlers can hurry before the force-exit.
    ///
    /// ```
    /// # fn f(l: nursery_tower::ServerLayer<std::convert::Infallible>) {
    /// let scope = tokio_nursery::CancelScope::new().with_grace(std::time::Duration::from_secs(5));
    /// let _l = l.shutdown(scope.handle());
    /// # }
    /// ```
    pub fn shutdown(mut self, scope: CancelHandle) -> Self {
        self.config_mut().shutdown = Some(scope);
        self
    }

    /// Caps every request's timeout at `max`; requests without a timeout get `max`.
    ///
    /// ```
    /// # fn f(l: nursery_tower::ServerLayer<std::convert::Infallible>) {
    /// let _l = l.max_timeout(std::time::Duration::from_secs(10));
    /// # }
    /// ```
    pub fn max_timeout(mut self, max: Duration) -> Self {
        self.config_mut().max_timeout = Some(max);
        self
    }
}

impl<S, E: fmt::Display + Send + 'static> Layer<S> for ServerLayer<E> {
    type Service = ServerService<S, E>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ServerLayer`].
///
/// ```
/// # fn f<S>(s: nursery_tower::ServerService<S, std::convert::Infallible>) {}
/// ```
pub struct ServerService<S, E: fmt::Display + Send + 'static> {
    inner: S,
    layer: ServerLayer<E>,
}

impl<S: Clone, E: fmt::Display + Send + 'static> Clone for ServerService<S, E> {
    fn clone(&self) -> Self {
        ServerService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: fmt::Debug, E: fmt::Display + Send + 'static> fmt::Debug for ServerService<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerService")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, E, ReqB, ResB> Service<Request<ReqB>> for ServerService<S, E>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    E: fmt::Display + Send + 'static,
    ReqB: Send + 'static,
    ResB: Body + Send + 'static,
    ResB::Data: Send,
    ResB::Error: Into<BoxError> + Send,
{
    type Response = Response<ScopedBody<ResB::Data>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResB::Data, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let config = &*self.layer.config;
        let protocol = Protocol::of(request.headers());
        let timeout = match request.headers().get(&config.timeout_header) {
            None => config.max_timeout,
            Some(value) => match value.to_str().map_err(|_| ()).and_then(|v| {
                parse_grpc_timeout(v).map_err(|error| {
                    tracing::debug!(%error, value = v, "malformed timeout header");
                })
            }) {
                Ok(t) => Some(config.max_timeout.map_or(t, |max| t.min(max))),
                Err(()) => return reject(Failure::InvalidTimeout, protocol),
            },
        };
        if timeout == Some(Duration::ZERO) {
            // Spent before it arrived: the service is not called.
            return reject(Failure::DeadlineExceeded, protocol);
        }
        // Too far to represent: no deadline rather than an overflow.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if let Some(id) = request.headers().get(&config.request_id_header) {
            let id = RequestId::new(id.clone());
            request.extensions_mut().insert(id);
        }
        let mut scope = CancelScope::new();
        if let Some(deadline) = deadline {
            scope = scope.with_deadline(deadline);
        }
        let handle = scope.handle();
        // The ready service goes with the request; a clone stays for the next `poll_ready`.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let (head_tx, head_rx) = oneshot::channel();
        let (frames_tx, frames_rx) = mpsc::channel(FRAMES_IN_FLIGHT);
        let job = Job {
            service,
            request,
            scope,
            handle: handle.clone(),
            deadline,
            shutdown: config.shutdown.clone(),
            head: head_tx,
            frames: frames_tx,
        };
        // Boxed once here: the request's future is large (the whole handler state), and the
        // spawn path moves it by value several times before it reaches its task.
        let spawned = self.layer.root.spawn(Box::pin(async move {
            job.run().await;
            Ok(())
        }));
        match spawned {
            Ok(_) => ResponseFuture::waiting(head_rx, frames_rx, handle, protocol),
            Err(_closed) => reject(Failure::Unavailable, protocol),
        }
    }
}

fn reject<D, SE>(failure: Failure, protocol: Protocol) -> ResponseFuture<D, SE> {
    ResponseFuture::ready(failure.response(protocol, ScopedBody::empty()))
}
