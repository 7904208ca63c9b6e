//! `Nursery`, the handle a nursery's body gets: spawn children (`crate::child`), start them,
//! defer cleanups, cancel the children. `remote.rs` is the `'static` handle for everything else.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use crate::cancel::scope::Cancelled;
use crate::child::borrowed::Incoming;
use crate::child::handle::{self as child, ChildHandle};
use crate::child::join::{deliver, ValueSlot};
use crate::child::start::{Start, Started};
use crate::local::frame;
use crate::local::scope::WithLocals;
use crate::location::LocationId;
use crate::nursery::core::Core;
use crate::nursery::remote::NurseryHandle;

/// The nursery as seen from its body: spawn children, defer cleanups, cancel the children.
///
/// A cheap `Clone` handle, given to the body closure of [`nursery`](crate::nursery()). `'env` is
/// the lifetime of data the nursery's body may borrow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::nursery(|n| async move {
///     n.defer(async { println!("cleanup runs last"); Ok(()) });
///     n.spawn(async {
///         tokio::time::sleep(Duration::from_millis(10)).await;
///         Ok::<_, std::io::Error>(())
///     });
///     Ok(1)
/// })
/// .await;
/// assert_eq!(out.unwrap(), 1);
/// # }
/// ```
pub struct Nursery<'env, E: fmt::Display + Send + 'static> {
    core: Arc<Core<E>>,
    borrowed: Arc<Incoming<'env>>,
}

impl<E: fmt::Display + Send + 'static> Clone for Nursery<'_, E> {
    fn clone(&self) -> Self {
        Nursery {
            core: Arc::clone(&self.core),
            borrowed: Arc::clone(&self.borrowed),
        }
    }
}

impl<E: fmt::Display + Send + 'static> fmt::Debug for Nursery<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nursery").field("core", &self.core).finish()
    }
}

impl<'env, E: fmt::Display + Send + 'static> Nursery<'env, E> {
    pub(crate) fn new(core: Arc<Core<E>>, borrowed: Arc<Incoming<'env>>) -> Self {
        Nursery { core, borrowed }
    }

    /// The shared state (for the spawns of `policy.rs`).
    pub(super) fn core(&self) -> &Arc<Core<E>> {
        &self.core
    }

    /// Spawns a child as its own tokio task (it runs in parallel on a multi-thread runtime).
    ///
    /// A child returning `Err(e)` or panicking cancels the body and every other child; the nursery
    /// then returns `e` (or re-raises the panic). A child spawned into a cancelled nursery is
    /// dropped without being polled. Should the nursery already be closed (only possible through
    /// a handle that escaped the body), the future is dropped unpolled and the returned handle
    /// reports it as finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>("boom") });
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out, Err("boom"));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.spawn_inner(None, LocationId::of(Location::caller()), fut)
    }

    /// Like [`spawn`](Self::spawn), naming the child; the name appears in cancel reasons
    /// (`cancelled: child "watcher" failed: …`) and diagnostics.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     let sibling = n.spawn(std::future::pending::<Result<(), String>>());
    ///     n.spawn_named("watcher", async { Err::<(), _>("connection lost".to_string()) });
    ///     std::future::pending::<()>().await;
    ///     let _ = sibling;
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out.unwrap_err(), "connection lost");
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_named<F>(&self, name: impl Into<Arc<str>>, fut: F) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.spawn_inner(Some(name.into()), LocationId::of(Location::caller()), fut)
    }

    /// Spawns a child that returns a value, as its own tokio task: await it with
    /// [`ChildHandle::join`]. An error still fails the nursery, as with [`spawn`](Self::spawn).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let total = tokio_nursery::nursery(|n| async move {
    ///     let parts: Vec<_> = (1..=3u32)
    ///         .map(|i| n.spawn_returning(async move { Ok::<_, String>(i * 10) }))
    ///         .collect();
    ///     let mut total = 0;
    ///     for part in parts {
    ///         total += part.join().await.map_err(|e| e.to_string())?;
    ///     }
    ///     Ok(total)
    /// })
    /// .await;
    /// assert_eq!(total, Ok(60));
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_returning<T, F>(&self, fut: F) -> ChildHandle<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let slot = ValueSlot::new();
        self.spawn_inner(
            None,
            LocationId::of(Location::caller()),
            deliver(Arc::clone(&slot), fut),
        )
        .retype()
        .with_value(slot)
    }

    /// Runs a blocking closure on tokio's blocking thread pool as a child of the nursery: the
    /// nursery waits for it, and its error or panic is a failure like any other child's.
    ///
    /// A blocking closure cannot be interrupted: once it has started it runs to the end even if
    /// the nursery is cancelled (the nursery then waits for it). If the child is cancelled before
    /// the closure starts, the closure never runs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     n.spawn_blocking(|| {
    ///         let digest: u64 = (0..1_000u64).sum(); // CPU-bound or blocking I/O
    ///         if digest == 499_500 { Ok(()) } else { Err("bad digest".to_string()) }
    ///     });
    ///     Ok(())
    /// })
    /// .await;
    /// assert!(out.is_ok());
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F>(&self, f: F) -> ChildHandle
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        self.spawn_inner(None, LocationId::of(Location::caller()), blocking(f))
    }

    #[inline]
    pub(super) fn spawn_inner<F>(
        &self,
        name: Option<Arc<str>>,
        site: LocationId,
        fut: F,
    ) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        match child::spawn(&self.core, name.clone(), site, fut) {
            Ok(handle) => handle,
            Err(fut) => self.rejected(name, fut),
        }
    }

    /// Spawns a child polled inside the nursery's own task: it may borrow from the caller's stack
    /// (no `'static` bound), and it runs concurrently with the body but not in parallel (like
    /// `FuturesUnordered` or moro). Failure, cancellation, panic and cleanup rules are those of
    /// [`spawn`](Self::spawn); the nursery future stays `Send` when the child is.
    ///
    /// ```
    /// use std::sync::Mutex;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let names = vec!["a", "b"]; // borrowed, not moved
    /// let seen = Mutex::new(Vec::new());
    /// let (names_ref, seen_ref) = (&names, &seen);
    /// tokio_nursery::nursery(|n| async move {
    ///     for name in names_ref {
    ///         n.spawn_borrowing(async move {
    ///             let seen = seen_ref;
    ///             seen.lock().unwrap().push(*name);
    ///             Ok::<_, std::io::Error>(())
    ///         });
    ///     }
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(seen.into_inner().unwrap().len(), names.len());
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_borrowing<F>(&self, fut: F) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'env,
    {
        self.spawn_borrowing_inner(None, LocationId::of(Location::caller()), fut)
    }

    /// Like [`spawn_borrowing`](Self::spawn_borrowing), naming the child.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let limit = 3;
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     n.spawn_borrowing_named("checker", async move {
    ///         if limit > 2 { Err(format!("limit {limit} too high")) } else { Ok(()) }
    ///     });
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out.unwrap_err(), "limit 3 too high");
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_borrowing_named<F>(&self, name: impl Into<Arc<str>>, fut: F) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'env,
    {
        self.spawn_borrowing_inner(Some(name.into()), LocationId::of(Location::caller()), fut)
    }

    fn spawn_borrowing_inner<F>(
        &self,
        name: Option<Arc<str>>,
        site: LocationId,
        fut: F,
    ) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'env,
    {
        match self.core.limit() {
            Some(limit) => self.push_borrowing(name, site, limit.queue(fut)),
            None => self.push_borrowing(name, site, fut),
        }
    }

    fn push_borrowing<F>(&self, name: Option<Arc<str>>, site: LocationId, fut: F) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'env,
    {
        let pushed = child::join_with(&self.core, name.clone(), site, fut, |task| {
            self.borrowed.push(Box::pin(task));
        });
        match pushed {
            Ok(handle) => handle,
            Err(fut) => self.rejected(name, fut),
        }
    }

    /// The closed-nursery fallback of the infallible spawns: the future is dropped unpolled,
    /// reported, and the handle says the child never ran.
    pub(super) fn rejected<F>(&self, name: Option<Arc<str>>, fut: F) -> ChildHandle {
        tracing::warn!(nursery = ?self.core.name, "spawn into a closed nursery: dropped");
        drop(fut);
        ChildHandle::rejected(name)
    }

    /// Starts a child and waits until it signals that it is ready (trio's `nursery.start`):
    /// returns the value the child passes to [`Started::started`], while the child goes on in
    /// the nursery.
    ///
    /// Before it signals, the child is governed by the *caller's* scopes: an error it returns
    /// comes back from `start` as [`StartError::Failed`](crate::StartError::Failed) and does not
    /// cancel the nursery; returning or dropping the signal unused is
    /// [`StartError::NotStarted`](crate::StartError::NotStarted); a panic resumes from `start`.
    /// A pending `start` keeps the nursery open. The typical use: bind a listener, signal its
    /// address, then serve.
    ///
    /// ```
    /// use tokio::net::TcpListener;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     let addr = n
    ///         .start(|task_status| async move {
    ///             let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///             task_status.started(listener.local_addr()?);
    ///             let (_socket, _) = listener.accept().await?; // serve one client
    ///             Ok(())
    ///         })
    ///         .await
    ///         .map_err(|e| std::io::Error::other(e.to_string()))?;
    ///     tokio::net::TcpStream::connect(addr).await?;
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn start<V, F, Fut>(&self, f: F) -> Start<V, E, F>
    where
        V: Send + 'static,
        F: FnOnce(Started<V>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Start::new(Arc::clone(&self.core), None, f).located(Location::caller())
    }

    /// Like [`start`](Self::start), naming the child.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     let v = n.start_named("init", |s| async move { s.started(5); Ok(()) }).await.unwrap();
    ///     assert_eq!(v, 5);
    ///     Ok::<_, String>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn start_named<V, F, Fut>(&self, name: impl Into<Arc<str>>, f: F) -> Start<V, E, F>
    where
        V: Send + 'static,
        F: FnOnce(Started<V>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        Start::new(Arc::clone(&self.core), Some(name.into()), f).located(Location::caller())
    }

    /// Cancels every child, present and future (children spawned afterwards are dropped
    /// unpolled), but not the body: to cancel the body too, run the nursery inside a
    /// [`CancelScope`](crate::CancelScope). Like Swift's `cancelAll`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     n.spawn(std::future::pending::<Result<(), std::io::Error>>());
    ///     n.cancel();
    ///     Ok("body finished")
    /// })
    /// .await;
    /// assert_eq!(out.unwrap(), "body finished");
    /// # }
    /// ```
    pub fn cancel(&self) {
        self.core.cancel_children();
    }

    /// Registers an async cleanup, run after the body and every child have finished, on every
    /// exit path, last registered first, shielded from cancellation and bounded by the cleanup
    /// timeout (5 s unless configured with
    /// [`NurseryBuilder::cleanup_timeout`](crate::NurseryBuilder::cleanup_timeout)).
    ///
    /// A cleanup returning `Err(e)` is a failure like any other. A cleanup that exceeds the
    /// timeout is dropped and reported (not a failure). Should the nursery already be finished
    /// (only possible through a handle that escaped the body), the cleanup is dropped unpolled
    /// and an error is reported through `tracing`.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let l = log.clone();
    /// tokio_nursery::nursery(|n| async move {
    ///     let (a, b) = (l.clone(), l.clone());
    ///     n.defer(async move { a.lock().unwrap().push("first registered"); Ok(()) });
    ///     n.defer(async move { b.lock().unwrap().push("last registered"); Ok(()) });
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(*log.lock().unwrap(), ["last registered", "first registered"]);
    /// # }
    /// ```
    pub fn defer<F>(&self, cleanup: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let cleanup = WithLocals::new(frame::current(), cleanup);
        if let Err(cleanup) = self.core.push_cleanup(Box::pin(cleanup)) {
            tracing::error!(nursery = ?self.core.name, "defer on a finished nursery: dropped");
            drop(cleanup);
        }
    }

    /// A `Send + Sync + Clone + 'static` handle for use outside the body: other tasks, OS threads,
    /// synchronous callbacks.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     let h = n.handle();
    ///     std::thread::spawn(move || h.fail("lost").unwrap());
    ///     std::future::pending::<()>().await;
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out, Err("lost"));
    /// # }
    /// ```
    pub fn handle(&self) -> NurseryHandle<E> {
        NurseryHandle::new(Arc::clone(&self.core))
    }

    /// Whether [`cancel`](Self::cancel) was called or the nursery is failing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     assert!(!n.cancel_called());
    ///     n.cancel();
    ///     assert!(n.cancel_called());
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancel_called(&self) -> bool {
        self.core.cancel_called()
    }

    /// Completes when the nursery is cancelled: failing, cancelled from outside, or (with a
    /// [grace period](crate::NurseryBuilder::grace)) draining. [`cancel`](Self::cancel), which
    /// only cancels the children, does not fire it.
    ///
    /// Code *inside* the nursery that awaits it is cancelled by the same event — unless a grace
    /// period lets it drain, or it runs in a shield — so a failure is observed from outside
    /// (another task, a [`NurseryHandle`] held elsewhere); the typical use inside is draining.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Drop behavior
    ///
    /// Dropping it only deregisters the waiter.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     let h = n.handle();
    ///     n.spawn(async { Err("boom") });
    ///     h.cancelled().await;
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out, Err("boom"));
    /// # }
    /// ```
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled::new(self.core.watched())
    }

    /// The nursery's name, if the builder gave it one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::NurseryBuilder::new()
    ///     .name("accept loop")
    ///     .run(|n| async move {
    ///         assert_eq!(n.name(), Some("accept loop"));
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.core.name.as_deref()
    }
}

/// The child future of `spawn_blocking`: the wait for the thread is shielded (a running closure
/// cannot be stopped, so the nursery must wait for it), and the closure is skipped if the child
/// was cancelled before a thread picked it up.
async fn blocking<E, F>(f: F) -> Result<(), E>
where
    E: fmt::Display + Send + 'static,
    F: FnOnce() -> Result<(), E> + Send + 'static,
{
    let node = crate::cancel::context::current();
    // The child's bindings, installed on the blocking thread while the closure runs.
    let locals = frame::current();
    let job = move || match node {
        Some(node) if node.is_cancelled() => Ok(()),
        _ => frame::enter(locals, f),
    };
    match crate::cancel::timeout::shield(tokio::task::spawn_blocking(job)).await {
        Ok(result) => result,
        Err(join_error) => match join_error.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            // The runtime is shutting down: the closure will not run.
            Err(_) => Ok(()),
        },
    }
}
