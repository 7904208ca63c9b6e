use std::time::Duration;

use crate::tls::TlsConfig;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::loss::liveness::Heartbeat;

/// The default read buffer: 4 KiB, as tungstenite recommends for many connections (its own
/// default, 128 KiB, stays resident per connection and is zero-filled before every read).
const DEFAULT_READ_BUFFER_SIZE: usize = 4 * 1024;

/// Settings of a [`WsConnection`](crate::WsConnection).
///
/// By default: a ping after 20 s of silence from the peer, lost 10 s later without an answer;
/// no idle timeout; messages and frames up to 16 MiB (a larger one from the peer is a
/// [`ProtocolError::MessageTooLarge`](crate::ProtocolError::MessageTooLarge)); reads of up to
/// 4 KiB; a read-ahead of 64 messages and 1 MiB; 64 messages queued for the writer; an
/// in-flight window of 4 MiB; a connect (TCP and upgrade) and an `accept` handshake bounded
/// by 10 s each.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::{Heartbeat, WsConfig};
///
/// let config = WsConfig::new()
///     .heartbeat(Heartbeat::new(Duration::from_secs(5), Duration::from_secs(3)))
///     .idle_timeout(Duration::from_secs(120))
///     .max_message_size(1 << 20);
/// assert_eq!(config.get_max_message_size(), 1 << 20);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct WsConfig {
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) inbound_capacity: usize,
    pub(crate) inbound_bytes: usize,
    pub(crate) outbound_capacity: usize,
    pub(crate) in_flight_window: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    /// The roots `wss://` connects trust; `None`: the bundled Mozilla roots.
    pub(crate) tls: Option<TlsConfig>,
}

/// The default bound on a connect (TCP and upgrade) and on `accept`'s handshake: 10 s, long
/// enough for a slow network and a loaded server, short enough that a stalled one is noticed.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default read-ahead bound in bytes: 1 MiB.
pub(crate) const DEFAULT_INBOUND_BYTES: usize = 1 << 20;

/// The default in-flight window: 4 MiB, Linux's largest automatic TCP send buffer
/// (`net.ipv4.tcp_wmem`), the most unacknowledged data the local kernel holds by default.
pub(crate) const DEFAULT_IN_FLIGHT_WINDOW: usize = 4 << 20;

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            heartbeat: Some(Heartbeat::new(
                Duration::from_secs(20),
                Duration::from_secs(10),
            )),
            idle_timeout: None,
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            inbound_capacity: 64,
            inbound_bytes: DEFAULT_INBOUND_BYTES,
            outbound_capacity: 64,
            in_flight_window: DEFAULT_IN_FLIGHT_WINDOW,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls: None,
        }
    }
}

impl WsConfig {
    /// The defaults described on [`WsConfig`].
    ///
    /// ```
    /// assert!(nursery_net::WsConfig::new().get_heartbeat().is_some());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the ping/pong heartbeat.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nursery_net::{Heartbeat, WsConfig};
    /// let hb = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(1));
    /// assert_eq!(WsConfig::new().heartbeat(hb).get_heartbeat(), Some(hb));
    /// ```
    pub fn heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Turns the heartbeat off (half-open connections then go unnoticed until a write fails).
    ///
    /// ```
    /// assert_eq!(nursery_net::WsConfig::new().no_heartbeat().get_heartbeat(), None);
    /// ```
    pub fn no_heartbeat(mut self) -> Self {
        self.heartbeat = None;
        self
    }

    /// The heartbeat, if any.
    ///
    /// ```
    /// assert!(nursery_net::WsConfig::new().get_heartbeat().is_some());
    /// ```
    pub fn get_heartbeat(&self) -> Option<Heartbeat> {
        self.heartbeat
    }

    /// Loses the connection with [`LossReason::IdleTimeout`](crate::LossReason::IdleTimeout)
    /// when no text or binary message went either way for `idle` (pings and pongs do not
    /// count).
    ///
    /// ```
    /// use std::time::Duration;
    /// let _config = nursery_net::WsConfig::new().idle_timeout(Duration::from_secs(60));
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// The largest message accepted from the peer, in bytes (frames are limited to the same
    /// size unless [`max_frame_size`](Self::max_frame_size) is set lower).
    ///
    /// ```
    /// let config = nursery_net::WsConfig::new().max_message_size(1024);
    /// assert_eq!(config.get_max_message_size(), 1024);
    /// ```
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self.max_frame_size = self.max_frame_size.min(bytes);
        self
    }

    /// The largest frame accepted from the peer, in bytes.
    ///
    /// ```
    /// let _config = nursery_net::WsConfig::new().max_frame_size(64 * 1024);
    /// ```
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// The largest message accepted from the peer.
    ///
    /// ```
    /// assert_eq!(nursery_net::WsConfig::new().get_max_message_size(), 16 << 20);
    /// ```
    pub fn get_max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The size of the connection's read buffer, in bytes (default 4 KiB; at least 1): the
    /// most read from the socket in one call. A larger frame still arrives whole (the buffer
    /// grows to hold it), in several reads.
    ///
    /// Each connection keeps its buffer for its whole life, and tungstenite zero-fills the
    /// free part before every read: a large buffer costs memory and CPU on every idle
    /// connection (10 000 connections with tungstenite's default of 128 KiB hold 1.25 GiB).
    /// Raise it for connections that receive large volumes.
    ///
    /// ```
    /// let config = nursery_net::WsConfig::new().read_buffer_size(64 * 1024);
    /// assert_eq!(config.get_read_buffer_size(), 64 * 1024);
    /// ```
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(1);
        self
    }

    /// The size of the read buffer.
    ///
    /// ```
    /// assert_eq!(nursery_net::WsConfig::new().get_read_buffer_size(), 4 * 1024);
    /// ```
    pub fn get_read_buffer_size(&self) -> usize {
        self.read_buffer_size
    }

    /// The read-ahead bound in messages: how many received messages wait for
    /// [`recv`](crate::WsConnection::recv) (default 64; at least 1). Below the bound the
    /// connection keeps reading while the body is busy, so pings are answered and a close frame
    /// or a protocol error is seen when it arrives; at the bound reading stops (backpressure:
    /// the peer's writes then wait in the kernel) and the heartbeat is suspended until the body
    /// reads again.
    ///
    /// ```
    /// let _config = nursery_net::WsConfig::new().inbound_capacity(8);
    /// ```
    pub fn inbound_capacity(mut self, messages: usize) -> Self {
        self.inbound_capacity = messages.max(1);
        self
    }

    /// The read-ahead bound in bytes (default 1 MiB; at least 1): reading stops while the
    /// waiting messages hold this many bytes or more, so the read-ahead holds at most this
    /// much plus one message (itself at most [`max_message_size`](Self::max_message_size)),
    /// plus the read buffer.
    ///
    /// ```
    /// let config = nursery_net::WsConfig::new().inbound_bytes(256 * 1024);
    /// assert_eq!(config.get_inbound_bytes(), 256 * 1024);
    /// ```
    pub fn inbound_bytes(mut self, bytes: usize) -> Self {
        self.inbound_bytes = bytes.max(1);
        self
    }

    /// The read-ahead bound in bytes.
    ///
    /// ```
    /// assert_eq!(nursery_net::WsConfig::new().get_inbound_bytes(), 1 << 20);
    /// ```
    pub fn get_inbound_bytes(&self) -> usize {
        self.inbound_bytes
    }

    /// How many bytes of the most recently written messages the
    /// [`Accounting`](crate::Accounting)'s `in_flight` list keeps (default 4 MiB, Linux's
    /// largest automatic TCP send buffer). Written messages stay referenced (their payloads
    /// are shared, not copied) until newer ones push them out of the window. Raise it to the
    /// local send buffer plus the peer's receive buffer to also cover data the peer's kernel
    /// acknowledged but the peer never read; lower it to hold less memory per connection.
    /// The last written message is always kept, whatever its size.
    ///
    /// ```
    /// let config = nursery_net::WsConfig::new().in_flight_window(64 * 1024);
    /// assert_eq!(config.get_in_flight_window(), 64 * 1024);
    /// ```
    pub fn in_flight_window(mut self, bytes: usize) -> Self {
        self.in_flight_window = bytes;
        self
    }

    /// The in-flight window in bytes.
    ///
    /// ```
    /// assert_eq!(nursery_net::WsConfig::new().get_in_flight_window(), 4 << 20);
    /// ```
    pub fn get_in_flight_window(&self) -> usize {
        self.in_flight_window
    }

    /// How many messages [`send`](crate::WsConnection::send) may queue for the writer
    /// (default 64; at least 1).
    ///
    /// ```
    /// let _config = nursery_net::WsConfig::new().outbound_capacity(8);
    /// ```
    pub fn outbound_capacity(mut self, messages: usize) -> Self {
        self.outbound_capacity = messages.max(1);
        self
    }

    /// Bounds [`WsConnection::connect`](crate::WsConnection::connect): the TCP connect and the
    /// upgrade together (default 10 s). Past it the connect fails with
    /// [`ConnectError::Timeout`](crate::ConnectError::Timeout), naming the stage it was in;
    /// every [`Reconnect`](crate::Reconnect) attempt that connects with this config is bounded
    /// the same way. `Duration::MAX` means no bound.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nursery_net::WsConfig::new().connect_timeout(Duration::from_secs(3));
    /// assert_eq!(config.get_connect_timeout(), Duration::from_secs(3));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The TLS configuration of `wss://` connects: which roots a server certificate must chain
    /// to. Without it the bundled Mozilla roots are trusted; for a private CA (a test, an
    /// internal service) use [`TlsConfig::from_pem`]. The TLS handshake counts towards the
    /// connect timeout.
    ///
    /// ```
    /// let config = nursery_net::WsConfig::new().tls(nursery_net::TlsConfig::webpki_roots());
    /// # drop(config);
    /// ```
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS configuration `wss://` connects use (the bundled roots unless [`tls`] set one).
    ///
    /// [`tls`]: Self::tls
    pub(crate) fn tls_or_default(&self) -> TlsConfig {
        static DEFAULT: std::sync::OnceLock<TlsConfig> = std::sync::OnceLock::new();
        self.tls
            .clone()
            .unwrap_or_else(|| DEFAULT.get_or_init(TlsConfig::webpki_roots).clone())
    }

    /// The connect timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(nursery_net::WsConfig::new().get_connect_timeout(), Duration::from_secs(10));
    /// ```
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Bounds the server side of the opening handshake,
    /// [`WsConnection::accept`](crate::WsConnection::accept) (default 10 s): a client that
    /// opens a socket and sends nothing, or sends its request a byte at a time, gets
    /// [`ConnectError::Timeout`](crate::ConnectError::Timeout) and its socket closed.
    /// `Duration::MAX` means no bound.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nursery_net::WsConfig::new().handshake_timeout(Duration::from_secs(2));
    /// assert_eq!(config.get_handshake_timeout(), Duration::from_secs(2));
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The handshake timeout of `accept`.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(nursery_net::WsConfig::new().get_handshake_timeout(), Duration::from_secs(10));
    /// ```
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The tungstenite configuration these settings map to.
    pub(crate) fn websocket(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}
