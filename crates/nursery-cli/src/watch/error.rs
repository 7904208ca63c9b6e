//! `nursery watch`'s errors. Which connect errors are permanent is the library's call
//! (`ConnectError::is_permanent`).

use nursery_net::{ConnectError, ConnectionLost};

/// Why a connection attempt or a connection ended.
///
/// The `Display` of each variant is the underlying error's own text, without a prefix: the
/// events that print it already say what failed (`attempt 2: connect failed: ...`).
#[derive(Debug, thiserror::Error)]
pub(super) enum WatchError {
    /// The connection was lost while watching.
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionLost),
    /// The connect attempt (TCP or the WebSocket upgrade) failed.
    #[error("{0}")]
    Connect(#[source] ConnectError),
    /// The handlers for Ctrl-C and SIGTERM could not be installed.
    #[error("cannot listen for Ctrl-C or SIGTERM")]
    Signals(#[source] std::io::Error),
}

impl WatchError {
    /// Whether retrying cannot help: see [`ConnectError::is_permanent`].
    pub(super) fn is_permanent(&self) -> bool {
        matches!(self, WatchError::Connect(error) if error.is_permanent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> WatchError {
        WatchError::Connect(ConnectError::Status {
            status,
            retry_after: None,
        })
    }

    #[test]
    fn client_errors_are_permanent_except_timeout_and_rate_limit() {
        assert!(refused(403).is_permanent());
        assert!(refused(404).is_permanent());
        assert!(!refused(408).is_permanent());
        assert!(!refused(429).is_permanent());
        assert!(!refused(503).is_permanent());
        assert_eq!(
            refused(403).to_string(),
            "the server refused the upgrade: HTTP 403 Forbidden"
        );
    }

    #[test]
    fn url_errors_are_permanent_io_errors_are_not() {
        let url = WatchError::Connect(ConnectError::UnsupportedScheme {
            scheme: "http".into(),
        });
        assert!(url.is_permanent());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let refused = ConnectError::Io {
            stage: nursery_net::ConnectStage::Tcp,
            source: refused,
        };
        assert!(!WatchError::Connect(refused).is_permanent());
    }
}
