//! The futures that install bindings while they poll: `LocalScope` binds one value,
//! `WithLocals` carries a captured set (into a plain `tokio::spawn`, or a deferred cleanup).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::{pin_project, pinned_drop};

use crate::local::frame::{self, Frame, Installed, Link};

/// The bindings in effect at one moment, captured to be installed elsewhere: in a plain
/// `tokio::spawn` task, on another thread, or in a callback.
///
/// Cheap to capture and clone (one reference count; nothing when nothing is bound), and
/// immutable: binding a key later does not change a captured set.
///
/// ```
/// use tokio_nursery::{Local, Locals};
///
/// static REQUEST_ID: Local<u64> = Local::new();
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let captured = REQUEST_ID.sync_scope(7, Locals::capture);
/// let seen = tokio::spawn(captured.scope(async { REQUEST_ID.get() })).await.unwrap();
/// assert_eq!(seen, Some(7));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Locals {
    frame: Option<Link>,
}

impl Locals {
    /// The bindings in effect here.
    ///
    /// ```
    /// static USER: tokio_nursery::Local<&'static str> = tokio_nursery::Local::new();
    ///
    /// let captured = USER.sync_scope("bob", tokio_nursery::Locals::capture);
    /// assert_eq!(captured.sync_scope(|| USER.get()), Some("bob"));
    /// ```
    #[must_use = "a captured set does nothing unless installed with `scope` or `sync_scope`"]
    pub fn capture() -> Locals {
        Locals {
            frame: frame::current(),
        }
    }

    /// No bindings at all; installing it hides every binding in effect.
    ///
    /// ```
    /// static USER: tokio_nursery::Local<&'static str> = tokio_nursery::Local::new();
    ///
    /// let hidden = USER.sync_scope("bob", || tokio_nursery::Locals::empty().sync_scope(|| USER.get()));
    /// assert_eq!(hidden, None);
    /// ```
    #[must_use = "an empty set does nothing unless installed with `scope` or `sync_scope`"]
    pub fn empty() -> Locals {
        Locals { frame: None }
    }

    /// Whether the set binds nothing.
    ///
    /// ```
    /// assert!(tokio_nursery::Locals::capture().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.frame.is_none()
    }

    /// Runs `fut` with these bindings in effect (instead of those where it is polled).
    ///
    /// ```
    /// static TRACE: tokio_nursery::Local<u32> = tokio_nursery::Local::new();
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let set = TRACE.sync_scope(1, tokio_nursery::Locals::capture);
    /// assert_eq!(set.scope(async { TRACE.get() }).await, Some(1));
    /// # }
    /// ```
    pub fn scope<F: Future>(self, fut: F) -> WithLocals<F> {
        WithLocals::new(self.frame, fut)
    }

    /// Runs `f` with these bindings in effect, on this thread.
    ///
    /// ```
    /// static TRACE: tokio_nursery::Local<u32> = tokio_nursery::Local::new();
    ///
    /// let set = TRACE.sync_scope(1, tokio_nursery::Locals::capture);
    /// let seen = std::thread::spawn(move || set.sync_scope(|| TRACE.get())).join().unwrap();
    /// assert_eq!(seen, Some(1));
    /// ```
    pub fn sync_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        frame::enter(self.frame.clone(), f)
    }
}

impl fmt::Debug for Locals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locals")
            .field(
                "bindings",
                &self.frame.as_ref().map_or(0, |frame| frame.len()),
            )
            .finish()
    }
}

/// Wraps `fut` so that it runs with the bindings in effect here, wherever it is polled: the way
/// to carry [`Local`](crate::Local) values into a plain `tokio::spawn` (nursery children inherit
/// them without it). Short for `Locals::capture().scope(fut)`.
///
/// ```
/// static REQUEST_ID: tokio_nursery::Local<String> = tokio_nursery::Local::new();
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// REQUEST_ID
///     .scope("req-1".into(), async {
///         let task = tokio::spawn(tokio_nursery::with_locals(async { REQUEST_ID.get() }));
///         assert_eq!(task.await.unwrap().as_deref(), Some("req-1"));
///         // Without the wrapper, a plain task sees nothing.
///         assert_eq!(tokio::spawn(async { REQUEST_ID.get() }).await.unwrap(), None);
///     })
///     .await;
/// # }
/// ```
pub fn with_locals<F: Future>(fut: F) -> WithLocals<F> {
    Locals::capture().scope(fut)
}

/// The future of [`with_locals`] and [`Locals::scope`]: `fut`, polled with a captured set of
/// bindings in effect.
///
/// # Cancel safety
///
/// As cancel safe as `fut`: dropping this future drops `fut` and nothing else.
///
/// # Drop behavior
///
/// `fut` is dropped with the same bindings in effect, so its destructors can read them.
///
/// ```
/// static K: tokio_nursery::Local<u8> = tokio_nursery::Local::new();
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fut: tokio_nursery::WithLocals<_> = K.sync_scope(9, || tokio_nursery::with_locals(async { K.get() }));
/// assert_eq!(fut.await, Some(9));
/// # }
/// ```
#[pin_project(PinnedDrop)]
#[must_use = "futures do nothing unless polled; dropping this drops the wrapped future"]
pub struct WithLocals<F> {
    frame: Option<Link>,
    #[pin]
    fut: Option<F>,
}

impl<F> WithLocals<F> {
    pub(crate) fn new(frame: Option<Link>, fut: F) -> Self {
        WithLocals {
            frame,
            fut: Some(fut),
        }
    }

    /// Polls the wrapped future with the bindings installed; the future is dropped, inside them
    /// too, once it completes.
    fn poll_installed(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output>
    where
        F: Future,
    {
        let mut this = self.project();
        let installed = Installed::enter(this.frame.take());
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("`WithLocals` polled after completion");
        let polled = fut.poll(cx);
        if polled.is_ready() {
            this.fut.set(None);
        }
        *this.frame = installed.exit();
        polled
    }
}

impl<F: Future> Future for WithLocals<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_installed(cx)
    }
}

#[pinned_drop]
impl<F> PinnedDrop for WithLocals<F> {
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if this.fut.is_some() && std::mem::needs_drop::<F>() {
            let installed = Installed::enter(this.frame.take());
            this.fut.set(None);
            drop(installed.exit());
        }
    }
}

impl<F> fmt::Debug for WithLocals<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithLocals")
            .field("done", &self.fut.is_none())
            .finish_non_exhaustive()
    }
}

/// The future of [`Local::scope`](crate::Local::scope): `fut`, polled with one more binding in
/// effect.
///
/// The binding is made at the first poll, inside the bindings in effect there; later polls
/// install the same bindings again, so what `fut` sees does not depend on who polls it.
///
/// # Cancel safety
///
/// As cancel safe as `fut`: dropping this future drops `fut` and the value.
///
/// # Drop behavior
///
/// `fut` is dropped with the binding in effect (also if it was never polled), so its
/// destructors can read the value; the value is dropped once no child holds it any more.
///
/// ```
/// static K: tokio_nursery::Local<u8> = tokio_nursery::Local::new();
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fut: tokio_nursery::LocalScope<u8, _> = K.scope(4, async { K.get() });
/// assert_eq!(fut.await, Some(4));
/// # }
/// ```
#[pin_project(PinnedDrop)]
#[must_use = "futures do nothing unless polled; the value is bound only while this is polled"]
pub struct LocalScope<T: Send + Sync + 'static, F> {
    key: usize,
    /// The value until the first poll binds it.
    value: Option<T>,
    #[pin]
    inner: WithLocals<F>,
}

impl<T: Send + Sync + 'static, F> LocalScope<T, F> {
    pub(crate) fn new(key: usize, value: T, fut: F) -> Self {
        LocalScope {
            key,
            value: Some(value),
            inner: WithLocals::new(None, fut),
        }
    }
}

/// Makes the binding from the pending value, inside the bindings in effect now.
fn bind_pending<T: Send + Sync + 'static>(
    key: usize,
    value: &mut Option<T>,
    frame: &mut Option<Link>,
) {
    if let Some(value) = value.take() {
        *frame = Some(Frame::bind(key, value, frame::current()));
    }
}

impl<T: Send + Sync + 'static, F: Future> Future for LocalScope<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if this.value.is_some() {
            let inner = this.inner.as_mut().project();
            bind_pending(*this.key, this.value, inner.frame);
        }
        this.inner.poll_installed(cx)
    }
}

#[pinned_drop]
impl<T: Send + Sync + 'static, F> PinnedDrop for LocalScope<T, F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        // Never polled: bind now, so the future's destructors see the value (`inner` drops it
        // right after this).
        if std::mem::needs_drop::<F>() {
            let inner = this.inner.project();
            if inner.fut.is_some() {
                bind_pending(*this.key, this.value, inner.frame);
            }
        }
    }
}

impl<T: Send + Sync + 'static, F> fmt::Debug for LocalScope<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalScope")
            .field("bound", &self.value.is_none())
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
