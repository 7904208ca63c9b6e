use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::loss::reason::LossReason;

/// What a [`Supervisor`](crate::Supervisor) or a [`Reconnect`](crate::Reconnect) loop did,
/// reported to the callback given to `on_event`, in order.
///
/// Attempts are numbered from 1. The callback runs synchronously on the supervising task: keep
/// it short (count, log, or forward into a channel to get an event stream).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::{Event, LossReason};
///
/// let event = Event::Lost { attempt: 2, reason: LossReason::eof() };
/// assert_eq!(event.to_string(), "attempt 2: connection lost: peer closed the connection");
/// let event = Event::Retrying { attempt: 3, delay: Duration::from_millis(250) };
/// assert_eq!(event.to_string(), "attempt 3: reconnecting in 250ms");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A connect attempt starts.
    Connecting {
        /// The attempt's number.
        attempt: u32,
    },
    /// The connection is established; the body runs.
    Connected {
        /// The attempt's number.
        attempt: u32,
    },
    /// The connect attempt failed.
    ConnectFailed {
        /// The attempt's number.
        attempt: u32,
        /// The connect error, rendered with `Display`.
        error: String,
    },
    /// The connection's close finished, or was dropped when the close timeout passed.
    Closed {
        /// The attempt's number.
        attempt: u32,
        /// How long the close took.
        took: Duration,
        /// Whether the close timeout passed first.
        timed_out: bool,
    },
    /// The connection was lost: the body was force-exited, the connection closed, and the
    /// typed [`ConnectionLost`](crate::ConnectionLost) has reached the supervisor's caller.
    Lost {
        /// The attempt's number.
        attempt: u32,
        /// Why.
        reason: LossReason,
    },
    /// Waiting before the next attempt.
    Retrying {
        /// The number of the attempt that follows the wait.
        attempt: u32,
        /// How long the wait is (backoff with jitter).
        delay: Duration,
    },
    /// The setup step ([`Reconnect::setup`](crate::Reconnect::setup)) failed while the
    /// connection was fine; the connection is closed and the error classified like a connect
    /// error.
    SetupFailed {
        /// The attempt's number.
        attempt: u32,
        /// The setup's error, rendered with `Display`.
        error: String,
    },
    /// The loop stopped retrying — the error is permanent, or a limit was reached — and the
    /// last error is returned to the caller.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// Why it stopped.
        why: crate::GiveUp,
        /// The last error, rendered with `Display`.
        error: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Connecting { attempt } => write!(f, "attempt {attempt}: connecting"),
            Event::Connected { attempt } => write!(f, "attempt {attempt}: connected"),
            Event::ConnectFailed { attempt, error } => {
                write!(f, "attempt {attempt}: connect failed: {error}")
            }
            Event::Closed {
                attempt,
                took,
                timed_out: false,
            } => write!(f, "attempt {attempt}: closed in {took:?}"),
            Event::Closed {
                attempt,
                took,
                timed_out: true,
            } => write!(f, "attempt {attempt}: close timed out after {took:?}"),
            Event::Lost { attempt, reason } => {
                write!(f, "attempt {attempt}: connection lost: {reason}")
            }
            Event::Retrying { attempt, delay } => {
                write!(f, "attempt {attempt}: reconnecting in {delay:?}")
            }
            Event::SetupFailed { attempt, error } => {
                write!(f, "attempt {attempt}: setup failed: {error}")
            }
            Event::GaveUp {
                attempts,
                why,
                error,
            } => write!(f, "gave up after {attempts} attempts ({why}): {error}"),
        }
    }
}

/// The `on_event` callback, shared by a supervisor and its reconnect loop.
#[derive(Clone)]
pub(crate) struct Observer(Arc<dyn Fn(&Event) + Send + Sync>);

impl Observer {
    pub(crate) fn new(f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        Observer(Arc::new(f))
    }

    pub(crate) fn emit(observer: &Option<Observer>, event: Event) {
        tracing::debug!(%event, "connection event");
        if let Some(observer) = observer {
            (observer.0)(&event);
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observer(..)")
    }
}
