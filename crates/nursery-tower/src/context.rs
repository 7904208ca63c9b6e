//! What the server layer hands a request's handler: the request's deadline, its cancel scope,
//! its nursery and its id, as one request extension.

use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;
use tokio_nursery::{CancelHandle, CancelReason, Cancelled, NurseryHandle};

/// Any error, boxed: what response bodies and request children fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error type of a request's nursery: any error, so a child spawned under a request fails
/// with `?` on whatever it calls.
///
/// ```
/// let e = nursery_tower::ChildError::from(std::io::Error::other("gone"));
/// assert_eq!(e.to_string(), "gone");
/// ```
#[derive(Debug)]
pub struct ChildError(pub BoxError);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for ChildError {
    fn from(error: E) -> Self {
        ChildError(Box::new(error))
    }
}

impl std::fmt::Display for ChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The message a request's scope is cancelled with when the client goes away (hyper dropped the
/// response future or the response body before the end). [`RequestCancel::of`] recognises it.
pub const CLIENT_DISCONNECTED: &str = "client disconnected";

/// A request's id, read from the configured request-id header (`x-request-id` by default) and
/// written on outgoing calls by [`ClientLayer`](crate::ClientLayer).
///
/// The server layer binds it as an inherited context value ([`tokio_nursery::Local`]) for the
/// whole request: the handler, every child it spawns or starts at any depth, and their cleanups
/// read it with [`RequestId::current`], for logs, and the client layer writes it on every
/// outgoing call made there, with no plumbing through the handler's code.
///
/// ```
/// let id = nursery_tower::RequestId::new(http::HeaderValue::from_static("req-7"));
/// assert_eq!(id.as_str(), Some("req-7"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Wraps a header value.
    ///
    /// ```
    /// let id = nursery_tower::RequestId::new(http::HeaderValue::from_static("a"));
    /// assert_eq!(id.header_value(), "a");
    /// ```
    pub fn new(value: HeaderValue) -> Self {
        RequestId(value)
    }

    /// The id as a header value.
    ///
    /// ```
    /// let id = nursery_tower::RequestId::new(http::HeaderValue::from_static("a"));
    /// assert_eq!(id.header_value().as_bytes(), b"a");
    /// ```
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The id as text, if it is visible ASCII.
    ///
    /// ```
    /// let id = nursery_tower::RequestId::new(http::HeaderValue::from_static("a"));
    /// assert_eq!(id.as_str(), Some("a"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        self.0.to_str().ok()
    }

    /// The id of the request being served here: bound by the server layer for the request's
    /// handler and everything it spawns; `None` outside a request, or when the request came
    /// without one.
    ///
    /// ```
    /// use nursery_tower::RequestId;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// assert_eq!(RequestId::current(), None);
    /// let id = RequestId::new(http::HeaderValue::from_static("req-9"));
    /// let seen = id.clone().bind(async {
    ///     tokio_nursery::nursery(|n| async move {
    ///         // A child spawned inside the request sees the same id.
    ///         Ok::<_, std::io::Error>(n.spawn_returning(async { Ok(RequestId::current()) }).join().await)
    ///     })
    ///     .await
    /// })
    /// .await;
    /// assert_eq!(seen.unwrap().unwrap(), Some(id));
    /// # }
    /// ```
    pub fn current() -> Option<RequestId> {
        CURRENT_REQUEST_ID.get()
    }

    /// Runs `fut` with this id as the [current](Self::current) one, inherited by every child
    /// started inside it. The server layer does this for each request that carries an id; use it
    /// where work on behalf of a request starts elsewhere (a queue consumer, a test).
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `fut`: dropping it drops `fut`, and the binding ends with it.
    ///
    /// # Drop behavior
    ///
    /// Dropping it drops `fut`; the id stays bound while `fut`'s drop runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let id = nursery_tower::RequestId::new(http::HeaderValue::from_static("job-1"));
    /// id.bind(async { assert!(nursery_tower::RequestId::current().is_some()) }).await;
    /// # }
    /// ```
    pub fn bind<F: std::future::Future>(self, fut: F) -> tokio_nursery::LocalScope<RequestId, F> {
        CURRENT_REQUEST_ID.scope(self, fut)
    }
}

/// The id of the request being served, inherited by its children (`RequestId::current`).
static CURRENT_REQUEST_ID: tokio_nursery::Local<RequestId> =
    tokio_nursery::Local::named("nursery_tower::RequestId");

/// Why a request's scope was cancelled, read from its [`CancelReason`].
///
/// ```
/// use nursery_tower::RequestCancel;
/// use tokio_nursery::CancelScope;
///
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// handle.cancel_with(nursery_tower::CLIENT_DISCONNECTED);
/// assert_eq!(RequestCancel::of(&handle.cancel_reason().unwrap()), RequestCancel::ClientDisconnected);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestCancel {
    /// The request's deadline (from the timeout header, capped by the server maximum) passed.
    DeadlineExceeded,
    /// The client went away before the response body was sent.
    ClientDisconnected,
    /// The server is shutting down (an enclosing scope was cancelled).
    ServerShutdown,
    /// A child spawned under the request failed, or some other explicit cancel.
    Other,
}

impl RequestCancel {
    /// Classifies a request scope's cancel reason.
    ///
    /// ```
    /// use nursery_tower::RequestCancel;
    /// use tokio_nursery::CancelScope;
    ///
    /// let scope = CancelScope::new();
    /// let handle = scope.handle();
    /// handle.cancel_with("something else");
    /// assert_eq!(RequestCancel::of(&handle.cancel_reason().unwrap()), RequestCancel::Other);
    /// ```
    pub fn of(reason: &CancelReason) -> Self {
        if reason.is_inherited() {
            return RequestCancel::ServerShutdown;
        }
        if reason.is_deadline() {
            RequestCancel::DeadlineExceeded
        } else if reason.message() == Some(CLIENT_DISCONNECTED) {
            RequestCancel::ClientDisconnected
        } else {
            RequestCancel::Other
        }
    }
}

/// The request extension the server layer inserts before calling the service: read it with
/// `request.extensions().get::<RequestContext>()` (tonic: `request.extensions()`; axum: the
/// `Extension` extractor).
///
/// ```
/// use nursery_tower::RequestContext;
///
/// async fn handler(request: http::Request<()>) {
///     let ctx = request.extensions().get::<RequestContext>().expect("behind ServerLayer");
///     if let Some(left) = ctx.time_remaining() {
///         println!("{left:?} left for request {:?}", ctx.id());
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub(crate) id: Option<RequestId>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) scope: CancelHandle,
    pub(crate) nursery: NurseryHandle<ChildError>,
    pub(crate) shutdown: Option<CancelHandle>,
}

impl RequestContext {
    /// The request's id, if the client sent one.
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _id: Option<&nursery_tower::RequestId> = ctx.id();
    /// # }
    /// ```
    pub fn id(&self) -> Option<&RequestId> {
        self.id.as_ref()
    }

    /// The request's deadline: from the timeout header, capped by the server maximum. The
    /// handler also sees it as [`tokio_nursery::current_deadline`].
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _deadline: Option<tokio::time::Instant> = ctx.deadline();
    /// # }
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once it passed), or `None` without a deadline.
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _left: Option<std::time::Duration> = ctx.time_remaining();
    /// # }
    /// ```
    pub fn time_remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The request's cancel scope: cancel the request, or read why it was cancelled.
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _cancelled: bool = ctx.scope().cancel_called();
    /// # }
    /// ```
    pub fn scope(&self) -> &CancelHandle {
        &self.scope
    }

    /// The request's nursery: work spawned here is structured under the request (cancelled with
    /// it, waited for before the response ends).
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _ = ctx.nursery().spawn(async { Ok(()) });
    /// # }
    /// ```
    pub fn nursery(&self) -> &NurseryHandle<ChildError> {
        &self.nursery
    }

    /// Fires when the request is cancelled (its deadline, a client disconnect, a force-exit) or
    /// when the server enters its shutdown drain (the scope given to
    /// [`ServerLayer::shutdown`](crate::ServerLayer::shutdown)): time to hurry.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing.
    ///
    /// ```
    /// # async fn f(ctx: &nursery_tower::RequestContext) {
    /// ctx.cancelled().await;
    /// # }
    /// ```
    pub fn cancelled(&self) -> RequestCancelled<'_> {
        RequestCancelled {
            scope: self.scope.cancelled(),
            shutdown: self.shutdown.as_ref().map(CancelHandle::cancelled),
        }
    }

    /// Whether the server is shutting down (draining or force-exiting).
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _hurry: bool = ctx.is_shutting_down();
    /// # }
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(CancelHandle::cancel_called)
    }

    /// Why the request was cancelled, if it was.
    ///
    /// ```
    /// # fn f(ctx: &nursery_tower::RequestContext) {
    /// let _why: Option<nursery_tower::RequestCancel> = ctx.cancel_cause();
    /// # }
    /// ```
    pub fn cancel_cause(&self) -> Option<RequestCancel> {
        self.scope.cancel_reason().map(|r| RequestCancel::of(&r))
    }
}

/// The future of [`RequestContext::cancelled`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Nothing happens on drop.
#[pin_project::pin_project]
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct RequestCancelled<'a> {
    #[pin]
    scope: Cancelled<'a>,
    #[pin]
    shutdown: Option<Cancelled<'a>>,
}

impl std::future::Future for RequestCancelled<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.project();
        if this.scope.poll(cx).is_ready() {
            return std::task::Poll::Ready(());
        }
        match this.shutdown.as_pin_mut() {
            Some(shutdown) => shutdown.poll(cx),
            None => std::task::Poll::Pending,
        }
    }
}
