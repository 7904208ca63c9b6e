//! The library's small error types: `Elapsed`, `Closed`, `CleanupTimedOut`, `TrySpawnError` and
//! `Errors` (every failure of a `nursery_all` or a supervisor). Child and start errors live with the child (`child/`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The deadline of [`fail_after`](crate::fail_after) or [`fail_at`](crate::fail_at) passed
/// before the body completed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let err = tokio_nursery::fail_after(Duration::from_millis(10), std::future::pending::<()>())
///     .await
///     .unwrap_err();
/// assert!(err.is_timeout());
/// assert_eq!(err.to_string(), "deadline elapsed");
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

impl Elapsed {
    /// Always `true`; lets generic error handling ask "was this a timeout?".
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = tokio_nursery::fail_after(std::time::Duration::ZERO, async {}).await.unwrap_err();
    /// assert!(err.is_timeout());
    /// # }
    /// ```
    pub fn is_timeout(&self) -> bool {
        true
    }
}

/// The nursery has finished: its body and all its children are done. Nothing was spawned,
/// cancelled or failed; a future passed along was dropped without being polled.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = tokio_nursery::nursery(|n| async move { Ok::<_, std::io::Error>(n.handle()) })
///     .await
///     .unwrap();
/// let err = handle.spawn(async { Ok(()) }).unwrap_err();
/// assert!(err.is_closed());
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nursery is closed: its body and all its children have finished")]
pub struct Closed;

impl Closed {
    /// Always `true`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = tokio_nursery::nursery(|n| async move { Ok::<_, String>(n.handle()) }).await.unwrap();
    /// assert!(h.cancel().unwrap_err().is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        true
    }
}

/// A deferred cleanup did not finish within the nursery's cleanup timeout and was dropped.
///
/// This is reported (through `tracing`, in [`Errors`] and by
/// [`NurseryHandle::cleanup_timeouts`](crate::NurseryHandle::cleanup_timeouts)) but is not a
/// failure of the nursery's error type.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (out, handle) = tokio_nursery::NurseryBuilder::new()
///     .cleanup_timeout(Duration::from_secs(1))
///     .run(|n| async move {
///         n.defer(async { std::future::pending::<Result<(), std::io::Error>>().await });
///         Ok::<_, std::io::Error>(n.handle())
///     })
///     .await
///     .map(|h| ((), h))
///     .unwrap();
/// let _ = out;
/// let timeouts = handle.cleanup_timeouts();
/// assert_eq!(timeouts.len(), 1);
/// assert_eq!(timeouts[0].timeout(), Duration::from_secs(1));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cleanup{} did not finish within {timeout:?} and was dropped", nursery_label(.nursery))]
pub struct CleanupTimedOut {
    nursery: Option<Arc<str>>,
    timeout: Duration,
}

fn nursery_label(name: &Option<Arc<str>>) -> String {
    match name {
        Some(name) => format!(" of nursery {name:?}"),
        None => String::new(),
    }
}

impl CleanupTimedOut {
    pub(crate) fn new(nursery: Option<Arc<str>>, timeout: Duration) -> Self {
        CleanupTimedOut { nursery, timeout }
    }

    /// The cleanup timeout that was exceeded (see the type's example).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// # let handle = tokio_nursery::NurseryBuilder::new()
    /// #     .cleanup_timeout(Duration::from_millis(3))
    /// #     .run(|n| async move {
    /// #         n.defer(std::future::pending::<Result<(), String>>());
    /// #         Ok::<_, String>(n.handle())
    /// #     })
    /// #     .await
    /// #     .unwrap();
    /// assert_eq!(handle.cleanup_timeouts()[0].timeout(), Duration::from_millis(3));
    /// # }
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The name of the nursery, if it was given one.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let handle = tokio_nursery::NurseryBuilder::new()
    ///     .name("db")
    ///     .cleanup_timeout(Duration::from_millis(1))
    ///     .run(|n| async move {
    ///         n.defer(std::future::pending::<Result<(), String>>());
    ///         Ok::<_, String>(n.handle())
    ///     })
    ///     .await
    ///     .unwrap();
    /// let report = &handle.cleanup_timeouts()[0];
    /// assert_eq!(report.nursery(), Some("db"));
    /// assert!(report.is_timeout());
    /// # }
    /// ```
    pub fn nursery(&self) -> Option<&str> {
        self.nursery.as_deref()
    }

    /// Always `true` (see [`nursery`](Self::nursery) for an example).
    pub fn is_timeout(&self) -> bool {
        true
    }
}

/// Every failure of a nursery, in the order they happened, and the cleanups that timed out.
///
/// Returned by [`nursery_all`](crate::nursery_all) and
/// [`NurseryBuilder::run_all`](crate::NurseryBuilder::run_all). Never empty: [`first`](Self::first)
/// is the error [`nursery`](crate::nursery()) would have returned.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let errors = tokio_nursery::nursery_all(|n| async move {
///     n.defer(async { Err("cleanup failed") });
///     Err::<(), _>("body failed")
/// })
/// .await
/// .unwrap_err();
/// assert_eq!(errors.first(), &"body failed");
/// assert_eq!(errors.all(), &["body failed", "cleanup failed"]);
/// # }
/// ```
#[derive(Debug)]
pub struct Errors<E> {
    errors: Vec<E>,
    cleanup_timeouts: Vec<CleanupTimedOut>,
}

impl<E> Errors<E> {
    /// `None` if `errors` is empty.
    pub(crate) fn new(errors: Vec<E>, cleanup_timeouts: Vec<CleanupTimedOut>) -> Option<Self> {
        (!errors.is_empty()).then_some(Errors {
            errors,
            cleanup_timeouts,
        })
    }

    /// The first failure in time: the one that cancelled everything else.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert_eq!(e.first(), &"x");
    /// # }
    /// ```
    pub fn first(&self) -> &E {
        &self.errors[0]
    }

    /// All failures, first to last.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert_eq!(e.all(), &["x"]);
    /// # }
    /// ```
    pub fn all(&self) -> &[E] {
        &self.errors
    }

    /// How many failures there were (at least one).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert_eq!(e.len(), 1);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always `false`: an `Errors` holds at least one failure.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert!(!e.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Cleanups that exceeded the cleanup timeout (not failures; reported alongside).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert!(e.cleanup_timeouts().is_empty());
    /// # }
    /// ```
    pub fn cleanup_timeouts(&self) -> &[CleanupTimedOut] {
        &self.cleanup_timeouts
    }

    /// The first failure, dropping the rest.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert_eq!(e.into_first(), "x");
    /// # }
    /// ```
    pub fn into_first(self) -> E {
        self.errors
            .into_iter()
            .next()
            .expect("Errors is never empty")
    }

    /// All failures, first to last.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let e = tokio_nursery::nursery_all(|_n| async { Err::<(), _>("x") }).await.unwrap_err();
    /// assert_eq!(e.into_vec(), vec!["x"]);
    /// # }
    /// ```
    pub fn into_vec(self) -> Vec<E> {
        self.errors
    }
}

impl<E> IntoIterator for Errors<E> {
    type Item = E;
    type IntoIter = std::vec::IntoIter<E>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<E: fmt::Display> fmt::Display for Errors<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.first(), f)?;
        match self.errors.len() {
            1 => Ok(()),
            n => write!(f, " (and {} more)", n - 1),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Errors<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.first())
    }
}

/// Why [`Nursery::try_spawn`](crate::Nursery::try_spawn) did not spawn; the future comes back
/// unpolled ([`into_inner`](Self::into_inner)).
///
/// # Examples
///
/// ```
/// use std::num::NonZeroUsize;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::NurseryBuilder::new()
///     .limit(NonZeroUsize::MIN)
///     .run(|n| async move {
///         let busy = n.spawn(std::future::pending::<Result<(), String>>());
///         let refused = n.try_spawn(async { Ok(()) }).unwrap_err();
///         assert!(refused.is_full());
///         let _unpolled = refused.into_inner(); // nothing was lost
///         busy.cancel();
///         Ok(())
///     })
///     .await
///     .unwrap();
/// # }
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TrySpawnError<F> {
    /// The nursery already runs as many children as its [limit](crate::NurseryBuilder::limit)
    /// allows, or children are waiting for a slot.
    #[error("the nursery is at its concurrency limit")]
    Full(F),
    /// The nursery has finished (see [`Closed`]).
    #[error("nursery is closed: its body and all its children have finished")]
    Closed(F),
}

impl<F> TrySpawnError<F> {
    /// The future that was not spawned, unpolled.
    ///
    /// ```
    /// let err = tokio_nursery::TrySpawnError::Full(7);
    /// assert_eq!(err.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> F {
        match self {
            TrySpawnError::Full(fut) | TrySpawnError::Closed(fut) => fut,
        }
    }

    /// Whether the limit refused it.
    ///
    /// ```
    /// assert!(tokio_nursery::TrySpawnError::Full(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySpawnError::Full(_))
    }

    /// Whether the nursery had finished.
    ///
    /// ```
    /// assert!(tokio_nursery::TrySpawnError::Closed(()).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySpawnError::Closed(_))
    }
}

impl<F> fmt::Debug for TrySpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            TrySpawnError::Full(_) => "Full",
            TrySpawnError::Closed(_) => "Closed",
        };
        f.debug_tuple(kind).finish_non_exhaustive()
    }
}
