use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::connection::Connection;
use crate::error::ConnectionLost;
use crate::supervise::event::{Event, Observer};

/// The default bound on a connection's close: 5 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `body` with `conn` under supervision, with the default [`Supervisor`]: see
/// [`Supervisor::run`].
///
/// # Cancel safety
///
/// Not cancel safe in the sense of losing nothing: dropping the future force-exits the body.
/// The close still runs (see *Drop behavior*).
///
/// # Drop behavior
///
/// As for a nursery dropped by foreign code: the body and the watcher are dropped at once, and
/// the close runs on a detached task, still bounded by the close timeout; the nearest
/// enclosing scope of the `nursery` crate waits for it. The close is registered when
/// `supervise` is called, so this holds from then on: a future dropped before its first poll,
/// or first polled inside an already cancelled scope, closes the connection too.
///
/// # Examples
///
/// ```no_run
/// use nursery_net::{supervise, ConnectionLost, TcpConfig, TcpConnection};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = TcpConnection::connect("127.0.0.1:7000", TcpConfig::new()).await?;
/// let echoed = supervise(conn, |conn| async move {
///     conn.send(b"ping\n").await?;
///     conn.recv().await // force-exited with ConnectionLost if the peer goes away first
/// })
/// .await;
/// match echoed {
///     Ok(bytes) => println!("got {} bytes", bytes.len()),
///     Err(ConnectionLost { reason }) => println!("lost: {reason}"),
/// }
/// # Ok(()) }
/// ```
pub fn supervise<C, T, E, F, Fut>(conn: C, body: F) -> impl Future<Output = Result<T, E>>
where
    C: Connection,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<ConnectionLost> + fmt::Display + Send + 'static,
{
    Supervisor::new().run(conn, body)
}

/// Runs bodies with a connection under supervision: force-exit on loss with a typed
/// [`ConnectionLost`], and a bounded close on every exit path.
///
/// Built on a nursery: the body is the nursery's body, a child task named
/// `connection watcher` runs [`Connection::watch`] and waits on the
/// [`LossSignal`](crate::LossSignal), and the close is a deferred cleanup bounded by the close
/// timeout.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use nursery_net::{Connection, ConnectionLost, Event, LossReason, LossSignal, Supervisor};
///
/// #[derive(Clone, Default)]
/// struct Conn { signal: LossSignal }
/// impl Connection for Conn {
///     fn watch(&self) -> impl std::future::Future<Output = LossReason> + Send + 'static {
///         std::future::pending()
///     }
///     fn close(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
///         async {}
///     }
///     fn loss_signal(&self) -> &LossSignal { &self.signal }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let log = events.clone();
/// let supervisor = Supervisor::new()
///     .close_timeout(Duration::from_secs(1))
///     .on_event(move |e| log.lock().unwrap().push(e.clone()));
/// let out = supervisor
///     .run(Conn::default(), |conn| async move {
///         conn.signal.trigger("unplugged");
///         std::future::pending::<Result<(), ConnectionLost>>().await
///     })
///     .await;
/// assert_eq!(out.unwrap_err().reason, LossReason::external("unplugged"));
/// let events = events.lock().unwrap();
/// assert!(matches!(events[0], Event::Closed { attempt: 1, timed_out: false, .. }));
/// assert!(matches!(events[1], Event::Lost { attempt: 1, .. }));
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Supervisor does nothing until `run` is called"]
pub struct Supervisor {
    close_timeout: Duration,
    drain: Option<Duration>,
    name: Arc<str>,
    pub(crate) observer: Option<Observer>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with a 5 s close timeout and no event callback.
    ///
    /// ```
    /// let _supervisor = nursery_net::Supervisor::new();
    /// ```
    pub fn new() -> Self {
        Supervisor {
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            drain: None,
            name: Arc::from("connection"),
            observer: None,
        }
    }

    /// Bounds the connection's close: past it the close is dropped (which releases the
    /// connection) and reported as [`Event::Closed`] with `timed_out: true`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _supervisor = nursery_net::Supervisor::new().close_timeout(Duration::from_millis(500));
    /// ```
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Lets the body drain after a clean close by the peer (a close frame, a clean TCP EOF):
    /// instead of being force-exited at once, the body keeps receiving what was already
    /// received, then gets the [`ConnectionLost`] from `recv` (its sends fail at once), and is
    /// force-exited only if it is still running when `grace` ends. Abrupt losses (reset, abort,
    /// heartbeat or idle timeout, protocol error, external trigger) force-exit the body at once
    /// either way. The close (and the answer to the peer's close frame) waits for the body.
    ///
    /// Without it, unread messages are not lost either: they are in the connection's
    /// [`Accounting`](crate::Accounting).
    ///
    /// ```
    /// use std::time::Duration;
    /// let supervisor = nursery_net::Supervisor::new().drain(Duration::from_secs(2));
    /// assert_eq!(supervisor.get_drain(), Some(Duration::from_secs(2)));
    /// ```
    pub fn drain(mut self, grace: Duration) -> Self {
        self.drain = Some(grace);
        self
    }

    /// The drain grace, if any.
    ///
    /// ```
    /// assert_eq!(nursery_net::Supervisor::new().get_drain(), None);
    /// ```
    pub fn get_drain(&self) -> Option<std::time::Duration> {
        self.drain
    }

    /// Names the supervising nursery (shown in the nursery's tree and `tracing` events).
    ///
    /// ```
    /// let _supervisor = nursery_net::Supervisor::new().name("quotes feed");
    /// ```
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Calls `f` with every [`Event`], synchronously, in order.
    ///
    /// ```
    /// let _supervisor = nursery_net::Supervisor::new().on_event(|e| eprintln!("{e}"));
    /// ```
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.observer = Some(Observer::new(f));
        self
    }

    /// The close timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(nursery_net::Supervisor::new().get_close_timeout(), Duration::from_secs(5));
    /// ```
    pub fn get_close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// Runs `body` with `conn`, the way trio's `get_service_connection` does:
    ///
    /// - the body gets a handle to the connection and runs;
    /// - a watcher child drives the connection and waits on its loss signal; when the
    ///   connection is lost (peer closed, reset, heartbeat or idle timeout, external trigger,
    ///   protocol error), the body is force-exited wherever it is waiting, and the call returns
    ///   `Err(E::from(ConnectionLost { reason }))`;
    /// - the connection is closed after the body and the watcher are gone, on every exit path,
    ///   exactly once, shielded from the cancellation, bounded by the close timeout;
    /// - otherwise the body's own result is returned.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future force-exits the body; see *Drop behavior*.
    ///
    /// # Drop behavior
    ///
    /// As for a nursery dropped by foreign code: the body and the watcher are dropped at once,
    /// and the close runs on a detached task, bounded; the nearest enclosing scope of the
    /// `nursery` crate waits for it. Cancelling through a `tokio_nursery::CancelScope` instead lets
    /// the close finish before the scope returns. The close is registered when `run` is called,
    /// not at the first poll: a future dropped unpolled, or first polled inside a cancelled
    /// scope (its body then never runs), still closes the connection.
    ///
    /// # Examples
    ///
    /// See [`Supervisor`] and [`supervise`].
    pub fn run<C, T, E, F, Fut>(&self, conn: C, body: F) -> impl Future<Output = Result<T, E>>
    where
        C: Connection,
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<ConnectionLost> + fmt::Display + Send + 'static,
    {
        self.run_attempt(1, conn, body)
    }

    /// One supervised run, numbered `attempt` in the events.
    ///
    /// The nursery is built here, not at the first poll, and the close is registered with it
    /// while it is built: a run dropped unpolled, or first polled inside a cancelled scope
    /// (Rule 3: its body is then dropped unpolled), still closes the connection, on the
    /// detached finisher or in the cleanup phase (§3.4). Registering the close from inside the
    /// body, as trio's `finally` does, would skip it on those paths.
    pub(crate) fn run_attempt<C, T, E, F, Fut>(
        &self,
        attempt: u32,
        conn: C,
        body: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        C: Connection,
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<ConnectionLost> + fmt::Display + Send + 'static,
    {
        let close_timeout = self.close_timeout;
        let drain = self.drain;
        let observer = self.observer.clone();
        let signal = conn.loss_signal().clone();
        // The nursery's own bound is a backstop: the close is bounded inside the cleanup.
        let backstop = close_timeout.saturating_add(Duration::from_secs(1));
        let closing = close(conn.clone(), close_timeout, attempt, observer.clone());
        let supervised = tokio_nursery::NurseryBuilder::new()
            .name(Arc::clone(&self.name))
            .cleanup_timeout(backstop)
            .run(move |n| {
                // `finally: await connection.disconnect()`
                n.defer(closing);
                async move {
                    // `nursery.start_soon(connection.wait_disconnected)`
                    n.spawn_named("connection watcher", watch::<C, E>(conn.clone(), drain));
                    // `yield connection`
                    let out = body(conn).await;
                    // Normal exit: stop the watcher (`nursery.cancel_scope.cancel()`).
                    n.cancel();
                    out
                }
            });
        async move {
            let out = supervised.await;
            if out.is_err() {
                if let Some(reason) = signal.reason() {
                    Observer::emit(&observer, Event::Lost { attempt, reason });
                }
            }
            out
        }
    }
}

/// The deferred close: bounded by `timeout`, reported as [`Event::Closed`].
async fn close<C: Connection, E>(
    conn: C,
    timeout: Duration,
    attempt: u32,
    observer: Option<Observer>,
) -> Result<(), E> {
    let started = Instant::now();
    let closed = tokio_nursery::move_on_after(timeout, conn.close()).await;
    let event = Event::Closed {
        attempt,
        took: started.elapsed(),
        timed_out: closed.is_none(),
    };
    Observer::emit(&observer, event);
    Ok(())
}

/// The watcher child: drives the connection until it is lost (or the signal fires), then fails
/// the nursery with the first reason reported, after the drain grace for a clean close.
async fn watch<C: Connection, E: From<ConnectionLost>>(
    conn: C,
    drain: Option<Duration>,
) -> Result<(), E> {
    let signal = conn.loss_signal();
    let detected = tokio::select! {
        biased;
        reason = signal.fired() => reason,
        reason = conn.watch() => reason,
    };
    signal.fire(detected.clone());
    // The first report wins, whoever made it.
    let reason = signal.reason().unwrap_or(detected);
    if let Some(grace) = drain.filter(|_| reason.is_clean_close()) {
        // The body reads what was buffered, then meets the loss in `recv`.
        tokio::time::sleep(grace).await;
    }
    Err(E::from(ConnectionLost::new(reason)))
}
