use crate::loss::reason::LossReason;

/// The connection was lost while a body was using it: the body was force-exited.
///
/// Supervision turns it into the caller's error type with `From`, so the caller matches on its
/// own `AppError::ConnectionLost(..)` — distinct from every other error — and reads the
/// [`reason`](Self::reason).
///
/// # Examples
///
/// ```
/// use nursery_net::{ConnectionLost, LossReason};
///
/// #[derive(Debug, thiserror::Error)]
/// enum AppError {
///     #[error(transparent)]
///     ConnectionLost(#[from] ConnectionLost),
///     #[error("bad request")]
///     BadRequest,
/// }
///
/// let err = AppError::from(ConnectionLost::new(LossReason::eof()));
/// match err {
///     AppError::ConnectionLost(lost) => assert!(lost.reason.is_peer_closed()),
///     AppError::BadRequest => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection lost: {reason}")]
pub struct ConnectionLost {
    /// Why the connection was lost.
    pub reason: LossReason,
}

impl ConnectionLost {
    /// A `ConnectionLost` for `reason`.
    ///
    /// ```
    /// use nursery_net::{ConnectionLost, LossReason};
    /// let lost = ConnectionLost::new(LossReason::external("link down"));
    /// assert_eq!(lost.to_string(), "connection lost: link down");
    /// ```
    pub fn new(reason: LossReason) -> Self {
        ConnectionLost { reason }
    }

    /// Why the connection was lost.
    ///
    /// ```
    /// use nursery_net::{ConnectionLost, LossReason};
    /// assert!(ConnectionLost::new(LossReason::eof()).reason().is_peer_closed());
    /// ```
    pub fn reason(&self) -> &LossReason {
        &self.reason
    }
}

impl From<LossReason> for ConnectionLost {
    fn from(reason: LossReason) -> Self {
        ConnectionLost { reason }
    }
}
