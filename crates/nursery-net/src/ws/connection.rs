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

use crate::connection::Connection;
use crate::error::ConnectionLost;
use crate::loss::link::Link;
use crate::loss::reason::LossReason;
use crate::loss::signal::LossSignal;
use crate::ws::config::WsConfig;

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

pub(crate) struct WsInner {
    pub(crate) link: Link<Message>,
    pub(crate) stream: Mutex<Option<Box<dyn WsIo>>>,
    /// Boxed, as the inbound queue of [`Link`] is: the channel's first block is allocated up
    /// front.
    pub(crate) outbound_tx: mpsc::Sender<Box<Outgoing>>,
    pub(crate) outbound_rx: Mutex<mpsc::Receiver<Box<Outgoing>>>,
    pub(crate) config: WsConfig,
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
    /// Connects to a `ws://` URL (or a request built with tungstenite's `IntoClientRequest`,
    /// to add headers) and performs the opening handshake. Nagle's algorithm is off.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = nursery_net::WsConnection::connect("ws://127.0.0.1:9000", Default::default()).await?;
    /// # drop(conn); Ok(()) }
    /// ```
    pub async fn connect(
        request: impl IntoClientRequest + Unpin,
        config: WsConfig,
    ) -> Result<Self, WsError> {
        let websocket = config.websocket();
        let (stream, _response) =
            tokio_tungstenite::connect_async_with_config(request, Some(websocket), true).await?;
        Ok(Self::from_stream(stream, config))
    }

    /// Performs the server side of the opening handshake on an accepted socket.
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
    pub async fn accept(socket: TcpStream, config: WsConfig) -> Result<Self, WsError> {
        socket.set_nodelay(true).map_err(WsError::Io)?;
        let websocket = config.websocket();
        let stream = tokio_tungstenite::accept_async_with_config(socket, Some(websocket)).await?;
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
                link: Link::new(config.inbound_capacity),
                stream: Mutex::new(Some(Box::new(stream))),
                outbound_tx,
                outbound_rx: Mutex::new(outbound_rx),
                config,
            }),
        }
    }

    /// Sends a message and waits until it is written to the socket. Fails with
    /// [`ConnectionLost`] if the connection is lost or closed first.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once queued, a message is written even if this future is dropped.
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
        link.check()?;
        let (done, written) = oneshot::channel();
        let outgoing = Box::new(Outgoing {
            message: message.into(),
            done,
        });
        tokio::select! {
            queued = self.inner.outbound_tx.send(outgoing) => {
                if queued.is_err() {
                    return Err(link.lost());
                }
            }
            _ = link.signal.fired() => return Err(link.lost()),
        }
        tokio::select! {
            biased;
            written = written => written.unwrap_or_else(|_| Err(link.lost())),
            _ = link.signal.fired() => Err(link.lost()),
        }
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
    /// handled by the connection). Messages received before a loss are returned first; then
    /// the [`ConnectionLost`].
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
}

impl Connection for WsConnection {
    fn watch(&self) -> impl Future<Output = LossReason> + Send + 'static {
        crate::ws::driver::drive(Arc::clone(&self.inner))
    }

    fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        crate::ws::driver::close(Arc::clone(&self.inner))
    }

    fn loss_signal(&self) -> &LossSignal {
        &self.inner.link.signal
    }
}
