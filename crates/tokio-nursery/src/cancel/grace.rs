//! Grace periods seen from the tree: a grace scope's drain starts the moment the scope is
//! cancelled (its gate gets the deadline at which it cancels hard, invariant 7 of `tree.rs`), and
//! the cancellation handlers under the gate run then (DESIGN §7), not at the hard cancel.

use tokio::time::Instant;

use crate::cancel::tree::{lock, Node, NodeKind};
use crate::sync::Arc;

impl Node {
    /// Starts the drain of a grace scope the moment it is cancelled: the gate gets a deadline at
    /// the end of the grace period, or at the nearest enclosing deadline if that comes first
    /// (already passed, if that is what cancelled us: then the drain ends at once). Idempotent.
    pub(super) fn start_drain(&self) {
        let Some((grace, gate)) = self.grace.get() else {
            return;
        };
        if gate.deadline().is_some() || gate.is_finished() {
            return;
        }
        let own_end = Instant::now().checked_add(*grace);
        // A shield blocks enclosing deadlines too: only an unshielded drain is bounded by them.
        let bound = if self.shield() {
            None
        } else {
            self.parent().and_then(|p| p.deadline_bound())
        };
        let hard_at = own_end.into_iter().chain(bound).min();
        let began = {
            let mut inner = lock(&gate.inner);
            let began = inner.deadline.is_none();
            if began {
                inner.deadline = hard_at;
            }
            began
        };
        gate.owner.wake();
        if began {
            fire_handlers_below(gate);
        }
    }

    /// Whether a grace period above this node, with no shield in between, is draining: a
    /// cancellation handler armed now must run at once (DESIGN §7).
    pub(crate) fn drain_started_above(&self) -> bool {
        let mut next = self.parent();
        while let Some(node) = next {
            if node.kind() == NodeKind::Gate {
                return node.deadline().is_some();
            }
            if node.shield() {
                return false;
            }
            next = node.parent();
        }
        false
    }
}

/// Fires every handler leaf under `gate` that no shield separates from it. Runs with no lock
/// held: `children` hands out a snapshot.
fn fire_handlers_below(gate: &Arc<Node>) {
    let mut stack = gate.children();
    while let Some(node) = stack.pop() {
        match node.kind() {
            NodeKind::Handler => {
                if let Some(handler) = node.on_cancel.get() {
                    handler.fire();
                }
            }
            NodeKind::Gate => {}
            _ if node.shield() => {}
            _ => stack.extend(node.children()),
        }
    }
}

impl Node {
    /// A grace scope's grace period (snapshots).
    pub(crate) fn grace_period(&self) -> Option<std::time::Duration> {
        self.grace.get().map(|(grace, _)| *grace)
    }
}
