//! `nursery watch`'s errors, and which connect errors are permanent (retrying cannot help).

use nursery_net::tungstenite::{self, http::StatusCode};
use nursery_net::ConnectionLost;

/// Why a connection attempt or a connection ended.
///
/// The `Display` of each variant is the underlying error's own text, without a prefix: the
/// events that print it already say what failed (`attempt 2: connect failed: ...`).
#[derive(Debug, thiserror::Error)]
pub(super) enum WatchError {
    /// The connection was lost while watching.
    #[error(transparent)]
    ConnectionLost(#[from] ConnectionLost),
    /// The connect attempt (TCP, TLS or the WebSocket upgrade) failed.
    #[error("{}", describe(.0))]
    Connect(#[source] tungstenite::Error),
    /// The handlers for Ctrl-C and SIGTERM could not be installed.
    #[error("cannot listen for Ctrl-C or SIGTERM")]
    Signals(#[source] std::io::Error),
}

impl WatchError {
    /// Whether retrying cannot help: a URL the library cannot use, a TLS error (certificate,
    /// hostname, or no TLS support), or an upgrade refused with a 4xx status other than 408
    /// (timeout) and 429 (too many requests). Everything else (refused, reset, 5xx, I/O) is
    /// worth another attempt.
    pub(super) fn is_permanent(&self) -> bool {
        let WatchError::Connect(error) = self else {
            return false;
        };
        match error {
            tungstenite::Error::Url(_)
            | tungstenite::Error::Tls(_)
            | tungstenite::Error::HttpFormat(_) => true,
            tungstenite::Error::Http(response) => {
                let status = response.status();
                status.is_client_error()
                    && status != StatusCode::REQUEST_TIMEOUT
                    && status != StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

/// tungstenite's text, except for an HTTP refusal, whose text (`HTTP error: 403 Forbidden`) is
/// completed with what the server was asked.
fn describe(error: &tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => {
            format!("the server refused the upgrade: HTTP {}", response.status())
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nursery_net::tungstenite::error::UrlError;
    use nursery_net::tungstenite::http::Response;

    fn refused(status: u16) -> WatchError {
        let response = Response::builder().status(status).body(None).unwrap();
        WatchError::Connect(tungstenite::Error::Http(Box::new(response)))
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
        let url = WatchError::Connect(tungstenite::Error::Url(UrlError::UnsupportedUrlScheme));
        assert!(url.is_permanent());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!WatchError::Connect(tungstenite::Error::Io(refused)).is_permanent());
    }
}
