use std::fmt;
use std::io;
use std::time::Duration;

use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::Error as WsError;

/// The stage of opening a connection that failed or timed out.
///
/// # Examples
///
/// ```
/// use nursery_net::ConnectStage;
/// assert_eq!(ConnectStage::Tcp.to_string(), "TCP connect");
/// assert_eq!(ConnectStage::Upgrade.to_string(), "WebSocket upgrade");
/// assert_eq!(ConnectStage::Tls.to_string(), "TLS handshake");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectStage {
    /// Resolving the host and opening the TCP connection.
    Tcp,
    /// The WebSocket opening handshake (the HTTP upgrade), on either side.
    Upgrade,
    /// The TLS handshake (`wss://`, or `accept_tls`), on either side.
    Tls,
}

impl fmt::Display for ConnectStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectStage::Tcp => "TCP connect",
            ConnectStage::Upgrade => "WebSocket upgrade",
            ConnectStage::Tls => "TLS handshake",
        })
    }
}

/// Why [`WsConnection::connect`](crate::WsConnection::connect),
/// [`TcpConnection::connect`](crate::TcpConnection::connect) or
/// [`WsConnection::accept`](crate::WsConnection::accept) failed.
///
/// The source errors are kept (`std::error::Error::source` gives the `io::Error` or
/// tungstenite's error itself). [`is_permanent`](Self::is_permanent) says whether
/// retrying the same request can help; [`Reconnect`](crate::Reconnect) gives up at once on a
/// permanent error. [`retry_after`](Self::retry_after) is how long the server asked to wait.
///
/// | variant | permanent |
/// |---|---|
/// | [`InvalidUrl`](Self::InvalidUrl), [`UnsupportedScheme`](Self::UnsupportedScheme) | yes |
/// | [`Status`](Self::Status) 408, 429, 5xx | no |
/// | [`Status`](Self::Status) any other (4xx; 3xx and 2xx: redirects are not followed) | yes |
/// | [`Timeout`](Self::Timeout), [`Io`](Self::Io) (refused, reset, unreachable) | no |
/// | [`Handshake`](Self::Handshake) (an answer that is not a valid upgrade) | no |
/// | [`Tls`](Self::Tls): a certificate or host name rejected, no common protocol | yes |
/// | [`Tls`](Self::Tls): the handshake broke (closed or reset midway) | no |
///
/// A handshake protocol error is retried because a proxy or a restarting server can answer
/// that way for a while; the backoff bounds the cost. Use
/// [`Reconnect::retry_if`](crate::Reconnect::retry_if) to decide otherwise.
///
/// `accept` returns the same type: `Timeout`, `Io` and `Handshake` at the
/// [`Upgrade`](ConnectStage::Upgrade) stage; never `Status` or the URL variants.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::{ConnectError, ConnectStage};
///
/// let busy = ConnectError::Status { status: 503, retry_after: Some(Duration::from_secs(2)) };
/// assert!(!busy.is_permanent());
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(
///     busy.to_string(),
///     "the server refused the upgrade: HTTP 503 Service Unavailable (retry after 2s)"
/// );
///
/// let forbidden = ConnectError::Status { status: 403, retry_after: None };
/// assert!(forbidden.is_permanent());
///
/// let slow = ConnectError::Timeout { after: Duration::from_secs(10), stage: ConnectStage::Upgrade };
/// assert!(slow.is_timeout());
/// assert_eq!(slow.to_string(), "WebSocket upgrade timed out after 10s");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL or request cannot be used (no host, a malformed URL or header): permanent.
    #[error("invalid URL: {reason}")]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
        /// tungstenite's error, when it found the problem.
        #[source]
        source: Option<WsError>,
    },
    /// The URL's scheme is not one this build can connect to (`ws` and `wss`): permanent.
    #[error("URL scheme `{scheme}` is not supported (use ws:// or wss://)")]
    UnsupportedScheme {
        /// The scheme of the URL (empty if it has none).
        scheme: String,
    },
    /// The stage did not finish within the connect timeout
    /// ([`WsConfig::connect_timeout`](crate::WsConfig::connect_timeout),
    /// [`TcpConfig::connect_timeout`](crate::TcpConfig::connect_timeout)) or, for `accept`, the
    /// handshake timeout ([`WsConfig::handshake_timeout`](crate::WsConfig::handshake_timeout)):
    /// transient.
    #[error("{stage} timed out after {after:?}")]
    Timeout {
        /// The timeout that passed (the whole connect's, not the stage's share of it).
        after: Duration,
        /// The stage under way when it passed.
        stage: ConnectStage,
    },
    /// An I/O error (refused, reset, unreachable, the peer hung up during the handshake):
    /// transient.
    #[error("{stage} failed: {source}")]
    Io {
        /// The stage that failed.
        stage: ConnectStage,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The server answered the upgrade with an HTTP status other than 101: permanent unless
    /// it is 408, 429 or a 5xx.
    #[error("the server refused the upgrade: HTTP {}{}", describe_status(*.status), describe_wait(*.retry_after))]
    Status {
        /// The status code.
        status: u16,
        /// The response's `Retry-After` (seconds, or an HTTP-date turned into the time left
        /// until it when the response arrived), if it had a valid one.
        retry_after: Option<Duration>,
    },
    /// The opening handshake broke the protocol (an invalid answer to the upgrade, a
    /// malformed request on `accept`): transient.
    #[error("WebSocket handshake failed: {source}")]
    Handshake {
        /// tungstenite's error.
        #[source]
        source: WsError,
    },
    /// The TLS handshake failed: permanent for a rejected certificate or host name (see
    /// [`TlsFailure::is_permanent`](crate::TlsFailure::is_permanent)).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsFailure),
}

fn describe_status(status: u16) -> String {
    match StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

fn describe_wait(wait: Option<Duration>) -> String {
    wait.map(|d| format!(" (retry after {d:?})"))
        .unwrap_or_default()
}

impl ConnectError {
    /// Whether retrying the same request cannot help (see the table on [`ConnectError`]).
    ///
    /// ```
    /// let e = nursery_net::ConnectError::UnsupportedScheme { scheme: "http".into() };
    /// assert!(e.is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::InvalidUrl { .. } | ConnectError::UnsupportedScheme { .. } => true,
            ConnectError::Status { status, .. } => !matches!(status, 408 | 429 | 500..=599),
            ConnectError::Tls(failure) => failure.is_permanent(),
            ConnectError::Timeout { .. }
            | ConnectError::Io { .. }
            | ConnectError::Handshake { .. } => false,
        }
    }

    /// How long the server asked to wait before the next attempt (`Retry-After` on a refused
    /// upgrade), if it did.
    ///
    /// ```
    /// let e = nursery_net::ConnectError::Status { status: 429, retry_after: None };
    /// assert_eq!(e.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether a timeout ended the attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nursery_net::{ConnectError, ConnectStage};
    /// let e = ConnectError::Timeout { after: Duration::from_secs(1), stage: ConnectStage::Tcp };
    /// assert!(e.is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, ConnectError::Timeout { .. })
    }

    /// The HTTP status the server answered the upgrade with, if that is what failed.
    ///
    /// ```
    /// let e = nursery_net::ConnectError::Status { status: 404, retry_after: None };
    /// assert_eq!(e.status(), Some(404));
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stage that failed, for the variants that have one.
    ///
    /// ```
    /// use std::io;
    /// use nursery_net::{ConnectError, ConnectStage};
    /// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    /// let e = ConnectError::Io { stage: ConnectStage::Tcp, source: refused };
    /// assert_eq!(e.stage(), Some(ConnectStage::Tcp));
    /// ```
    pub fn stage(&self) -> Option<ConnectStage> {
        match self {
            ConnectError::Timeout { stage, .. } | ConnectError::Io { stage, .. } => Some(*stage),
            ConnectError::Handshake { .. } | ConnectError::Status { .. } => {
                Some(ConnectStage::Upgrade)
            }
            ConnectError::Tls(_) => Some(ConnectStage::Tls),
            ConnectError::InvalidUrl { .. } | ConnectError::UnsupportedScheme { .. } => None,
        }
    }

    pub(crate) fn io(stage: ConnectStage, error: io::Error) -> Self {
        ConnectError::Io {
            stage,
            source: error,
        }
    }
}
