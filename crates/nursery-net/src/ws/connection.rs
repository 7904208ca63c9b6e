use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::connect::deadline::Deadline;
use crate::connect::error::{ConnectError, ConnectStage};
use crate::connect::ws as connect;
use crate::connection::Connection;
use crate::error::ConnectionLost;
use crate::loss::accounting::Accounting;
use crate::loss::link::{Link, Weigh};
use crate::loss::reason::LossReason;
use crate::loss::signal::LossSignal;
use crate::tls::TlsServerConfig;
use crate::ws::config::WsConfig;
use crate::ws::ledger::Ledger;

/// What the driver needs from a WebSocket stream, whatever the socket under it.
pub(crate) trait WsIo:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin
{
}

impl<T> WsIo for T where
    T: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin
{
}

/// A message for the writer, with the channel that reports whether it was written.
pub(crate) struct Outgoing {
    pub(crate) message: Message,
    pub(crate) done: oneshot::Sender<Result<(), ConnectionLost>>,
}

/// A supervised WebSocket connection (tokio-tungstenite): a cheap `Clone` handle.
///
/// Under supervision ([`supervise`](crate::supervise), [`Reconnect`](crate::Reconnect)), the
/// watcher owns the socket: it reads (received text and binary messages wait for
/// [`recv`](Self::recv)), writes what [`send`](Self::send) queues, answers pings, sends its
/// own pings (see [`WsConfig`]), and detects the loss: a close frame or end of stream
/// ([`LossReason::PeerClosed`]), a reset or I/O error, an unanswered ping
/// ([`LossReason::HeartbeatTimeout`]), an idle timeout, a protocol error from the peer
/// (invalid frames, a message over the size limit: [`LossReason::Protocol`]), or the
/// [`LossSignal`].
///
/// The close performs the close handshake — first writing what `send` had queued, when the
/// connection is still good — and is bounded by the supervisor's close timeout; after a reset
/// or an unanswered heartbeat it just releases the socket.
///
/// `send` and `recv` only make progress while a supervisor drives the connection.
///
/// # Examples
///
/// ```no_run
/// use nursery_net::{supervise, ConnectionLost, WsConfig, WsConnection};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = WsConnection::connect("ws://127.0.0.1:9000/feed", WsConfig::new()).await?;
/// let first = supervise(conn, |conn| async move {
///     conn.send_text("subscribe quotes").await?;
///     conn.recv().await
/// })
/// .await;
/// match first {
///     Ok(message) => println!("first message: {message}"),
///     Err(ConnectionLost { reason }) => println!("lost before the first message: {reason}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "a connection does nothing until it is supervised"]
pub struct WsConnection {
    pub(crate) inner: Arc<WsInner>,
}

impl Weigh for Message {
    fn weight(&self) -> usize {
        self.len()
    }
}

pub(crate) struct WsInner {
    pub(super) link: Link<Message>,
    /// What was handed to the socket (the in-flight window) and what failed at once.
    pub(super) ledger: std::sync::Mutex<Ledger>,
    /// Whether `ledger.replay` may hold messages (checked by the writer without the lock).
    pub(super) has_replay: std::sync::atomic::AtomicBool,
    pub(super) stream: Mutex<Option<Box<dyn WsIo>>>,
    /// Boxed, as the inbound queue of [`Link`] is: the channel's first block is allocated up
    /// front.
    pub(super) outbound_tx: mpsc::Sender<Box<Outgoing>>,
    pub(super) outbound_rx: Mutex<mpsc::Receiver<Box<Outgoing>>>,
    pub(super) config: WsConfig,
}

impl fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsConnection")
            .field("config", &self.inner.config)
            .field("lost", &self.inner.link.signal.reason())
            .finish()
    }
}

impl WsConnection {
    /// Connects to a `ws://` or `wss://` URL (or a request built with tungstenite's
    /// `IntoClientRequest`, to add headers) and performs the opening handshake. Nagle's
    /// algorithm is off. For `wss://` the TLS handshake (rustls, the roots of
    /// [`WsConfig::tls`]) checks the server's certificate for the URL's host; a rejected
    /// certificate or host name is a permanent [`ConnectError::Tls`].
    ///
    /// The TCP connect, the TLS handshake and the upgrade together are bounded by
    /// [`WsConfig::connect_timeout`] (10 s by default): past it the connect fails with
    /// [`ConnectError::Timeout`], naming the stage it was in. The URL is checked before any
    /// socket is opened. Errors are typed ([`ConnectError`]):
    /// a bad URL or scheme, the TCP connect or the upgrade failing (with its stage), an HTTP
    /// status instead of the upgrade (with `Retry-After`), and whether retrying can help
    /// ([`ConnectError::is_permanent`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped midway, nothing is left behind (a half-open socket is closed).
    ///
    /// # Drop behavior
    ///
    /// Dropping it closes whatever socket it had opened.
    ///
    /// ```
    /// use nursery_net::{ConnectError, WsConfig, WsConnection};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = WsConnection::connect("http://127.0.0.1:9000", WsConfig::new()).await.unwrap_err();
    /// assert!(matches!(err, ConnectError::UnsupportedScheme { .. }));
    /// assert!(err.is_permanent());
    /// # }
    /// ```
    pub async fn connect(
        request: impl IntoClientRequest + Unpin,
        config: WsConfig,
    ) -> Result<Self, ConnectError> {
        let target = connect::target(request)?;
        let deadline = Deadline::after(config.connect_timeout);
        let tcp = connect::tcp(&target.host, target.port);
        let stream = deadline.run(ConnectStage::Tcp, tcp).await?;
        if target.tls {
            let tls = config.tls_or_default();
            let handshake = crate::connect::tls::connect(&tls, &target.host, stream);
            let stream = deadline.run(ConnectStage::Tls, handshake).await?;
            let upgrade = connect::upgrade(target.request, stream, config.websocket());
            let stream = deadline.run(ConnectStage::Upgrade, upgrade).await?;
            return Ok(Self::from_stream(stream, config));
        }
        let upgrade = connect::upgrade(target.request, stream, config.websocket());
        let stream = deadline.run(ConnectStage::Upgrade, upgrade).await?;
        Ok(Self::from_stream(stream, config))
    }

    /// [`accept`](Self::accept) over TLS: the TLS handshake with `tls`'s certificate, then the
    /// upgrade, both within [`WsConfig::handshake_timeout`]. An EOF without TLS `close_notify`
    /// later counts as an abort, not a clean close.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped midway, the socket is closed.
    ///
    /// # Drop behavior
    ///
    /// Dropping it closes the socket.
    ///
    /// ```no_run
    /// use nursery_net::{TlsServerConfig, WsConfig, WsConnection};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = TlsServerConfig::from_pem(&std::fs::read("cert.pem")?, &std::fs::read("key.pem")?)?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
    /// let (socket, _) = listener.accept().await?;
    /// let conn = WsConnection::accept_tls(socket, &tls, WsConfig::new()).await?;
    /// # drop(conn); Ok(()) }
    /// ```
    pub async fn accept_tls(
        socket: TcpStream,
        tls: &TlsServerConfig,
        config: WsConfig,
    ) -> Result<Self, ConnectError> {
        let deadline = Deadline::after(config.handshake_timeout);
        let stream = deadline
            .run(ConnectStage::Tls, crate::connect::tls::accept(tls, socket))
            .await?;
        let upgrade = connect::accept_on(stream, config.websocket());
        let stream = deadline.run(ConnectStage::Upgrade, upgrade).await?;
        Ok(Self::from_stream(stream, config))
    }

    /// Performs the server side of the opening handshake on an accepted socket, bounded by
    /// [`WsConfig::handshake_timeout`] (10 s by default), so a client that opens a socket and
    /// sends nothing, or trickles its request, cannot hold the task. Errors are typed
    /// ([`ConnectError`], at the [`Upgrade`](crate::ConnectStage::Upgrade) stage; the timeout
    /// is [`ConnectError::Timeout`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped midway, the socket is closed.
    ///
    /// # Drop behavior
    ///
    /// Dropping it closes the socket.
    ///
    /// ```no_run
    /// use nursery_net::{WsConfig, WsConnection};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    /// let (socket, _) = listener.accept().await?;
    /// let conn = WsConnection::accept(socket, WsConfig::new()).await?;
    /// # drop(conn); Ok(()) }
    /// ```
    pub async fn accept(socket: TcpStream, config: WsConfig) -> Result<Self, ConnectError> {
        let deadline = Deadline::after(config.handshake_timeout);
        let upgrade = connect::accept(socket, config.websocket());
        let stream = deadline.run(ConnectStage::Upgrade, upgrade).await?;
        Ok(Self::from_stream(stream, config))
    }

    /// Wraps an established tokio-tungstenite stream (TLS, a custom transport, …). The size
    /// limits of `config` apply only if the stream was built with them (as [`connect`] and
    /// [`accept`] do).
    ///
    /// [`connect`]: Self::connect
    /// [`accept`]: Self::accept
    ///
    /// ```
    /// use tokio_tungstenite::tungstenite::protocol::Role;
    /// use tokio_tungstenite::WebSocketStream;
    /// use nursery_net::{WsConfig, WsConnection};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (a, _b) = tokio::io::duplex(1024);
    /// let stream = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    /// let _conn = WsConnection::from_stream(stream, WsConfig::new());
    /// # }
    /// ```
    pub fn from_stream<S>(stream: WebSocketStream<S>, config: WsConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (outbound_tx, outbound_rx) = mpsc::channel(config.outbound_capacity);
        WsConnection {
            inner: Arc::new(WsInner {
                link: Link::new(config.inbound_capacity, config.inbound_bytes),
                ledger: std::sync::Mutex::new(Ledger::new(config.in_flight_window)),
                has_replay: Default::default(),
                stream: Mutex::new(Some(Box::new(stream))),
                outbound_tx,
                outbound_rx: Mutex::new(outbound_rx),
                config,
            }),
        }
    }

    /// Sends a message: `Ok` once its frame was written and flushed to the kernel (the socket
    /// accepted every byte; the peer may not have it yet). Messages go to the socket one at a
    /// time, in the order `send` was called.
    ///
    /// `Err(ConnectionLost)` when the connection is lost or closed first; the message is then
    /// in the connection's [`Accounting`] (see [`take_accounting`](Self::take_accounting)):
    /// *unsent* if it never reached the socket, *in flight* if its frame had started to be
    /// written. Nothing given to `send` disappears without a trace.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once queued, a message is written even if this future is dropped (or,
    /// at a loss, is accounted as unsent).
    ///
    /// # Drop behavior
    ///
    /// Dropping it stops waiting; a queued message is still written.
    ///
    /// ```no_run
    /// use nursery_net::tungstenite::Message;
    /// # async fn f(conn: nursery_net::WsConnection) -> Result<(), nursery_net::ConnectionLost> {
    /// conn.send(Message::binary(vec![1, 2, 3])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), ConnectionLost> {
        let link = &self.inner.link;
        let message = message.into();
        if link.is_down() {
            return Err(self.refuse(message));
        }
        // A full queue waits for the writer; a loss while waiting refuses the message (unsent).
        let permit = tokio::select! {
            permit = self.inner.outbound_tx.reserve() => permit,
            _ = link.signal.fired() => return Err(self.refuse(message)),
        };
        let Ok(permit) = permit else {
            return Err(self.refuse(message));
        };
        let (done, written) = oneshot::channel();
        // Once queued, a loss leaves it queued: the accounting's unsent.
        permit.send(Box::new(Outgoing { message, done }));
        tokio::select! {
            biased;
            written = written => written.unwrap_or_else(|_| Err(link.lost())),
            _ = link.signal.fired() => Err(link.lost()),
        }
    }

    /// A `send` on a connection already lost or closed: the message is accounted as unsent.
    fn refuse(&self, message: Message) -> ConnectionLost {
        self.inner
            .ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refused(message);
        self.inner.link.lost()
    }

    /// Sends a text message, as [`send`](Self::send).
    ///
    /// # Cancel safety
    ///
    /// As for [`send`](Self::send).
    ///
    /// # Drop behavior
    ///
    /// As for [`send`](Self::send).
    ///
    /// ```no_run
    /// # async fn f(conn: nursery_net::WsConnection) -> Result<(), nursery_net::ConnectionLost> {
    /// conn.send_text("hello").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), ConnectionLost> {
        self.send(Message::text(text.into())).await
    }

    /// The next text or binary message from the peer (pings, pongs and close frames are
    /// handled by the connection), in order. Messages received before a loss are returned
    /// before the [`ConnectionLost`] — while the body still runs: at a loss it is force-exited
    /// at once, unless [`Supervisor::drain`](crate::Supervisor::drain) lets it read on after a
    /// clean close. Messages it did not read are handed back unread by
    /// [`take_accounting`](Self::take_accounting).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is taken only when it is returned.
    ///
    /// # Drop behavior
    ///
    /// Dropping it only releases the receive lock.
    ///
    /// ```no_run
    /// # async fn f(conn: nursery_net::WsConnection) -> Result<(), nursery_net::ConnectionLost> {
    /// let message = conn.recv().await?;
    /// println!("{}", message.to_text().unwrap_or("<binary>"));
    /// # Ok(()) }
    /// ```
    pub async fn recv(&self) -> Result<Message, ConnectionLost> {
        self.inner.link.recv().await
    }

    /// Registers `cleanup` to run once with the connection's close, on every exit path (normal
    /// exit, loss, cancellation), with the loss reason (`None` after a normal exit). Cleanups
    /// run newest first, alongside the close handshake, within the supervisor's close timeout:
    /// past it they are dropped with the close. A body registers what it must undo (an
    /// unsubscribe record, a metrics gauge) without wrapping the connection.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// # use nursery_net::tungstenite::protocol::Role;
    /// use nursery_net::{supervise, ConnectionLost, WsConfig, WsConnection};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (client, server) = tokio::io::duplex(1024);
    /// # drop(server);
    /// # let client = tokio_tungstenite::WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    /// let conn = WsConnection::from_stream(client, WsConfig::new());
    /// let cleaned = Arc::new(AtomicBool::new(false));
    /// let flag = cleaned.clone();
    /// let _ = supervise(conn, |conn| async move {
    ///     conn.on_close(move |reason| async move {
    ///         println!("cleanup after {reason:?}");
    ///         flag.store(true, Ordering::SeqCst);
    ///     });
    ///     conn.recv().await.map(drop) // the peer is gone: lost at once
    /// })
    /// .await;
    /// assert!(cleaned.load(Ordering::SeqCst));
    /// # }
    /// ```
    pub fn on_close<F, Fut>(&self, cleanup: F)
    where
        F: FnOnce(Option<LossReason>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner.link.cleanups.push(cleanup);
    }

    /// Takes what the connection could not deliver either way — unread, unsent and in-flight
    /// messages, with the counts that make them add up (see [`Accounting`]) — once its
    /// supervision has ended. `None` while the connection is in use, and after the first call.
    ///
    /// Keep a clone of the connection to call it after [`supervise`](crate::supervise)
    /// returns; the example on [`Accounting`] shows it.
    pub fn take_accounting(&self) -> Option<Accounting<Message>> {
        let link = &self.inner.link;
        if !link.is_down() {
            return None;
        }
        // Held by the driver while it runs, and by a pending `recv`.
        let mut outbound = self.inner.outbound_rx.try_lock().ok()?;
        let mut ledger = self.inner.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if ledger.taken {
            return None;
        }
        let (unread, received, read) = link.take_unread()?;
        ledger.taken = true;
        let mut accounting = Accounting::new(received, read, ledger.written);
        accounting.unread = unread;
        accounting.unsent.extend(ledger.replay.drain(..));
        while let Ok(out) = outbound.try_recv() {
            accounting.unsent.push(out.message);
        }
        accounting.unsent.append(&mut ledger.refused);
        accounting.in_flight = ledger.in_flight.drain(..).collect();
        Some(accounting)
    }
}

impl WsConnection {
    /// Moves this connection's unsent messages (see [`Accounting::unsent`]) to `next`, which
    /// writes them, in order, before anything its own `send` queues; returns how many. They
    /// leave this connection's accounting; if `next` is lost before writing them, they are
    /// unsent in its accounting. Nothing moves while this connection is in use (its driver
    /// runs, a `recv` waits, or its accounting was taken): 0.
    ///
    /// [`Reconnect::replay_unsent`](crate::Reconnect::replay_unsent) calls it between attempts.
    ///
    /// ```
    /// # use nursery_net::tungstenite::protocol::Role;
    /// # use nursery_net::{WsConfig, WsConnection};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (a, _b) = tokio::io::duplex(1024);
    /// # let (c, _d) = tokio::io::duplex(1024);
    /// # let a = tokio_tungstenite::WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    /// # let c = tokio_tungstenite::WebSocketStream::from_raw_socket(c, Role::Client, None).await;
    /// let old = WsConnection::from_stream(a, WsConfig::new());
    /// let next = WsConnection::from_stream(c, WsConfig::new());
    /// assert_eq!(old.replay_unsent_into(&next), 0); // still in use: nothing moves
    /// # }
    /// ```
    pub fn replay_unsent_into(&self, next: &WsConnection) -> usize {
        if !self.inner.link.is_down() || Arc::ptr_eq(&self.inner, &next.inner) {
            return 0;
        }
        let Ok(mut outbound) = self.inner.outbound_rx.try_lock() else {
            return 0;
        };
        let mut moved: Vec<Message> = {
            let mut ledger = self.inner.ledger.lock().unwrap_or_else(|e| e.into_inner());
            if ledger.taken {
                return 0;
            }
            ledger.replay.drain(..).collect()
        };
        while let Ok(out) = outbound.try_recv() {
            moved.push(out.message);
        }
        moved.append(
            &mut self
                .inner
                .ledger
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .refused,
        );
        let count = moved.len();
        if count > 0 {
            let mut ledger = next.inner.ledger.lock().unwrap_or_else(|e| e.into_inner());
            ledger.replay.extend(moved);
            next.inner
                .has_replay
                .store(true, std::sync::atomic::Ordering::Release);
        }
        count
    }
}

impl Connection for WsConnection {
    fn replay_unsent(&self, next: &Self) -> usize {
        self.replay_unsent_into(next)
    }

    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        crate::ws::driver::drive(Arc::clone(&self.inner))
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        crate::ws::close::close(Arc::clone(&self.inner))
    }

    fn loss_signal(&self) -> &LossSignal {
        &self.inner.link.signal
    }
}
