use std::fmt;
use std::io;
use std::time::Duration;

/// Why a connection was lost.
///
/// Carried by [`ConnectionLost`](crate::ConnectionLost). Match on it, or ask with the
/// predicates (`is_peer_closed()`, `is_heartbeat_timeout()`, …), which keep working when new
/// reasons are added.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::LossReason;
///
/// let reason = LossReason::HeartbeatTimeout { timeout: Duration::from_secs(3) };
/// assert!(reason.is_heartbeat_timeout());
/// assert_eq!(reason.to_string(), "heartbeat not answered within 3s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossReason {
    /// The peer closed the connection cleanly: a WebSocket close frame (its code and reason
    /// kept), or the end of a TCP stream (TCP has no other clean close). A WebSocket stream that
    /// ends without a close frame is an abort: [`Reset`](Self::Reset).
    PeerClosed {
        /// The close code of the peer's close frame, if it sent one.
        code: Option<u16>,
        /// The reason text of the peer's close frame, if it sent one and it was not empty.
        reason: Option<String>,
    },
    /// The connection was reset or aborted (`ECONNRESET`, `ECONNABORTED`, `EPIPE`, an
    /// unexpected end of stream, a WebSocket stream that ended without a close frame).
    Reset {
        /// The operating system's message.
        message: String,
    },
    /// Another I/O error on the connection.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The error's message.
        message: String,
    },
    /// No traffic came back from the peer within the heartbeat interval plus its timeout: the
    /// connection is half-open (the peer vanished without closing it).
    HeartbeatTimeout {
        /// The heartbeat timeout that passed without an answer.
        timeout: Duration,
    },
    /// No application message went either way for the configured idle timeout.
    IdleTimeout {
        /// The idle timeout.
        idle: Duration,
    },
    /// Something outside the connection reported it lost, through a
    /// [`LossSignal`](crate::LossSignal) (a driver's state callback, an operator, …).
    External(String),
    /// The peer broke the protocol (an invalid frame, a message over the size limit, invalid
    /// UTF-8 in a text message, …).
    Protocol(ProtocolError),
    /// The connection was closed on this side; it is used after its supervision ended.
    LocallyClosed,
}

impl LossReason {
    /// The reason for an I/O error: [`Reset`](Self::Reset) for resets, aborts, broken pipes
    /// and unexpected ends of stream, [`Io`](Self::Io) otherwise.
    ///
    /// ```
    /// use std::io;
    /// use nursery_net::LossReason;
    ///
    /// let reset = io::Error::from(io::ErrorKind::ConnectionReset);
    /// assert!(LossReason::from_io(&reset).is_reset());
    /// let other = io::Error::from(io::ErrorKind::PermissionDenied);
    /// assert!(LossReason::from_io(&other).is_io());
    /// ```
    pub fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => LossReason::Reset {
                message: error.to_string(),
            },
            kind => LossReason::Io {
                kind,
                message: error.to_string(),
            },
        }
    }

    /// The peer closed the connection without a close frame (a clean TCP EOF).
    ///
    /// ```
    /// let reason = nursery_net::LossReason::eof();
    /// assert!(reason.is_peer_closed());
    /// assert_eq!(reason.to_string(), "peer closed the connection");
    /// ```
    pub fn eof() -> Self {
        LossReason::PeerClosed {
            code: None,
            reason: None,
        }
    }

    /// An [`External`](Self::External) reason.
    ///
    /// ```
    /// let reason = nursery_net::LossReason::external("driver: link down");
    /// assert!(reason.is_external());
    /// assert_eq!(reason.to_string(), "driver: link down");
    /// ```
    pub fn external(message: impl Into<String>) -> Self {
        LossReason::External(message.into())
    }

    /// Whether the peer closed the connection (EOF or close frame).
    ///
    /// ```
    /// assert!(nursery_net::LossReason::eof().is_peer_closed());
    /// ```
    pub fn is_peer_closed(&self) -> bool {
        matches!(self, LossReason::PeerClosed { .. })
    }

    /// Whether the peer closed the connection cleanly (a close frame, a clean TCP EOF): the
    /// same as [`is_peer_closed`](Self::is_peer_closed), named for the contrast with
    /// [`is_abort`](Self::is_abort). A [`Supervisor::drain`](crate::Supervisor::drain) grace
    /// applies to these losses only.
    ///
    /// ```
    /// use nursery_net::LossReason;
    /// let reason = LossReason::PeerClosed { code: Some(1001), reason: Some("going away".into()) };
    /// assert!(reason.is_clean_close());
    /// assert!(!reason.is_abort());
    /// ```
    pub fn is_clean_close(&self) -> bool {
        self.is_peer_closed()
    }

    /// Whether the connection was aborted: reset, or ended without a close frame
    /// (the same as [`is_reset`](Self::is_reset)).
    ///
    /// ```
    /// let reason = nursery_net::LossReason::Reset { message: "reset".into() };
    /// assert!(reason.is_abort());
    /// ```
    pub fn is_abort(&self) -> bool {
        self.is_reset()
    }

    /// Whether the connection was reset or aborted.
    ///
    /// ```
    /// let reason = nursery_net::LossReason::Reset { message: "reset".into() };
    /// assert!(reason.is_reset());
    /// ```
    pub fn is_reset(&self) -> bool {
        matches!(self, LossReason::Reset { .. })
    }

    /// Whether another I/O error ended the connection.
    ///
    /// ```
    /// let reason = nursery_net::LossReason::from_io(&std::io::Error::other("disk on fire"));
    /// assert!(reason.is_io());
    /// ```
    pub fn is_io(&self) -> bool {
        matches!(self, LossReason::Io { .. })
    }

    /// Whether a heartbeat went unanswered (half-open connection).
    ///
    /// ```
    /// use std::time::Duration;
    /// let reason = nursery_net::LossReason::HeartbeatTimeout { timeout: Duration::from_secs(1) };
    /// assert!(reason.is_heartbeat_timeout());
    /// ```
    pub fn is_heartbeat_timeout(&self) -> bool {
        matches!(self, LossReason::HeartbeatTimeout { .. })
    }

    /// Whether the connection stayed idle for too long.
    ///
    /// ```
    /// use std::time::Duration;
    /// let reason = nursery_net::LossReason::IdleTimeout { idle: Duration::from_secs(30) };
    /// assert!(reason.is_idle_timeout());
    /// ```
    pub fn is_idle_timeout(&self) -> bool {
        matches!(self, LossReason::IdleTimeout { .. })
    }

    /// Whether a [`LossSignal`](crate::LossSignal) reported the loss.
    ///
    /// ```
    /// assert!(nursery_net::LossReason::external("x").is_external());
    /// ```
    pub fn is_external(&self) -> bool {
        matches!(self, LossReason::External(_))
    }

    /// Whether the peer broke the protocol.
    ///
    /// ```
    /// use nursery_net::{LossReason, ProtocolError};
    /// let reason = LossReason::Protocol(ProtocolError::InvalidUtf8);
    /// assert!(reason.is_protocol());
    /// ```
    pub fn is_protocol(&self) -> bool {
        matches!(self, LossReason::Protocol(_))
    }

    /// A short stable label for the kind of reason, for metrics and tables: `peer closed`,
    /// `reset`, `io`, `heartbeat timeout`, `idle timeout`, `external`, `protocol`,
    /// `locally closed`.
    ///
    /// ```
    /// assert_eq!(nursery_net::LossReason::eof().label(), "peer closed");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            LossReason::PeerClosed { .. } => "peer closed",
            LossReason::Reset { .. } => "reset",
            LossReason::Io { .. } => "io",
            LossReason::HeartbeatTimeout { .. } => "heartbeat timeout",
            LossReason::IdleTimeout { .. } => "idle timeout",
            LossReason::External(_) => "external",
            LossReason::Protocol(_) => "protocol",
            LossReason::LocallyClosed => "locally closed",
        }
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossReason::PeerClosed { code: None, .. } => f.write_str("peer closed the connection"),
            LossReason::PeerClosed {
                code: Some(code),
                reason,
            } => {
                write!(f, "peer closed the connection (code {code}")?;
                if let Some(reason) = reason {
                    write!(f, ": {reason}")?;
                }
                f.write_str(")")
            }
            LossReason::Reset { message } => write!(f, "connection reset: {message}"),
            LossReason::Io { message, .. } => write!(f, "I/O error: {message}"),
            LossReason::HeartbeatTimeout { timeout } => {
                write!(f, "heartbeat not answered within {timeout:?}")
            }
            LossReason::IdleTimeout { idle } => write!(f, "idle for {idle:?}"),
            LossReason::External(message) => f.write_str(message),
            LossReason::Protocol(error) => write!(f, "protocol error: {error}"),
            LossReason::LocallyClosed => f.write_str("the connection was closed on this side"),
        }
    }
}

/// How a peer broke the protocol.
///
/// # Examples
///
/// ```
/// use nursery_net::ProtocolError;
///
/// let error = ProtocolError::MessageTooLarge { size: 2048, max: 1024 };
/// assert_eq!(error.to_string(), "message of 2048 bytes exceeds the limit of 1024 bytes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A message or frame larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The size announced or received.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A text message that is not valid UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// Any other violation (invalid frame, masking, opcode, fragmentation, …).
    #[error("{0}")]
    Violation(String),
}
