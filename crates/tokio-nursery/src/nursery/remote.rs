//! `NurseryHandle`: a nursery's handle for other tasks, OS threads and callbacks
//! (`Send + Sync + Clone + 'static`). It does what `Nursery` (`handle.rs`) does, and answers
//! `Err(Closed)` once the nursery has finished.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use crate::cancel::scope::Cancelled;
use crate::child::handle as child;
use crate::child::handle::ChildHandle;
use crate::child::start::{Start, Started};
use crate::error::{CleanupTimedOut, Closed};
use crate::local::frame;
use crate::local::scope::WithLocals;
use crate::location::LocationId;
use crate::nursery::core::Core;

/// A handle to a nursery usable from anywhere: `Send + Sync + Clone + 'static`.
///
/// Once the body and every child have finished, every operation returns `Err(Closed)` and does
/// nothing (a future passed along is dropped unpolled); none of them panics.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = tokio_nursery::nursery(|n| async move {
///     let handle = n.handle();
///     // A plain synchronous callback, as a driver would call it.
///     let on_state_change = move |connected: bool| {
///         if !connected {
///             let _ = handle.fail("connection lost");
///         }
///     };
///     on_state_change(false);
///     std::future::pending::<()>().await;
///     Ok(())
/// })
/// .await;
/// assert_eq!(out, Err("connection lost"));
/// # }
/// ```
pub struct NurseryHandle<E: fmt::Display + Send + 'static> {
    core: Arc<Core<E>>,
}

impl<E: fmt::Display + Send + 'static> Clone for NurseryHandle<E> {
    fn clone(&self) -> Self {
        NurseryHandle {
            core: Arc::clone(&self.core),
        }
    }
}

impl<E: fmt::Display + Send + 'static> fmt::Debug for NurseryHandle<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryHandle")
            .field("core", &self.core)
            .finish()
    }
}

impl<E: fmt::Display + Send + 'static> NurseryHandle<E> {
    pub(super) fn new(core: Arc<Core<E>>) -> Self {
        NurseryHandle { core }
    }

    /// Spawns a child, as [`Nursery::spawn`](crate::Nursery::spawn); `Err(Closed)` once the nursery has finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     let h = n.handle();
    ///     n.spawn(async move {
    ///         // A child spawning a sibling.
    ///         h.spawn(async { Ok(()) }).unwrap();
    ///         Ok(())
    ///     });
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> Result<ChildHandle, Closed>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let locals = self.core.handle_locals_here();
        let site = LocationId::of(Location::caller());
        frame::enter(locals, || child::spawn(&self.core, None, site, fut)).map_err(|_| Closed)
    }

    /// Spawns a named child, as [`Nursery::spawn_named`](crate::Nursery::spawn_named); `Err(Closed)` once finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     let child = n.handle().spawn_named("late", async { Ok(()) }).unwrap();
    ///     assert_eq!(child.name(), Some("late"));
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_named<F>(&self, name: impl Into<Arc<str>>, fut: F) -> Result<ChildHandle, Closed>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let locals = self.core.handle_locals_here();
        let site = LocationId::of(Location::caller());
        frame::enter(locals, || {
            child::spawn(&self.core, Some(name.into()), site, fut)
        })
        .map_err(|_| Closed)
    }

    /// Starts a child, as [`Nursery::start`](crate::Nursery::start); fails with
    /// [`StartError::Closed`](crate::StartError::Closed) at once if the nursery has finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     let h = n.handle();
    ///     let v = tokio::spawn(async move {
    ///         h.start(|s| async move { s.started("ready"); Ok(()) }).await.unwrap()
    ///     })
    ///     .await
    ///     .unwrap();
    ///     assert_eq!(v, "ready");
    ///     Ok::<_, String>(())
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
        Start::new(Arc::clone(&self.core), None, f)
            .through_handle()
            .located(Location::caller())
    }

    /// Cancels every child, as [`Nursery::cancel`](crate::Nursery::cancel); `Err(Closed)` once finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = tokio_nursery::nursery(|n| async move { Ok::<_, std::io::Error>(n.handle()) })
    ///     .await
    ///     .unwrap();
    /// assert!(h.cancel().is_err());
    /// # }
    /// ```
    pub fn cancel(&self) -> Result<(), Closed> {
        if self.core.is_closed() {
            return Err(Closed);
        }
        self.core.cancel_children();
        Ok(())
    }

    /// Fails the nursery with `error`, from any task, any OS thread, or a synchronous callback:
    /// the body and every child are cancelled, and the nursery returns `error` (unless an earlier
    /// failure wins; then `error` is kept among all errors and reported). Accepted until the
    /// nursery has taken its outcome — also while its cleanups run, so a failure reported during
    /// a `disconnect()` is not lost; after that, `Err(Closed)` (the error is then reported
    /// through `tracing`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     n.handle().fail("stop").unwrap();
    ///     std::future::pending::<()>().await;
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out, Err("stop"));
    /// # }
    /// ```
    pub fn fail(&self, error: E) -> Result<(), Closed> {
        self.core.fail_from_handle(error)
    }

    /// Registers a cleanup, as [`Nursery::defer`](crate::Nursery::defer); `Err(Closed)` once the nursery has finished
    /// (the cleanup is dropped unpolled).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     n.handle().defer(async { Ok(()) }).unwrap();
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn defer<F>(&self, cleanup: F) -> Result<(), Closed>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        if self.core.is_closed() {
            return Err(Closed);
        }
        self.core
            .push_cleanup(Box::pin(WithLocals::new(
                self.core.handle_locals_here(),
                cleanup,
            )))
            .map_err(|_| Closed)
    }

    /// Whether the body and every child have finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = tokio_nursery::nursery(|n| async move {
    ///     assert!(!n.handle().is_closed());
    ///     Ok::<_, std::io::Error>(n.handle())
    /// })
    /// .await
    /// .unwrap();
    /// assert!(h.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Whether `cancel` was called or the nursery is failing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     let h = n.handle();
    ///     h.cancel().unwrap();
    ///     assert!(h.cancel_called());
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancel_called(&self) -> bool {
        self.core.cancel_called()
    }

    /// Completes when the nursery is cancelled, as [`Nursery::cancelled`](crate::Nursery::cancelled); usable as a
    /// graceful-shutdown signal (`axum::serve(..).with_graceful_shutdown(async move {
    /// handle.cancelled().await })`).
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
    ///     n.spawn(async move {
    ///         h.cancelled().await; // a shutdown signal for a server
    ///         Ok(())
    ///     });
    ///     n.handle().fail("stop").unwrap();
    ///     Ok(())
    /// })
    /// .await;
    /// assert_eq!(out, Err("stop"));
    /// # }
    /// ```
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled::new(self.core.watched())
    }

    /// A tokio-util `CancellationToken` cancelled when the nursery is cancelled (failing,
    /// cancelled from outside, or draining), for libraries that take a token.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::nursery(|n| async move {
    ///     let token = n.handle().cancellation_token();
    ///     n.spawn(async move {
    ///         token.cancelled().await; // e.g. handed to a server as its shutdown signal
    ///         Ok(())
    ///     });
    ///     Err::<(), _>("stop")
    /// })
    /// .await;
    /// assert_eq!(out, Err("stop"));
    /// # }
    /// ```
    pub fn cancellation_token(&self) -> tokio_util::sync::CancellationToken {
        self.core.watched().cancellation_token()
    }

    /// Renders the nursery's live tree as text (see
    /// [`render_current_tree`](crate::render_current_tree)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::NurseryBuilder::new()
    ///     .name("pool")
    ///     .run(|n| async move {
    ///         n.spawn_named("worker", std::future::pending::<Result<(), String>>());
    ///         let tree = n.handle().render_tree();
    ///         assert_eq!(tree, "nursery \"pool\" [running]\n└─ child \"worker\" [running]\n");
    ///         n.cancel();
    ///         Ok::<_, String>(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub fn render_tree(&self) -> String {
        crate::render::render(self.core.top())
    }

    /// Cleanups that exceeded the cleanup timeout so far (reported, not failures).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = tokio_nursery::nursery(|n| async move { Ok::<_, std::io::Error>(n.handle()) })
    ///     .await
    ///     .unwrap();
    /// assert!(h.cleanup_timeouts().is_empty());
    /// # }
    /// ```
    pub fn cleanup_timeouts(&self) -> Vec<CleanupTimedOut> {
        self.core.cleanup_timeouts()
    }
}
