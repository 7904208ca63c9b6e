use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::ConnectionLost;
use crate::supervise::backoff::Delays;
use crate::supervise::event::{Event, Observer};
use crate::supervise::reconnect::Reconnect;
use crate::supervise::retry::{GiveUp, Predicate, Retry};
use crate::supervise::setup::Setup;

/// How an attempt that did not return ended: the error, and whether and when to try again.
struct Failed<E> {
    error: E,
    retry: Retry,
}

/// The end of an attempt that produced no value.
enum Ended<E> {
    /// A loss, or a failed setup: classified, maybe retried.
    Failed(Failed<E>),
    /// The body's own error while the connection was fine: returned as is.
    Body(E),
}

impl<S> Reconnect<S> {
    /// Connects with `connect`, runs the [`setup`](Self::setup) step and then `body` under
    /// supervision, again after each loss or transient failure, until the body's outcome is not
    /// a loss, an error is permanent, or a limit is reached.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future force-exits the current body (and drops a pending connect or wait).
    ///
    /// # Drop behavior
    ///
    /// The current attempt's close runs on a detached task, bounded, as for
    /// [`Supervisor::run`](crate::Supervisor::run); no new attempt starts. Cancel through a
    /// `tokio_nursery::CancelScope` to let the close finish before the scope returns.
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
        S: Setup<C, E>,
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
            let failed = match connect().await {
                Ok(conn) => {
                    Observer::emit(observer, Event::Connected { attempt });
                    crate::supervise::replay::carry_over(self, previous.take(), &conn);
                    previous = self.replay_unsent.then(|| conn.clone());
                    match self.attempt(attempt, conn, &mut body, &mut delays).await {
                        Ok(value) => return Ok(value),
                        Err(Ended::Failed(failed)) => failed,
                        Err(Ended::Body(error)) => return Err(error),
                    }
                }
                Err(error) => {
                    let failed = Event::ConnectFailed {
                        attempt,
                        error: error.to_string(),
                    };
                    Observer::emit(observer, failed);
                    let retry = Predicate::classify(&self.retry_if, &error);
                    Failed { error, retry }
                }
            };
            let delay = self.next_delay(attempt, started, failed.retry, &mut delays);
            let delay = match delay {
                Ok(delay) => delay,
                Err(why) => return Err(give_up(observer, attempt, why, failed.error)),
            };
            let next = attempt + 1;
            let retrying = Event::Retrying {
                attempt: next,
                delay,
            };
            Observer::emit(observer, retrying);
            tokio::time::sleep(delay).await;
        }
    }

    /// One supervised run: setup, then body.
    async fn attempt<C, T, E, B, BFut>(
        &self,
        attempt: u32,
        conn: C,
        body: &mut B,
        delays: &mut Delays,
    ) -> Result<T, Ended<E>>
    where
        C: Connection,
        S: Setup<C, E>,
        B: FnMut(C) -> BFut,
        BFut: Future<Output = Result<T, E>>,
        E: From<ConnectionLost> + fmt::Display + Send + 'static,
    {
        let signal = conn.loss_signal().clone();
        let setup_failed = AtomicBool::new(false);
        let up = Instant::now();
        let (setup, flag) = (&self.setup, &setup_failed);
        let run = move |conn: C| async move {
            if let Err(error) = setup.setup(conn.clone()).await {
                flag.store(true, Ordering::Relaxed);
                return Err(error);
            }
            body(conn).await
        };
        let error = match self.supervisor.run_attempt(attempt, conn, run).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if signal.is_fired() {
            // A connection that stayed up long enough proves the server healthy again; one
            // that did not counts like a failed attempt, so the waits keep growing.
            if up.elapsed() >= self.stable_after {
                delays.reset();
            }
            return Err(Ended::Failed(Failed {
                error,
                retry: Retry::Yes,
            }));
        }
        if setup_failed.load(Ordering::Relaxed) {
            let failed = Event::SetupFailed {
                attempt,
                error: error.to_string(),
            };
            Observer::emit(&self.supervisor.observer, failed);
            let retry = Predicate::classify(&self.retry_if, &error);
            return Err(Ended::Failed(Failed { error, retry }));
        }
        Err(Ended::Body(error))
    }

    /// The wait before attempt `attempt + 1`, or why there is none.
    fn next_delay(
        &self,
        attempt: u32,
        started: Instant,
        retry: Retry,
        delays: &mut Delays,
    ) -> Result<Duration, GiveUp> {
        let floor = match retry {
            Retry::No => return Err(GiveUp::Permanent),
            Retry::Yes => Duration::ZERO,
            Retry::After(wait) => wait,
        };
        if self.max_attempts.is_some_and(|max| attempt >= max) {
            return Err(GiveUp::MaxAttempts);
        }
        let delay = delays.next().unwrap_or_default().max(floor);
        let over = self
            .max_elapsed
            .is_some_and(|total| started.elapsed().saturating_add(delay) > total);
        if over {
            return Err(GiveUp::MaxElapsed);
        }
        Ok(delay)
    }
}

fn give_up<E: fmt::Display>(
    observer: &Option<Observer>,
    attempts: u32,
    why: GiveUp,
    error: E,
) -> E {
    let event = Event::GaveUp {
        attempts,
        why,
        error: error.to_string(),
    };
    Observer::emit(observer, event);
    error
}
