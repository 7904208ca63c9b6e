//! The kinds of fault the demo injects: named here, below the statistics that count them and
//! the injector that causes them.

/// The faults the demo injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FaultKind {
    /// The server sends a close frame and hangs up.
    ServerClose,
    /// The server resets the TCP connection (RST).
    Reset,
    /// The server stops reading: no pong, no echo; the socket stays open (half-open).
    HalfOpen,
    /// A driver callback on a foreign OS thread reports the connection lost while the server
    /// has stopped reading: the close handshake is never answered (slow close).
    ExternalSlowClose,
}

impl FaultKind {
    /// Every kind, in the order the injector draws from.
    pub(super) const ALL: [FaultKind; 4] = [
        FaultKind::ServerClose,
        FaultKind::Reset,
        FaultKind::HalfOpen,
        FaultKind::ExternalSlowClose,
    ];

    /// The kind's name in the report's table.
    pub(super) fn label(self) -> &'static str {
        match self {
            FaultKind::ServerClose => "server closes",
            FaultKind::Reset => "server resets (RST)",
            FaultKind::HalfOpen => "half-open (no pongs)",
            FaultKind::ExternalSlowClose => "external trigger + slow close",
        }
    }
}
