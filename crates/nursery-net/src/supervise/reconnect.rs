use std::fmt;
use std::time::Duration;

use crate::supervise::backoff::Backoff;
use crate::supervise::event::{Event, Observer};
use crate::supervise::retry::{Predicate, Retry};
use crate::supervise::setup::NoSetup;
use crate::supervise::supervisor::Supervisor;

/// An opt-in reconnect loop around [`Supervisor::run`]: after a loss it closes, waits with
/// exponential backoff and jitter, reconnects and runs the body again.
///
/// - A **loss** (the connection's [`LossSignal`](crate::LossSignal) fired, during the setup or
///   the body) is retried. A **failed connect**, or a failed [`setup`](Self::setup) while the
///   connection was fine, is classified ([`Retry`]): permanent errors give up at once with that
///   error ([`Event::GaveUp`] with [`GiveUp::Permanent`](crate::GiveUp::Permanent)), transient ones are retried, and a
///   server's `Retry-After` makes the next wait at least that long. The default classification
///   is [`Retry::by_default`] (it reads [`ConnectError`](crate::ConnectError), `io::Error`,
///   [`ConnectionLost`](crate::ConnectionLost) and boxed errors' source chains; any other type is transient);
///   [`retry_if`](Self::retry_if) overrides it. Any other outcome — the body's `Ok`, or an
///   error the body returned while its connection was fine — is returned at once.
/// - The close of the old connection has finished (or timed out) before the next connect
///   starts: each attempt is a complete supervised run.
/// - The backoff starts again from its first delay only after a connection stayed up for
///   [`stable_after`](Self::stable_after) (10 s by default): a server that accepts and closes
///   at once is reconnected with growing waits, not in a tight loop.
/// - Limits: [`max_attempts`](Self::max_attempts) (connect attempts in total) and
///   [`max_elapsed`](Self::max_elapsed) (no wait that would end past it is started). When one
///   is reached, [`Event::GaveUp`] is reported with the limit, and the last error is returned.
/// - [`on_event`](Self::on_event) observes connects, setups, losses, closes, retries and the
///   give-up.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use nursery_net::{Backoff, Connection, ConnectionLost, LossReason, LossSignal, Reconnect};
///
/// #[derive(Clone, Default)]
/// struct Conn { signal: LossSignal }
/// impl Connection for Conn {
///     fn watch(&self) -> impl std::future::Future<Output = LossReason> + Send + 'static {
///         std::future::pending()
///     }
///     fn close(&self) -> impl std::future::Future<Output = ()> + Send + 'static { async {} }
///     fn loss_signal(&self) -> &LossSignal { &self.signal }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let runs = AtomicU32::new(0);
/// let out = Reconnect::new()
///     .backoff(Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).seed(1))
///     .max_attempts(5)
///     .run(
///         || async { Ok::<_, ConnectionLost>(Conn::default()) },
///         |conn| {
///             let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
///             async move {
///                 if run < 3 {
///                     conn.signal.trigger("flaky link"); // lost twice...
///                     std::future::pending::<()>().await;
///                 }
///                 Ok(run) // ...then the third run completes
///             }
///         },
///     )
///     .await;
/// assert_eq!(out.unwrap(), 3);
/// # }
/// ```
#[derive(Clone)]
#[must_use = "a Reconnect does nothing until `run` is called"]
pub struct Reconnect<S = NoSetup> {
    pub(super) supervisor: Supervisor,
    pub(super) backoff: Backoff,
    pub(super) max_attempts: Option<u32>,
    pub(super) max_elapsed: Option<Duration>,
    pub(super) stable_after: Duration,
    pub(super) retry_if: Option<Predicate>,
    pub(super) setup: S,
    /// Opt-in replay of a lost connection's unsent messages (`supervise::replay`).
    pub(super) replay_unsent: bool,
}

/// The default [`Reconnect::stable_after`]: 10 s, the default backoff's longest wait. A
/// connection that lived at least as long as the longest wait is not a flapping one.
pub const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(10);

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            supervisor: Supervisor::default(),
            backoff: Backoff::default(),
            max_attempts: None,
            max_elapsed: None,
            stable_after: DEFAULT_STABLE_AFTER,
            retry_if: None,
            setup: NoSetup,
            replay_unsent: false,
        }
    }
}

impl<S> fmt::Debug for Reconnect<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("supervisor", &self.supervisor)
            .field("backoff", &self.backoff)
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("stable_after", &self.stable_after)
            .field("retry_if", &self.retry_if.is_some())
            .field("setup", &std::any::type_name::<S>())
            .field("replay_unsent", &self.replay_unsent)
            .finish()
    }
}

impl Reconnect {
    /// Unlimited attempts, the default [`Backoff`] and [`Supervisor`], no setup step, a
    /// `stable_after` of 10 s, the default classification of errors.
    ///
    /// ```
    /// let _reconnect = nursery_net::Reconnect::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Reconnect<S> {
    /// Resets the backoff only after a connection stayed up this long (measured from the
    /// connect to the loss; default [`DEFAULT_STABLE_AFTER`], 10 s). A shorter-lived
    /// connection counts like a failed attempt for the backoff: the next wait grows.
    /// `Duration::ZERO` resets after every successful connect.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _r = nursery_net::Reconnect::new().stable_after(Duration::from_secs(30));
    /// ```
    pub fn stable_after(mut self, uptime: Duration) -> Self {
        self.stable_after = uptime;
        self
    }

    /// Decides, instead of [`Retry::by_default`], whether a failed connect or setup of error
    /// type `E` is retried. The predicate answers only for the `E` it is written for (the
    /// error type of [`run`](Self::run)'s closures); any other type falls back to the default.
    ///
    /// ```
    /// use nursery_net::{ConnectError, ConnectionLost, Reconnect, Retry};
    ///
    /// #[derive(Debug, thiserror::Error)]
    /// enum AppError {
    ///     #[error(transparent)]
    ///     Lost(#[from] ConnectionLost),
    ///     #[error(transparent)]
    ///     Connect(ConnectError),
    ///     #[error("login refused")]
    ///     LoginRefused,
    /// }
    ///
    /// let _r = Reconnect::new().retry_if(|e: &AppError| match e {
    ///     AppError::Connect(e) => Retry::from(e),
    ///     AppError::LoginRefused => Retry::No,
    ///     AppError::Lost(_) => Retry::Yes,
    /// });
    /// ```
    pub fn retry_if<E: 'static>(mut self, f: impl Fn(&E) -> Retry + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Predicate::new(f));
        self
    }

    /// Runs `setup` on every new connection, under supervision, before the body:
    /// authenticate, subscribe again. `Ok` runs the body; an error while the connection is
    /// fine is reported as [`Event::SetupFailed`], the connection is closed, and the error is
    /// classified like a connect error (retried or not); a loss during the setup is a loss.
    ///
    /// ```
    /// use nursery_net::{ConnectionLost, Reconnect, WsConnection};
    ///
    /// let _r = Reconnect::new().setup(|conn: WsConnection| async move {
    ///     conn.send_text("subscribe quotes").await?;
    ///     Ok::<(), ConnectionLost>(())
    /// });
    /// ```
    pub fn setup<S2>(self, setup: S2) -> Reconnect<S2> {
        Reconnect {
            supervisor: self.supervisor,
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            stable_after: self.stable_after,
            retry_if: self.retry_if,
            setup,
            replay_unsent: self.replay_unsent,
        }
    }

    /// The supervisor for each attempt (close timeout, name). Its event callback is replaced by
    /// the one given to [`on_event`](Self::on_event), if any.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nursery_net::{Reconnect, Supervisor};
    /// let _r = Reconnect::new().supervisor(Supervisor::new().close_timeout(Duration::from_secs(1)));
    /// ```
    pub fn supervisor(mut self, supervisor: Supervisor) -> Self {
        let observer = self.supervisor.observer.take();
        self.supervisor = supervisor;
        if observer.is_some() {
            self.supervisor.observer = observer;
        }
        self
    }

    /// The delays between attempts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nursery_net::{Backoff, Reconnect};
    /// let _r = Reconnect::new().backoff(Backoff::new(Duration::from_millis(10), Duration::from_secs(2)));
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// At most `attempts` connect attempts in total (the first one included).
    ///
    /// ```
    /// let _r = nursery_net::Reconnect::new().max_attempts(10);
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    /// No wait is started that would end more than `total` after the first attempt started.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _r = nursery_net::Reconnect::new().max_elapsed(Duration::from_secs(60));
    /// ```
    pub fn max_elapsed(mut self, total: Duration) -> Self {
        self.max_elapsed = Some(total);
        self
    }

    /// Calls `f` with every [`Event`] of every attempt, synchronously, in order. For an event
    /// stream, forward into a channel:
    ///
    /// ```
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let _r = nursery_net::Reconnect::new().on_event(move |e| {
    ///     let _ = tx.send(e.clone());
    /// });
    /// # drop(rx.try_recv());
    /// ```
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.supervisor.observer = Some(Observer::new(f));
        self
    }
}
