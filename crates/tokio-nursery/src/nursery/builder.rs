//! The entry points that open a nursery: `nursery`, `nursery_all`, `supervisor` and
//! `NurseryBuilder` (name, cleanup timeout, grace, policy and limit from `policy.rs`); they build
//! the futures of `future.rs`.

use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::nursery::future::{Config, NurseryAll, NurseryFuture};
use crate::nursery::handle::Nursery;

/// Opens a nursery: runs `body` with a [`Nursery`] handle, and completes when the body and every
/// child have completed and every deferred cleanup has run (trio's `open_nursery`).
///
/// See [`NurseryFuture`] for the outcome rules, and [`NurseryBuilder`] to set a name, a grace
/// period or the cleanup timeout.
///
/// `body` is called right away, to build the body's future; that future is first polled when
/// the nursery is. (Calling it early is what keeps nursery futures `Send` inside other
/// combinators.)
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let start = tokio::time::Instant::now();
/// let out = tokio_nursery::nursery(|n| async move {
///     for ms in [100, 200] {
///         n.spawn(async move {
///             tokio::time::sleep(Duration::from_millis(ms)).await;
///             Ok::<_, std::io::Error>(())
///         });
///     }
///     Ok(7)
/// })
/// .await;
/// assert_eq!(out.unwrap(), 7);
/// assert_eq!(start.elapsed(), Duration::from_millis(200));
/// # }
/// ```
#[track_caller]
pub fn nursery<'env, T, E, F, Fut>(body: F) -> NurseryFuture<'env, T, E, Fut>
where
    F: FnOnce(Nursery<'env, E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display + Send + 'static,
{
    NurseryFuture::new(Config::at(std::panic::Location::caller()), body)
}

/// Like [`nursery`], but a failure comes back as [`Errors`](crate::Errors): every error in order,
/// and the cleanups that timed out.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let errors = tokio_nursery::nursery_all(|n| async move {
///     n.defer(async { Err("second") });
///     Err::<(), _>("first")
/// })
/// .await
/// .unwrap_err();
/// assert_eq!(errors.into_vec(), ["first", "second"]);
/// # }
/// ```
#[track_caller]
pub fn nursery_all<'env, T, E, F, Fut>(body: F) -> NurseryAll<'env, T, E, Fut>
where
    F: FnOnce(Nursery<'env, E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display + Send + 'static,
{
    NurseryAll::new(Config::at(std::panic::Location::caller()), body)
}

/// Opens a supervisor nursery (Kotlin's `supervisorScope`): a child's failure does not cancel
/// its siblings or the body. Every error is collected in the order it happened, and the nursery
/// returns `Err(Errors)` if anything failed, even when the body returned `Ok`. A failing cleanup
/// counts like a failing child.
///
/// The body's own failure, [`NurseryHandle::fail`](crate::NurseryHandle::fail) and a panic
/// anywhere still cancel everything, as in a plain nursery (a panic is re-raised once everything
/// has unwound). Children that fail before they signal a [`start`](crate::Nursery::start) fail
/// the `start` call, as always, not the nursery.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::supervisor(|n| async move {
///     n.spawn(async { Err("replica 1 down") });
///     let survivor = n.spawn_returning(async {
///         tokio::time::sleep(Duration::from_secs(1)).await; // not cancelled by the failure
///         Ok(5)
///     });
///     n.spawn(async { Err("replica 3 down") });
///     survivor.join().await.map_err(|_| "survivor lost")
/// })
/// .await;
/// assert_eq!(out.unwrap_err().into_vec(), ["replica 1 down", "replica 3 down"]);
/// # }
/// ```
#[track_caller]
pub fn supervisor<'env, T, E, F, Fut>(body: F) -> NurseryAll<'env, T, E, Fut>
where
    F: FnOnce(Nursery<'env, E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: fmt::Display + Send + 'static,
{
    NurseryBuilder::new().run_supervisor(body)
}

/// Configures a nursery: name, cleanup timeout, grace period, concurrency limit, and whether it
/// supervises ([`run_supervisor`](Self::run_supervisor)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = tokio_nursery::NurseryBuilder::new()
///     .name("session")
///     .cleanup_timeout(Duration::from_secs(2))
///     .run(|n| async move { Ok::<_, std::io::Error>(n.name().map(str::to_owned)) })
///     .await;
/// assert_eq!(out.unwrap().as_deref(), Some("session"));
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `run` is called"]
pub struct NurseryBuilder {
    config: Config,
}

impl NurseryBuilder {
    /// A builder with no name and a 5 s cleanup timeout.
    ///
    /// ```
    /// let _builder = tokio_nursery::NurseryBuilder::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the nursery (shown in reports, `tracing` events and cancel reasons).
    ///
    /// ```
    /// let _builder = tokio_nursery::NurseryBuilder::new().name("workers");
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// How long each deferred cleanup may run before it is dropped and reported (default 5 s).
    /// `Duration::MAX` means unbounded.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _builder = tokio_nursery::NurseryBuilder::new().cleanup_timeout(Duration::from_millis(500));
    /// ```
    pub fn cleanup_timeout(mut self, timeout: Duration) -> Self {
        self.config.cleanup_timeout = Some(timeout);
        self
    }

    /// Gives the nursery a grace period for cancellation from outside: when an enclosing scope
    /// cancels it, the body and children are not cancelled at once; they can observe
    /// [`Nursery::cancelled`](crate::Nursery::cancelled) and finish on their own, and are
    /// cancelled hard when the grace period (or an enclosing deadline) ends. Failures inside
    /// the nursery still cancel at once. See [`CancelScope::with_grace`](crate::CancelScope::with_grace).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio_nursery::{CancelScope, NurseryBuilder};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let outer = CancelScope::new();
    /// let shutdown = outer.handle();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(1)).await;
    ///     shutdown.cancel_with("SIGTERM"); // an explicit cancel drains; an expired deadline would not
    /// });
    /// let out = outer
    ///     .run(NurseryBuilder::new().grace(Duration::from_secs(10)).run(|n| async move {
    ///         n.cancelled().await; // the drain starts at 1 s
    ///         tokio::time::sleep(Duration::from_millis(500)).await; // flush
    ///         Ok::<_, std::io::Error>("flushed")
    ///     }))
    ///     .await;
    /// assert_eq!(out.unwrap().unwrap(), "flushed");
    /// # }
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = Some(grace);
        self
    }

    /// Lets at most `max` children of the nursery run at once (Go's errgroup `SetLimit`). Every
    /// kind of child counts: spawned, borrowing, blocking, and `start` children from the moment
    /// `start` is called. A child past the limit waits in line and starts when a running child
    /// ends, in the order the waiting children were spawned; a waiting child that is cancelled
    /// (through its handle, the nursery, or the caller's scope for `start`) never starts. Every
    /// way a child ends frees its slot: returning, failing, panicking, being cancelled or
    /// dropped.
    ///
    /// [`Nursery::spawn`](crate::Nursery::spawn) never blocks: the child it returns a handle to
    /// may be waiting. For backpressure, [`Nursery::spawn_when_ready`](crate::Nursery::spawn_when_ready)
    /// waits for a slot before it spawns; [`Nursery::try_spawn`](crate::Nursery::try_spawn)
    /// refuses when none is free. A limit above `usize::MAX >> 3` (tokio's semaphore maximum)
    /// is that maximum.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    /// let (r, m) = (running.clone(), most.clone());
    /// tokio_nursery::NurseryBuilder::new()
    ///     .limit(NonZeroUsize::new(2).unwrap())
    ///     .run(|n| async move {
    ///         for _ in 0..6 {
    ///             let (r, m) = (r.clone(), m.clone());
    ///             n.spawn(async move {
    ///                 m.fetch_max(r.fetch_add(1, SeqCst) + 1, SeqCst);
    ///                 tokio::time::sleep(Duration::from_millis(10)).await;
    ///                 r.fetch_sub(1, SeqCst);
    ///                 Ok::<_, std::io::Error>(())
    ///             });
    ///         }
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(most.load(SeqCst), 2);
    /// # }
    /// ```
    pub fn limit(mut self, max: NonZeroUsize) -> Self {
        self.config.policy.limit = Some(max);
        self
    }

    /// Runs the nursery as a supervisor, as [`supervisor`]: a child's or a cleanup's failure is
    /// collected without cancelling anything.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::NurseryBuilder::new()
    ///     .name("replicas")
    ///     .run_supervisor(|n| async move {
    ///         n.spawn(async { Err("one failed") });
    ///         n.spawn(async { Ok(()) });
    ///         Ok(())
    ///     })
    ///     .await;
    /// assert_eq!(out.unwrap_err().all(), &["one failed"]);
    /// # }
    /// ```
    #[track_caller]
    pub fn run_supervisor<'env, T, E, F, Fut>(mut self, body: F) -> NurseryAll<'env, T, E, Fut>
    where
        F: FnOnce(Nursery<'env, E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + Send + 'static,
    {
        self.config.policy.supervisor = true;
        NurseryAll::new(self.config.located(std::panic::Location::caller()), body)
    }

    /// Runs the nursery, as [`nursery`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::NurseryBuilder::new().run(|_n| async { Ok::<_, String>(1) }).await;
    /// assert_eq!(out, Ok(1));
    /// # }
    /// ```
    #[track_caller]
    pub fn run<'env, T, E, F, Fut>(self, body: F) -> NurseryFuture<'env, T, E, Fut>
    where
        F: FnOnce(Nursery<'env, E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + Send + 'static,
    {
        NurseryFuture::new(self.config.located(std::panic::Location::caller()), body)
    }

    /// Runs the nursery, as [`nursery_all`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::NurseryBuilder::new()
    ///     .run_all(|_n| async { Err::<(), _>("x") })
    ///     .await;
    /// assert_eq!(out.unwrap_err().len(), 1);
    /// # }
    /// ```
    #[track_caller]
    pub fn run_all<'env, T, E, F, Fut>(self, body: F) -> NurseryAll<'env, T, E, Fut>
    where
        F: FnOnce(Nursery<'env, E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + Send + 'static,
    {
        NurseryAll::new(self.config.located(std::panic::Location::caller()), body)
    }
}
