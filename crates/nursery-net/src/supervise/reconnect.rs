use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::ConnectionLost;
use crate::supervise::backoff::Backoff;
use crate::supervise::event::{Event, Observer};
use crate::supervise::supervisor::Supervisor;

/// An opt-in reconnect loop around [`Supervisor::run`]: after a loss it closes, waits with
/// exponential backoff and jitter, reconnects and runs the body again.
///
/// - A **loss** (the connection's [`LossSignal`](crate::LossSignal) fired) and a **failed
///   connect** are retried; any other outcome — the body's `Ok`, or an error the body returned
///   while its connection was fine — is returned at once.
/// - The close of the old connection has finished (or timed out) before the next connect
///   starts: each attempt is a complete supervised run.
/// - The backoff starts again from its first delay after each successful connect.
/// - Limits: [`max_attempts`](Self::max_attempts) (connect attempts in total) and
///   [`max_elapsed`](Self::max_elapsed) (no wait that would end past it is started). When one
///   is reached, [`Event::GaveUp`] is reported and the last error is returned.
/// - [`on_event`](Self::on_event) observes connects, losses, closes and retries.
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
#[derive(Debug, Clone, Default)]
#[must_use = "a Reconnect does nothing until `run` is called"]
pub struct Reconnect {
    supervisor: Supervisor,
    backoff: Backoff,
    max_attempts: Option<u32>,
    max_elapsed: Option<Duration>,
    /// Opt-in replay of a lost connection's unsent messages (`supervise::replay`).
    pub(super) replay_unsent: bool,
}

impl Reconnect {
    /// Unlimited attempts, the default [`Backoff`] and [`Supervisor`].
    ///
    /// ```
    /// let _reconnect = nursery_net::Reconnect::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
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

    /// Connects with `connect` and runs `body` under supervision, again after each loss, until
    /// the body's outcome is not a loss or a limit is reached.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future force-exits the current body (and drops a pending connect or wait).
    ///
    /// # Drop behavior
    ///
    /// The current attempt's close runs on a detached task, bounded, as for
    /// [`Supervisor::run`]; no new attempt starts. Cancel through a `tokio_nursery::CancelScope`
    /// to let the close finish before the scope returns.
    ///
    /// # Examples
    ///
    /// See [`Reconnect`].
    pub async fn run<C, T, E, Conn, ConnFut, B, BFut>(
        &self,
        mut connect: Conn,
        mut body: B,
    ) -> Result<T, E>
    where
        C: Connection,
        Conn: FnMut() -> ConnFut,
        ConnFut: Future<Output = Result<C, E>>,
        B: FnMut(C) -> BFut,
        BFut: Future<Output = Result<T, E>>,
        E: From<ConnectionLost> + fmt::Display + Send + 'static,
    {
        let observer = &self.supervisor.observer;
        let started = Instant::now();
        let mut delays = self.backoff.delays();
        let mut attempt = 0u32;
        let mut previous: Option<C> = None;
        loop {
            attempt += 1;
            Observer::emit(observer, Event::Connecting { attempt });
            let error = match connect().await {
                Ok(conn) => {
                    Observer::emit(observer, Event::Connected { attempt });
                    crate::supervise::replay::carry_over(self, previous.take(), &conn);
                    delays.reset();
                    let signal = conn.loss_signal().clone();
                    previous = self.replay_unsent.then(|| conn.clone());
                    match self.supervisor.run_attempt(attempt, conn, &mut body).await {
                        Ok(value) => return Ok(value),
                        Err(error) if signal.is_fired() => error,
                        Err(error) => return Err(error),
                    }
                }
                Err(error) => {
                    let failed = Event::ConnectFailed {
                        attempt,
                        error: error.to_string(),
                    };
                    Observer::emit(observer, failed);
                    error
                }
            };
            if self.max_attempts.is_some_and(|max| attempt >= max) {
                return Err(give_up(observer, attempt, error));
            }
            let delay = delays.next().unwrap_or_default();
            let over = self
                .max_elapsed
                .is_some_and(|total| started.elapsed().saturating_add(delay) > total);
            if over {
                return Err(give_up(observer, attempt, error));
            }
            let next = attempt + 1;
            Observer::emit(
                observer,
                Event::Retrying {
                    attempt: next,
                    delay,
                },
            );
            tokio::time::sleep(delay).await;
        }
    }
}

fn give_up<E: fmt::Display>(observer: &Option<Observer>, attempts: u32, error: E) -> E {
    let event = Event::GaveUp {
        attempts,
        error: error.to_string(),
    };
    Observer::emit(observer, event);
    error
}
