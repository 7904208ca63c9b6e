//! `CancelScope`, its builder options and `CancelHandle`: the public face of a scope node. Running
//! a scope (`CancelScope::run`) hands the body to `run.rs`; the node itself lives in `tree.rs`.

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cancel::context::NodeSpec;
use crate::cancel::reason::CancelReason;
use crate::cancel::run::Run;
use crate::cancel::tree::{Node, NodeKind};

/// Where a cancellation starts: a region of code that can be cancelled, given a deadline, or
/// shielded from enclosing cancellation (trio's `CancelScope`).
///
/// Build it, take as many [`CancelHandle`]s as needed, then [`run`](Self::run) a future in it.
/// `run` consumes the scope, so a scope runs at most once:
///
/// ```compile_fail
/// use tokio_nursery::CancelScope;
/// # async fn f() {
/// let scope = CancelScope::new();
/// scope.run(async {}).await;
/// scope.run(async {}).await; // error: use of moved value
/// # }
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio_nursery::CancelScope;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let scope = CancelScope::new().with_timeout(Duration::from_secs(1));
/// let handle = scope.handle();
/// let out = scope.run(tokio::time::sleep(Duration::from_secs(5))).await;
/// assert_eq!(out, None);
/// assert!(handle.cancelled_caught());
/// assert!(handle.cancel_reason().unwrap().is_deadline());
/// # }
/// ```
#[must_use = "a CancelScope does nothing until `run` is called and awaited"]
#[derive(Debug)]
pub struct CancelScope {
    /// Made on demand: by `handle`, or by the first poll of `run` (lazily, see `context`).
    node: OnceLock<Arc<Node>>,
    spec: NodeSpec,
    timeout: Option<Duration>,
    grace: Option<Duration>,
    token: Option<CancellationToken>,
}

impl Default for CancelScope {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelScope {
    /// A scope with no deadline, not shielded.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// assert_eq!(tokio_nursery::CancelScope::new().run(async { 1 }).await, Some(1));
    /// # }
    /// ```
    #[track_caller]
    pub fn new() -> Self {
        Self::of_kind(NodeKind::Scope, Some(std::panic::Location::caller()))
    }

    /// A scope whose node is of `kind` (cleanup scopes are rendered as such), built at
    /// `location` in the user's code.
    #[inline]
    pub(crate) fn of_kind(
        kind: NodeKind,
        location: Option<&'static std::panic::Location<'static>>,
    ) -> Self {
        CancelScope {
            node: OnceLock::new(),
            spec: NodeSpec {
                kind,
                location,
                ..NodeSpec::EMPTY
            },
            timeout: None,
            grace: None,
            token: None,
        }
    }

    /// Sets an absolute deadline (the earlier one wins if combined with
    /// [`with_timeout`](Self::with_timeout)). A deadline already passed at the first poll cancels
    /// the scope before its body is polled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new().with_deadline(Instant::now() + Duration::from_secs(1));
    /// assert_eq!(scope.run(std::future::pending::<()>()).await, None);
    /// # }
    /// ```
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        let earliest = self.spec.deadline.map_or(deadline, |d| d.min(deadline));
        self.spec.deadline = Some(earliest);
        if let Some(node) = self.node.get() {
            node.tighten_deadline(deadline);
        }
        self
    }

    /// Sets a deadline relative to the *first poll* of `run` (not to this call).
    /// `Duration::MAX`, or any timeout too large to represent, means no deadline.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new().with_timeout(Duration::MAX);
    /// assert_eq!(scope.run(async { 3 }).await, Some(3));
    /// # }
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(self.timeout.map_or(timeout, |t| t.min(timeout)));
        self
    }

    /// Shields the scope from enclosing cancellation (its own cancel and deadline still work).
    ///
    /// ```
    /// use tokio_nursery::CancelScope;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let outer = CancelScope::new();
    /// let h = outer.handle();
    /// let out = outer
    ///     .run(async move {
    ///         h.cancel();
    ///         // Still runs to the end: the shield blocks the outer cancellation.
    ///         CancelScope::new().with_shield(true).run(tokio::task::yield_now()).await
    ///     })
    ///     .await;
    /// assert_eq!(out, Some(Some(())));
    /// # }
    /// ```
    pub fn with_shield(mut self, shield: bool) -> Self {
        self.spec.shield = shield;
        if let Some(node) = self.node.get() {
            node.init_shield(shield);
        }
        self
    }

    /// Gives the scope a grace period: when it is cancelled (its own cancellation or an enclosing
    /// one), it first *drains* — [`CancelHandle::cancelled`] fires and
    /// [`cancel_called`](CancelHandle::cancel_called) reports it, but nothing inside is cancelled
    /// yet, so shutdown code can still use timeouts and nurseries — and cancels hard when the
    /// grace period ends, or at once if an enclosing deadline has already passed (the drain never
    /// outlives an enclosing bound). A body that finishes during the drain returns its value.
    ///
    /// Graceful shutdown of a server: stop accepting when `cancelled()` fires, let in-flight work
    /// finish, and give up after the grace period.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_nursery::CancelScope;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let scope = CancelScope::new().with_grace(Duration::from_secs(5));
    /// let shutdown = scope.handle();
    /// let trigger = shutdown.clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     trigger.cancel_with("SIGTERM");
    /// });
    /// let served = scope
    ///     .run(async {
    ///         let mut served = 0;
    ///         loop {
    ///             tokio::select! {
    ///                 _ = shutdown.cancelled() => break, // stop accepting
    ///                 _ = tokio::time::sleep(Duration::from_millis(100)) => served += 1,
    ///             }
    ///         }
    ///         tokio::time::sleep(Duration::from_secs(2)).await; // finish in-flight work
    ///         served
    ///     })
    ///     .await;
    /// assert_eq!(served, Some(10)); // finished within the grace period
    /// # }
    /// ```
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Cancels the scope when `token` (tokio-util) is cancelled: code that already speaks
    /// `CancellationToken` can stop a scope. A token already cancelled at the first poll
    /// cancels the scope before its body is polled.
    ///
    /// ```
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let token = CancellationToken::new();
    /// let scope = tokio_nursery::CancelScope::new().with_cancellation_token(token.clone());
    /// let out = scope
    ///     .run(async {
    ///         token.cancel();
    ///         std::future::pending::<()>().await
    ///     })
    ///     .await;
    /// assert_eq!(out, None);
    /// # }
    /// ```
    pub fn with_cancellation_token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Names the scope: the name appears in [`CancelHandle::render_tree`] and in the scope's
    /// `tracing` span.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new().with_name("request 42");
    /// assert!(scope.handle().render_tree().starts_with("scope \"request 42\""));
    /// # }
    /// ```
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        if let Some(node) = self.node.get() {
            node.set_name(Arc::clone(&name));
        }
        self.spec.name = Some(name);
        self
    }

    /// A handle to control this scope from anywhere (any task, any thread).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new();
    /// let handle = scope.handle();
    /// std::thread::spawn(move || handle.cancel()).join().unwrap();
    /// assert_eq!(scope.run(std::future::pending::<()>()).await, None);
    /// # }
    /// ```
    pub fn handle(&self) -> CancelHandle {
        CancelHandle {
            node: Arc::clone(self.node.get_or_init(|| self.spec.make())),
        }
    }

    /// Runs `body` inside this scope.
    ///
    /// The scope attaches to the scope, nursery or child being polled when `run` is first polled.
    /// See [`Run`] for the outcome and cancellation rules.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new();
    /// scope.handle().cancel();
    /// // Cancelled before it started: the body is never polled.
    /// assert_eq!(scope.run(async { unreachable!() }).await, None::<()>);
    /// # }
    /// ```
    #[inline]
    pub fn run<F: IntoFuture>(self, body: F) -> Run<F::IntoFuture> {
        Run::new(
            self.node.into_inner(),
            self.spec,
            self.timeout,
            self.grace,
            self.token,
            body.into_future(),
        )
    }
}

/// Controls a [`CancelScope`] from anywhere: `Send + Sync + Clone + 'static`.
///
/// `cancel` is synchronous, idempotent and callable from any thread; it is not a suspension
/// point. The first reason given wins.
///
/// # Examples
///
/// ```
/// use tokio_nursery::CancelScope;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let scope = CancelScope::new();
/// let handle = scope.handle();
/// let out = scope
///     .run(async {
///         handle.cancel_with("enough");
///         std::future::pending::<()>().await
///     })
///     .await;
/// assert_eq!(out, None);
/// assert!(handle.cancel_called() && handle.cancelled_caught());
/// assert_eq!(handle.cancel_reason().unwrap().to_string(), "cancelled: enough");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CancelHandle {
    node: Arc<Node>,
}

impl CancelHandle {
    /// Cancels the scope. No effect if already cancelled or finished.
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// scope.handle().cancel();
    /// assert!(scope.handle().cancel_called());
    /// ```
    pub fn cancel(&self) {
        self.node.cancel(CancelReason::explicit(None));
    }

    /// Cancels the scope with a message carried by its [`CancelReason`].
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// scope.handle().cancel_with("bye");
    /// assert_eq!(scope.handle().cancel_reason().unwrap().message(), Some("bye"));
    /// ```
    pub fn cancel_with(&self, message: impl Into<Cow<'static, str>>) {
        self.node
            .cancel(CancelReason::explicit(Some(message.into())));
    }

    /// Moves the deadline earlier or later, or removes it (`None`). A deadline already passed
    /// cancels the scope at once (when called inside the runtime; otherwise at the scope's next
    /// poll, which this call triggers).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new().with_timeout(Duration::from_secs(1));
    /// let h = scope.handle();
    /// let out = scope
    ///     .run(async move {
    ///         h.set_deadline(None);
    ///         tokio::time::sleep(Duration::from_secs(2)).await;
    ///     })
    ///     .await;
    /// assert_eq!(out, Some(()));
    /// # }
    /// ```
    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.node.set_deadline(deadline);
        if let Some(deadline) = deadline {
            // The runtime's clock (possibly paused) is only known inside the runtime.
            if tokio::runtime::Handle::try_current().is_ok() && deadline <= Instant::now() {
                self.node.cancel(CancelReason::Deadline);
            }
        }
    }

    /// The scope's own deadline (not the effective one; see
    /// [`current_deadline`](crate::current_deadline)).
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// assert_eq!(scope.handle().deadline(), None);
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline()
    }

    /// Shields or unshields the scope. Unshielding inside a cancelled enclosing scope cancels it at
    /// once; shielding stops further delivery but does not restore work already dropped.
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// scope.handle().set_shield(true);
    /// assert!(scope.handle().is_shielded());
    /// ```
    pub fn set_shield(&self, shield: bool) {
        self.node.set_shield(shield);
    }

    /// Whether the scope is shielded.
    ///
    /// ```
    /// assert!(!tokio_nursery::CancelScope::new().handle().is_shielded());
    /// ```
    pub fn is_shielded(&self) -> bool {
        self.node.shield()
    }

    /// Whether this scope's own cancellation was requested (`cancel`, `cancel_with`, or its
    /// deadline passed while it ran). Inherited cancellation does not count.
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// assert!(!scope.handle().cancel_called());
    /// ```
    pub fn cancel_called(&self) -> bool {
        self.node.cancel_called()
    }

    /// Whether this scope absorbed a cancellation: its `run` returned `None`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new();
    /// let h = scope.handle();
    /// h.cancel();
    /// scope.run(async {}).await;
    /// assert!(h.cancelled_caught());
    /// # }
    /// ```
    pub fn cancelled_caught(&self) -> bool {
        self.node.caught()
    }

    /// Whether the scope is effectively cancelled now: its own cancellation, or an enclosing
    /// scope's that no shield blocks.
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// scope.handle().cancel();
    /// assert!(scope.handle().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    /// Why the scope was cancelled: its own reason, or
    /// [`CancelReason::ParentCancelled`] carrying the enclosing scope's.
    ///
    /// ```
    /// let scope = tokio_nursery::CancelScope::new();
    /// assert_eq!(scope.handle().cancel_reason(), None);
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.node.public_reason()
    }

    /// Renders the live tree below this scope as text: scopes, nurseries, children and cleanups,
    /// each with its state (`running`, `draining`, `cancelling`, `finished`) and cancel reason.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new().with_name("outer");
    /// let h = scope.handle();
    /// h.cancel_with("bye");
    /// assert_eq!(h.render_tree(), "scope \"outer\" [cancelling: cancelled: bye]\n");
    /// # }
    /// ```
    pub fn render_tree(&self) -> String {
        crate::render::render(&self.node)
    }

    /// The live tree below this scope as data ([`NodeSnapshot`](crate::NodeSnapshot)): kinds,
    /// names, states, cancel reasons, deadlines left, grace periods and source locations.
    /// Serializable with the `serde` feature.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use std::time::Duration;
    /// let scope = tokio_nursery::CancelScope::new().with_timeout(Duration::from_secs(2));
    /// let h = scope.handle();
    /// let seen = scope
    ///     .run(async move {
    ///         tokio::time::sleep(Duration::from_millis(500)).await;
    ///         h.snapshot_tree().deadline_in
    ///     })
    ///     .await;
    /// assert_eq!(seen, Some(Some(Duration::from_millis(1500))));
    /// # }
    /// ```
    pub fn snapshot_tree(&self) -> crate::NodeSnapshot {
        crate::snapshot::snapshot(&self.node)
    }

    /// A tokio-util `CancellationToken` cancelled when this scope is effectively cancelled
    /// (for a grace scope: when its drain starts), for code that already speaks tokens. Tokens
    /// are one-way: a later shield does not un-cancel it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new();
    /// let token = scope.handle().cancellation_token();
    /// assert!(!token.is_cancelled());
    /// scope.handle().cancel();
    /// assert!(token.is_cancelled());
    /// # }
    /// ```
    pub fn cancellation_token(&self) -> CancellationToken {
        self.node.cancellation_token()
    }

    /// Completes when the scope is effectively cancelled (its own cancellation or an enclosing
    /// one). Usable as a graceful-shutdown signal.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing; a new call waits again.
    ///
    /// # Drop behavior
    ///
    /// Dropping it only deregisters the waiter.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let scope = tokio_nursery::CancelScope::new();
    /// let h = scope.handle();
    /// let waiter = tokio::spawn({
    ///     let h = h.clone();
    ///     async move { h.cancelled().await }
    /// });
    /// h.cancel();
    /// waiter.await.unwrap();
    /// # }
    /// ```
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled::new(&self.node)
    }
}

/// The future returned by [`CancelHandle::cancelled`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Dropping it deregisters the waiter; nothing else happens.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let scope = tokio_nursery::CancelScope::new();
/// let h = scope.handle();
/// h.cancel();
/// h.cancelled().await; // ready at once
/// # }
/// ```
#[pin_project]
#[must_use = "futures do nothing unless awaited"]
pub struct Cancelled<'a> {
    node: &'a Node,
    #[pin]
    notified: Notified<'a>,
}

impl std::fmt::Debug for Cancelled<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancelled")
            .field("node", &self.node)
            .finish()
    }
}

impl<'a> Cancelled<'a> {
    pub(crate) fn new(node: &'a Node) -> Self {
        Cancelled {
            node,
            notified: node.waiters().notified(),
        }
    }
}

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            // Register before checking (invariant 5 of the tree).
            this.notified.as_mut().enable();
            if this.node.is_cancelled() {
                return Poll::Ready(());
            }
            match this.notified.as_mut().poll(cx) {
                Poll::Ready(()) => this.notified.set(this.node.waiters().notified()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
