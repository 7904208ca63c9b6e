use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::loss::liveness::Heartbeat;

/// Produces the bytes of one application-level ping.
pub(crate) type PingFn = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Settings of a [`TcpConnection`](crate::TcpConnection).
///
/// TCP has no ping of its own, so the heartbeat is an application-level hook: when the peer has
/// been silent for the heartbeat interval, the bytes returned by the hook are written (a
/// `PING\n` line, an empty frame of your protocol, …); any bytes from the peer within the
/// heartbeat timeout prove it alive. The peer's answer is delivered to the body like any other
/// data.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::{Heartbeat, TcpConfig};
///
/// let config = TcpConfig::new()
///     .heartbeat(Heartbeat::new(Duration::from_secs(10), Duration::from_secs(5)), || b"PING\n".to_vec())
///     .idle_timeout(Duration::from_secs(300));
/// assert!(config.get_heartbeat().is_some());
/// ```
#[derive(Clone)]
#[must_use]
pub struct TcpConfig {
    pub(crate) heartbeat: Option<(Heartbeat, PingFn)>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) read_buffer_size: usize,
    pub(crate) inbound_capacity: usize,
    pub(crate) inbound_bytes: usize,
    pub(crate) connect_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            heartbeat: None,
            idle_timeout: None,
            read_buffer_size: 8 * 1024,
            inbound_capacity: 64,
            inbound_bytes: 1 << 20,
            connect_timeout: crate::ws::config::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for TcpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConfig")
            .field("heartbeat", &self.get_heartbeat())
            .field("idle_timeout", &self.idle_timeout)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("inbound_capacity", &self.inbound_capacity)
            .field("inbound_bytes", &self.inbound_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl TcpConfig {
    /// No heartbeat, no idle timeout, 8 KiB reads, 64 buffered inbound chunks, a 10 s connect
    /// timeout.
    ///
    /// ```
    /// assert!(nursery_net::TcpConfig::new().get_heartbeat().is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `ping()` after `heartbeat.interval()` of silence from the peer; the connection is
    /// lost with [`LossReason::HeartbeatTimeout`](crate::LossReason::HeartbeatTimeout) if
    /// nothing comes within `heartbeat.timeout()` after that.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nursery_net::{Heartbeat, TcpConfig};
    /// let hb = Heartbeat::new(Duration::from_secs(1), Duration::from_secs(1));
    /// let _config = TcpConfig::new().heartbeat(hb, || vec![0]);
    /// ```
    pub fn heartbeat(
        mut self,
        heartbeat: Heartbeat,
        ping: impl Fn() -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        self.heartbeat = Some((heartbeat, Arc::new(ping)));
        self
    }

    /// The heartbeat settings, if any.
    ///
    /// ```
    /// assert_eq!(nursery_net::TcpConfig::new().get_heartbeat(), None);
    /// ```
    pub fn get_heartbeat(&self) -> Option<Heartbeat> {
        self.heartbeat.as_ref().map(|(hb, _)| *hb)
    }

    /// Loses the connection with [`LossReason::IdleTimeout`](crate::LossReason::IdleTimeout)
    /// when no bytes went either way (pings excepted) for `idle`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _config = nursery_net::TcpConfig::new().idle_timeout(Duration::from_secs(60));
    /// ```
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// The size of each read from the socket (default 8 KiB; at least 1).
    ///
    /// ```
    /// let _config = nursery_net::TcpConfig::new().read_buffer_size(64 * 1024);
    /// ```
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes.max(1);
        self
    }

    /// How many received chunks wait for the body's [`recv`](crate::TcpConnection::recv)
    /// (default 64; at least 1). When they are all waiting, reading stops (backpressure) and
    /// the heartbeat is suspended until the body reads again.
    ///
    /// ```
    /// let _config = nursery_net::TcpConfig::new().inbound_capacity(16);
    /// ```
    pub fn inbound_capacity(mut self, chunks: usize) -> Self {
        self.inbound_capacity = chunks.max(1);
        self
    }

    /// The read-ahead bound in bytes (default 1 MiB; at least 1): reading stops while the
    /// waiting chunks hold this many bytes or more (so at most this much plus one read buffer
    /// is held), and resumes when the body reads.
    ///
    /// ```
    /// let _config = nursery_net::TcpConfig::new().inbound_bytes(64 * 1024);
    /// ```
    pub fn inbound_bytes(mut self, bytes: usize) -> Self {
        self.inbound_bytes = bytes.max(1);
        self
    }

    /// Bounds [`TcpConnection::connect`](crate::TcpConnection::connect) (default 10 s): past
    /// it the connect fails with [`ConnectError::Timeout`](crate::ConnectError::Timeout) at the
    /// [`Tcp`](crate::ConnectStage::Tcp) stage. `Duration::MAX` means no bound.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = nursery_net::TcpConfig::new().connect_timeout(Duration::from_secs(2));
    /// assert_eq!(config.get_connect_timeout(), Duration::from_secs(2));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The connect timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(nursery_net::TcpConfig::new().get_connect_timeout(), Duration::from_secs(10));
    /// ```
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}
