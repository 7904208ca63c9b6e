use crate::connection::Connection;
use crate::supervise::reconnect::Reconnect;

impl<S> Reconnect<S> {
    /// Replays unsent messages: after a reconnect, the messages the lost connection never
    /// handed to its socket (its [`Accounting::unsent`](crate::Accounting::unsent)) are written
    /// on the new connection first, in order, before the body's own sends
    /// ([`Connection::replay_unsent`]). Off by default. In-flight messages are never replayed:
    /// the peer may have them, and a replay could duplicate them; at-least-once delivery over
    /// those is the application's choice (idempotent messages, its own acknowledgements).
    ///
    /// ```
    /// let _reconnect = nursery_net::Reconnect::new().replay_unsent(true);
    /// ```
    pub fn replay_unsent(mut self, on: bool) -> Self {
        self.replay_unsent = on;
        self
    }
}

/// Moves `previous`'s unsent messages to `next` when replay is on.
pub(crate) fn carry_over<C: Connection, S>(
    reconnect: &Reconnect<S>,
    previous: Option<C>,
    next: &C,
) {
    if let Some(previous) = previous.filter(|_| reconnect.replay_unsent) {
        let replayed = previous.replay_unsent(next);
        tracing::debug!(replayed, "unsent messages replayed on the new connection");
    }
}
