//! The fields of a `Run` that only grace scopes, token scopes, parked scopes and scopes traced
//! by a subscriber use, boxed apart so that a plain scope stays small to build, move and drop.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::cancel::tree::Node;

#[derive(Default)]
pub(super) struct Cold {
    pub(super) grace: Option<Duration>,
    /// Grace scopes only: the node the body runs under, shielded until the drain ends.
    pub(super) gate: Option<Arc<Node>>,
    /// `with_cancellation_token`: the token, then the wait for it once running.
    pub(super) token: Option<CancellationToken>,
    pub(super) token_wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Kept while parked, to detect being polled after the absorbing scope ended.
    pub(super) parked_under: Option<Arc<Node>>,
    /// The scope's span, once it suspended, if a subscriber wants it.
    pub(super) span: Option<tracing::Span>,
}

impl Cold {
    /// The box for a scope built with a grace period or a token.
    #[cold]
    pub(super) fn boxed(
        grace: Option<Duration>,
        token: Option<CancellationToken>,
    ) -> Option<Box<Cold>> {
        Some(Box::new(Cold {
            grace,
            token,
            ..Cold::default()
        }))
    }
}

/// A grace scope's gate, if this is one.
pub(super) fn gate_of(cold: &Option<Box<Cold>>) -> Option<&Arc<Node>> {
    cold.as_ref().and_then(|cold| cold.gate.as_ref())
}

/// Keeps the node a scope parks under, to detect being polled after it ended.
pub(super) fn park(cold: &mut Option<Box<Cold>>, parked_under: Option<Arc<Node>>) {
    cold.get_or_insert_with(Box::default).parked_under = parked_under;
}
