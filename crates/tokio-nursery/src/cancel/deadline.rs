//! A node's deadline and the effective deadline seen from it: the earliest deadline up to the
//! nearest shield (invariant 7 of `tree.rs` for gates). Scopes and the deadline timer read and
//! move deadlines here; the cancel bit itself is `tree.rs`'s.

use tokio::time::Instant;

use crate::cancel::tree::{lock, Node, NodeKind};
use crate::sync::Arc;

impl Node {
    pub(crate) fn deadline(&self) -> Option<Instant> {
        lock(&self.inner).deadline
    }

    /// Stores a new deadline and wakes the owner to re-arm its timer (checked before each poll).
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        if self.is_finished() {
            return;
        }
        lock(&self.inner).deadline = deadline;
        self.owner.wake();
    }

    /// Moves the deadline to `deadline` if that is earlier: deadlines only tighten this way.
    pub(crate) fn tighten_deadline(&self, deadline: Instant) {
        let mut inner = lock(&self.inner);
        if !self.is_finished() && inner.deadline.is_none_or(|d| d > deadline) {
            inner.deadline = Some(deadline);
            drop(inner);
            self.owner.wake();
        }
    }

    /// Effective deadline: the earliest deadline up to and including the nearest shield; a
    /// cancelled node's deadline has already passed (`now`).
    pub(crate) fn effective_deadline(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        self.walk_deadlines(Some(now))
    }

    /// The earliest deadline from this node up to the nearest shield, ignoring cancellation: the
    /// bound a grace period may not outlive.
    pub(crate) fn deadline_bound(self: &Arc<Self>) -> Option<Instant> {
        self.walk_deadlines(None)
    }

    /// The earliest deadline from this node up to the nearest shield (a gate stops the walk once
    /// it has a deadline, invariant 7). With `cancelled_at`, a cancelled node on the way ends the
    /// walk with that instant (its deadline has passed).
    fn walk_deadlines(self: &Arc<Self>, cancelled_at: Option<Instant>) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut node = Arc::clone(self);
        loop {
            if let Some(now) = cancelled_at.filter(|_| node.is_cancelled()) {
                return Some(now);
            }
            let (deadline, stop, parent) = {
                let inner = lock(&node.inner);
                let stop = match node.kind() {
                    NodeKind::Gate => inner.deadline.is_some(),
                    _ => inner.shield,
                };
                (inner.deadline, stop, inner.parent.clone())
            };
            earliest = earliest.into_iter().chain(deadline).min();
            match parent {
                Some(p) if !stop => node = p,
                _ => return earliest,
            }
        }
    }
}
