//! `race`: the first attempt to succeed wins and the others are cancelled; failures are kept
//! until every attempt has failed. `race_staggered` is trio's happy-eyeballs pattern: attempt
//! i + 1 starts when attempt i fails or `delay` after it started, whichever comes first.
//!
//! Attempts run as borrowing children of an internal nursery, so they may borrow from the caller
//! and need not be `'static`. Their errors are collected here, not raised in the nursery: one
//! failing attempt must not cancel the others.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use std::pin::pin;

use futures_util::future::{select, Either};
use tokio::sync::Notify;

use crate::error::Errors;
use crate::nursery::builder::nursery;

/// Why [`race`] or [`race_staggered`] produced no value.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let attempts: Vec<std::future::Ready<Result<u8, String>>> = Vec::new();
/// assert!(tokio_nursery::race(attempts).await.unwrap_err().is_empty());
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RaceError<E> {
    /// There were no attempts.
    Empty,
    /// Every attempt failed; their errors in the order they failed.
    AllFailed(Errors<E>),
}

impl<E: fmt::Display> fmt::Display for RaceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RaceError::Empty => f.write_str("race had no attempts"),
            RaceError::AllFailed(errors) => {
                write!(f, "every attempt failed; the first: {}", errors.first())
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RaceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RaceError::Empty => None,
            RaceError::AllFailed(errors) => Some(errors.first()),
        }
    }
}

impl<E> RaceError<E> {
    /// `true` if there were no attempts.
    ///
    /// ```
    /// assert!(tokio_nursery::RaceError::<String>::Empty.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, RaceError::Empty)
    }

    /// The attempts' errors, first to fail first (empty if there were no attempts).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = tokio_nursery::race([async { Err::<(), _>("a") }]).await.unwrap_err();
    /// assert_eq!(err.into_errors(), vec!["a"]);
    /// # }
    /// ```
    pub fn into_errors(self) -> Vec<E> {
        match self {
            RaceError::Empty => Vec::new(),
            RaceError::AllFailed(errors) => errors.into_vec(),
        }
    }
}

/// Runs every attempt concurrently; the first to return `Ok` wins and the others are cancelled
/// (dropped at their current await). If all fail, returns every error.
///
/// # Cancel safety
///
/// Dropping it cancels every attempt.
///
/// # Drop behavior
///
/// Attempts are dropped with it (they may borrow from the caller).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let replicas = [300u64, 100, 200];
/// let fastest = tokio_nursery::race(replicas.iter().map(|&ms| async move {
///     tokio::time::sleep(Duration::from_millis(ms)).await;
///     Ok::<_, String>(ms)
/// }))
/// .await;
/// assert_eq!(fastest.unwrap(), 100);
/// # }
/// ```
pub async fn race<T, E, I, F>(attempts: I) -> Result<T, RaceError<E>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: fmt::Display + Send + 'static,
{
    race_inner(None, attempts).await
}

/// Happy eyeballs: starts the first attempt, then the next one when the previous fails or
/// `delay` after it started, whichever comes first; the first success wins and cancels the
/// rest. If all fail, returns every error.
///
/// # Cancel safety
///
/// Dropping it cancels every attempt.
///
/// # Drop behavior
///
/// Attempts are dropped with it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let start = Instant::now();
/// // The first address hangs; the second is tried 250 ms later and answers in 10 ms.
/// let out = tokio_nursery::race_staggered(
///     Duration::from_millis(250),
///     [u64::MAX, 10].map(|ms| async move {
///         tokio::time::sleep(Duration::from_millis(ms.min(3_600_000))).await;
///         Ok::<_, String>(ms)
///     }),
/// )
/// .await;
/// assert_eq!(out.unwrap(), 10);
/// assert_eq!(start.elapsed(), Duration::from_millis(260));
/// # }
/// ```
pub async fn race_staggered<T, E, I, F>(delay: Duration, attempts: I) -> Result<T, RaceError<E>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: fmt::Display + Send + 'static,
{
    race_inner(Some(delay), attempts).await
}

async fn race_inner<T, E, I, F>(stagger: Option<Duration>, attempts: I) -> Result<T, RaceError<E>>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Send,
    T: Send,
    E: fmt::Display + Send + 'static,
{
    let attempts: Vec<F> = attempts.into_iter().collect();
    if attempts.is_empty() {
        return Err(RaceError::Empty);
    }
    let winner: Mutex<Option<T>> = Mutex::new(None);
    let errors: Mutex<Vec<E>> = Mutex::new(Vec::new());
    // `go[i]` lets attempt i start (staggered mode); a stored permit is never lost.
    let go: Vec<Notify> = attempts.iter().map(|_| Notify::new()).collect();
    let (winner_ref, errors_ref, go_ref) = (&winner, &errors, &go);
    let outcome = nursery(|n| async move {
        for (i, attempt) in attempts.into_iter().enumerate() {
            let n2 = n.clone();
            n.spawn_borrowing(async move {
                let next = go_ref.get(i + 1);
                if stagger.is_some() && i > 0 {
                    go_ref[i].notified().await;
                }
                let kick_next_later = async {
                    if let (Some(delay), Some(next)) = (stagger, next) {
                        tokio::time::sleep(delay).await;
                        next.notify_one();
                    }
                    std::future::pending::<Infallible>().await
                };
                let (attempt, kick_next_later) = (pin!(attempt), pin!(kick_next_later));
                let result = match select(attempt, kick_next_later).await {
                    Either::Left((result, _)) => result,
                    Either::Right((never, _)) => match never {},
                };
                match result {
                    Ok(value) => {
                        let mut slot = winner_ref.lock().unwrap_or_else(|e| e.into_inner());
                        if slot.is_none() {
                            *slot = Some(value);
                            n2.cancel();
                        }
                    }
                    Err(error) => {
                        errors_ref
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(error);
                        if let Some(next) = next {
                            next.notify_one();
                        }
                    }
                }
                Ok::<(), E>(())
            });
        }
        Ok(())
    })
    .await;
    // The internal nursery's children never fail, so its only possible failure is none.
    if let Err(error) = outcome {
        let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
        errors.insert(0, error);
        return Err(RaceError::AllFailed(
            Errors::new(errors, Vec::new()).expect("not empty"),
        ));
    }
    if let Some(value) = winner.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Ok(value);
    }
    let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
    match Errors::new(errors, Vec::new()) {
        Some(errors) => Err(RaceError::AllFailed(errors)),
        None => Err(RaceError::Empty),
    }
}
