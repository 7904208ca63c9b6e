use std::any::Any;
use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::connect::error::ConnectError;
use crate::error::ConnectionLost;

/// Whether [`Reconnect`](crate::Reconnect) tries again after a failed connect or setup.
///
/// Returned by the predicate given to [`Reconnect::retry_if`](crate::Reconnect::retry_if), and
/// by the default classification, [`Retry::by_default`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::{ConnectError, Retry};
///
/// let busy = ConnectError::Status { status: 503, retry_after: Some(Duration::from_secs(5)) };
/// assert_eq!(Retry::from(&busy), Retry::After(Duration::from_secs(5)));
/// let gone = ConnectError::Status { status: 410, retry_after: None };
/// assert_eq!(Retry::from(&gone), Retry::No);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Transient: wait the backoff's next delay and try again (within the limits).
    Yes,
    /// Permanent: give up at once and return this error.
    No,
    /// Transient, but wait at least this long (the server's `Retry-After`); the backoff's delay
    /// is used if it is longer, and `max_elapsed` still applies.
    After(Duration),
}

impl From<&ConnectError> for Retry {
    fn from(error: &ConnectError) -> Self {
        if error.is_permanent() {
            Retry::No
        } else if let Some(wait) = error.retry_after() {
            Retry::After(wait)
        } else {
            Retry::Yes
        }
    }
}

impl Retry {
    /// The classification [`Reconnect`](crate::Reconnect) applies without a
    /// [`retry_if`](crate::Reconnect::retry_if) predicate. `error` is looked at as one of:
    ///
    /// - [`ConnectError`]: [`Retry::from`] it (permanent errors are not retried, `Retry-After`
    ///   is honoured);
    /// - `std::io::Error`: its inner error is looked at the same way if it has one (an
    ///   `io::Error::other(connect_error)`), otherwise transient;
    /// - [`ConnectionLost`](crate::ConnectionLost): transient;
    /// - `Box<dyn Error + Send + Sync>` or `Arc<dyn Error + Send + Sync>`: the first
    ///   `ConnectError` or `io::Error` in its source chain decides, as above;
    /// - anything else — your own error enum included — counts as transient. To classify your
    ///   own type, give [`Reconnect::retry_if`](crate::Reconnect::retry_if) a predicate (which
    ///   can call `Retry::from(&connect_error)` for the variant that carries one).
    ///
    /// ```
    /// use nursery_net::{ConnectError, Retry};
    ///
    /// let bad: Box<dyn std::error::Error + Send + Sync> =
    ///     Box::new(ConnectError::UnsupportedScheme { scheme: "ftp".into() });
    /// assert_eq!(Retry::by_default(&bad), Retry::No);
    /// assert_eq!(Retry::by_default(&"some other error"), Retry::Yes);
    /// ```
    pub fn by_default<E: Any>(error: &E) -> Retry {
        let any: &dyn Any = error;
        if let Some(error) = any.downcast_ref::<ConnectError>() {
            return Retry::from(error);
        }
        if let Some(error) = any.downcast_ref::<io::Error>() {
            return io_inner(error);
        }
        if any.downcast_ref::<ConnectionLost>().is_some() {
            return Retry::Yes;
        }
        if let Some(error) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
            return chain(&**error);
        }
        if let Some(error) = any.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
            return chain(&**error);
        }
        Retry::Yes
    }
}

/// An `io::Error` wrapping another error is classified by that error.
fn io_inner(error: &io::Error) -> Retry {
    match error.get_ref() {
        Some(inner) => chain(inner),
        None => Retry::Yes,
    }
}

/// The first `ConnectError` or `io::Error` in the source chain decides.
fn chain(error: &(dyn Error + 'static)) -> Retry {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(error) = error.downcast_ref::<ConnectError>() {
            return Retry::from(error);
        }
        if let Some(io) = error.downcast_ref::<io::Error>() {
            if io.get_ref().is_none() {
                return Retry::Yes;
            }
        }
        next = error.source();
    }
    Retry::Yes
}

/// A type-erased [`Reconnect::retry_if`](crate::Reconnect::retry_if) predicate: it answers
/// only for the error type it was written for.
#[derive(Clone)]
pub(crate) struct Predicate(Arc<Classify>);

/// Answers `None` for an error of another type than the predicate's.
type Classify = dyn Fn(&dyn Any) -> Option<Retry> + Send + Sync;

impl Predicate {
    pub(crate) fn new<E: Any>(f: impl Fn(&E) -> Retry + Send + Sync + 'static) -> Self {
        Predicate(Arc::new(move |error: &dyn Any| {
            error.downcast_ref::<E>().map(&f)
        }))
    }

    pub(crate) fn classify<E: Any>(predicate: &Option<Predicate>, error: &E) -> Retry {
        predicate
            .as_ref()
            .and_then(|p| (p.0)(error))
            .unwrap_or_else(|| Retry::by_default(error))
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Predicate(..)")
    }
}

/// Why a [`Reconnect`](crate::Reconnect) loop gave up, in [`Event::GaveUp`](crate::Event::GaveUp).
///
/// # Examples
///
/// ```
/// assert_eq!(nursery_net::GiveUp::Permanent.to_string(), "a permanent error");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// The error is permanent (by [`Retry::by_default`] or the `retry_if` predicate).
    Permanent,
    /// [`max_attempts`](crate::Reconnect::max_attempts) attempts were made.
    MaxAttempts,
    /// The next wait (the backoff's, or the server's `Retry-After`) would end past
    /// [`max_elapsed`](crate::Reconnect::max_elapsed).
    MaxElapsed,
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::Permanent => "a permanent error",
            GiveUp::MaxAttempts => "the attempt limit",
            GiveUp::MaxElapsed => "the time limit",
        })
    }
}
