use tokio_tungstenite::tungstenite::error::{CapacityError, Error, ProtocolError as WsProtocol};

use crate::loss::reason::{LossReason, ProtocolError};

/// Turns a tungstenite error from a live connection into the reason it was lost.
pub(crate) fn loss_from_ws(error: Error) -> LossReason {
    match error {
        Error::ConnectionClosed | Error::AlreadyClosed => LossReason::eof(),
        Error::Protocol(WsProtocol::ResetWithoutClosingHandshake) => stream_ended(),
        Error::Io(e) => LossReason::from_io(&e),
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            LossReason::Protocol(ProtocolError::MessageTooLarge {
                size,
                max: max_size,
            })
        }
        Error::Utf8(_) => LossReason::Protocol(ProtocolError::InvalidUtf8),
        Error::Protocol(e) => LossReason::Protocol(ProtocolError::Violation(e.to_string())),
        e @ (Error::Capacity(_) | Error::AttackAttempt) => {
            LossReason::Protocol(ProtocolError::Violation(e.to_string()))
        }
        e => LossReason::Io {
            kind: std::io::ErrorKind::Other,
            message: e.to_string(),
        },
    }
}

/// The peer's stream ended without a close frame: an abort, not a clean close.
pub(crate) fn stream_ended() -> LossReason {
    LossReason::Reset {
        message: "the peer ended the connection without a close frame".into(),
    }
}
