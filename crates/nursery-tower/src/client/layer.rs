//! [`ClientLayer`], its service, future and body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

use crate::context::{RequestContext, RequestId};
use crate::wire::response::{Failure, Protocol};
use crate::wire::timeout::{format_grpc_timeout, parse_grpc_timeout};

/// A tower layer for clients (a tonic `Channel`, a hyper-util client): every outgoing request
/// carries the caller's remaining [`current_deadline`](tokio_nursery::current_deadline) as
/// `grpc-timeout` (or the header set with [`timeout_header`](Self::timeout_header)), minus the
/// [`safety_margin`](Self::safety_margin), rounded down, so the callee never sees a later
/// deadline than its caller. A timeout already on the request is kept if it is shorter.
///
/// When the budget is already spent, the call is answered at once with `DEADLINE_EXCEEDED`
/// (gRPC, trailers-only) or 504, and the inner service is not called. The call is cancelled
/// with the caller's scope: the scope drops this future, which drops the inner call (a tonic or
/// hyper client then resets the stream, and the server layer on the other side sees a client
/// disconnect).
///
/// The deadline is read in `call`, so `call` must run inside the caller's scope: generated tonic
/// clients and `tonic::client::Grpc` call it while their future is polled, which is; a future
/// built outside the scope and awaited inside it is not.
///
/// The request id travels too, written as `x-request-id`: from a [`RequestId`] or
/// [`RequestContext`] extension on the outgoing request, or else the id of the request being
/// served where the call is made ([`RequestId::current`], inherited by every child the handler
/// spawns).
///
/// ```
/// use std::time::Duration;
/// use nursery_tower::ClientLayer;
///
/// let _layer = ClientLayer::new().safety_margin(Duration::from_millis(5));
/// // tower::ServiceBuilder::new().layer(_layer).service(channel), then GreeterClient::new(that)
/// ```
#[derive(Debug, Clone)]
pub struct ClientLayer {
    timeout_header: HeaderName,
    request_id_header: HeaderName,
    margin: Duration,
}

impl Default for ClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientLayer {
    /// Writes `grpc-timeout` and `x-request-id`, no safety margin.
    ///
    /// ```
    /// let _layer = nursery_tower::ClientLayer::new();
    /// ```
    pub fn new() -> Self {
        ClientLayer {
            timeout_header: HeaderName::from_static("grpc-timeout"),
            request_id_header: HeaderName::from_static("x-request-id"),
            margin: Duration::ZERO,
        }
    }

    /// Writes the timeout in `header` instead of `grpc-timeout` (same value format).
    ///
    /// ```
    /// let _l = nursery_tower::ClientLayer::new().timeout_header(http::HeaderName::from_static("x-timeout"));
    /// ```
    pub fn timeout_header(mut self, header: HeaderName) -> Self {
        self.timeout_header = header;
        self
    }

    /// Writes the request id in `header` instead of `x-request-id`.
    ///
    /// ```
    /// let _l = nursery_tower::ClientLayer::new().request_id_header(http::HeaderName::from_static("x-corr"));
    /// ```
    pub fn request_id_header(mut self, header: HeaderName) -> Self {
        self.request_id_header = header;
        self
    }

    /// Takes `margin` off the remaining time, for the time the request spends on the wire.
    ///
    /// ```
    /// let _l = nursery_tower::ClientLayer::new().safety_margin(std::time::Duration::from_millis(2));
    /// ```
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`ClientLayer`].
///
/// ```
/// # fn f<S>(_s: nursery_tower::ClientService<S>) {}
/// ```
#[derive(Debug, Clone)]
pub struct ClientService<S> {
    inner: S,
    layer: ClientLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ClientService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ClientBody<ResB>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqB>) -> Self::Future {
        let protocol = Protocol::of(request.headers());
        let mut expires = None;
        if let Some(deadline) = tokio_nursery::current_deadline() {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(self.layer.margin);
            let header = &self.layer.timeout_header;
            let already = request
                .headers()
                .get(header)
                .and_then(|v| parse_grpc_timeout(v.to_str().ok()?).ok());
            let timeout = already.map_or(left, |t| t.min(left));
            if timeout.is_zero() {
                let response = Failure::DeadlineExceeded.response(protocol, ClientBody::empty());
                return ClientFuture::spent(response);
            }
            let value = HeaderValue::try_from(format_grpc_timeout(timeout))
                .expect("digits and a unit letter are a valid header value");
            request.headers_mut().insert(header.clone(), value);
            expires = Some(Instant::now() + timeout);
        }
        // An id set on this request wins; otherwise the one the server layer bound for the
        // request being served here (inherited by the children that make the call).
        let id = request
            .extensions()
            .get::<RequestId>()
            .or_else(|| request.extensions().get::<RequestContext>()?.id())
            .map(|id| id.header_value().clone())
            .or_else(|| RequestId::current().map(|id| id.header_value().clone()));
        if let Some(id) = id {
            let name = self.layer.request_id_header.clone();
            request.headers_mut().entry(name).or_insert(id);
        }
        ClientFuture::call(self.inner.call(request), expires, protocol)
    }
}

/// The response future of a [`ClientService`].
///
/// # Cancel safety
///
/// Dropping it drops the inner call: with a tonic or hyper client the stream is reset and the
/// server sees the client go away.
///
/// # Drop behavior
///
/// Nothing beyond dropping the inner call.
///
/// At the timeout it wrote, it answers `DEADLINE_EXCEEDED` (or 504) itself and drops the inner
/// call: clients that enforce `grpc-timeout` locally (tonic's `Channel` answers `CANCELLED`)
/// never get there first, since this timer is set no later than theirs and is polled first.
#[must_use = "the call is only made while this future is polled"]
#[derive(Debug)]
#[pin_project]
pub struct ClientFuture<F, B> {
    #[pin]
    state: CallState<F, B>,
}

#[pin_project(project = CallStateProj)]
#[derive(Debug)]
enum CallState<F, B> {
    Call {
        #[pin]
        call: F,
        #[pin]
        expires: Option<tokio::time::Sleep>,
        protocol: Protocol,
    },
    Spent(Option<Response<ClientBody<B>>>),
}

impl<F, B> ClientFuture<F, B> {
    fn call(call: F, expires: Option<Instant>, protocol: Protocol) -> Self {
        ClientFuture {
            state: CallState::Call {
                call,
                expires: expires.map(tokio::time::sleep_until),
                protocol,
            },
        }
    }

    fn spent(response: Response<ClientBody<B>>) -> Self {
        ClientFuture {
            state: CallState::Spent(Some(response)),
        }
    }
}

impl<F, B, E> Future for ClientFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ClientBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            CallStateProj::Call {
                call,
                expires,
                protocol,
            } => {
                if let Some(expires) = expires.as_pin_mut() {
                    if expires.poll(cx).is_ready() {
                        let response =
                            Failure::DeadlineExceeded.response(*protocol, ClientBody::empty());
                        return Poll::Ready(Ok(response));
                    }
                }
                call.poll(cx)
                    .map(|r| r.map(|response| response.map(ClientBody::inner)))
            }
            CallStateProj::Spent(response) => Poll::Ready(Ok(response
                .take()
                .expect("ClientFuture polled after completion"))),
        }
    }
}

/// The response body of a [`ClientService`]: the inner body, or an empty one when the layer
/// answered itself.
///
/// ```
/// use http_body::Body;
/// let body = nursery_tower::ClientBody::<http_body_util::Empty<bytes::Bytes>>::empty();
/// assert!(body.is_end_stream());
/// ```
#[pin_project]
#[derive(Debug)]
pub struct ClientBody<B> {
    #[pin]
    inner: Option<B>,
}

impl<B> ClientBody<B> {
    /// An empty body.
    ///
    /// ```
    /// let _ = nursery_tower::ClientBody::<http_body_util::Empty<bytes::Bytes>>::empty();
    /// ```
    pub fn empty() -> Self {
        ClientBody { inner: None }
    }

    fn inner(body: B) -> Self {
        ClientBody { inner: Some(body) }
    }
}

impl<B: Body> Body for ClientBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(body) => body.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
