//! The deadline timer of a scope's `Run` (`run.rs`) and of a grace nursery's drain
//! (`crate::nursery::future`): a deadline checked before the body is polled, and the drain's hard
//! end. The deadlines themselves live in the tree's nodes (`tree.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use tokio::time::{Instant, Sleep};

use crate::cancel::reason::CancelReason;
use crate::cancel::tree::Node;

/// A scope's deadline timer: made the first time a scope suspends with a deadline (boxed, so
/// that scopes without one stay small to move), and re-armed only when the deadline moves.
#[derive(Debug, Default)]
pub(crate) struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The instant `sleep` is set for.
    armed: Option<Instant>,
}

impl Timer {
    /// Drops the sleep: nothing is waited for any more.
    pub(crate) fn disarm(&mut self) {
        self.sleep = None;
    }

    /// Whether the timer is set for `at`.
    pub(crate) fn is_armed_for(&self, at: Option<Instant>) -> bool {
        self.armed == at
    }

    /// Whether `at` has passed: checked at once, else by pointing the timer at `at` (moving it
    /// only if the instant changed) and polling it, which registers the waker.
    fn expired(&mut self, at: Instant, cx: &mut Context<'_>) -> bool {
        if Instant::now() >= at {
            return true;
        }
        if self.armed != Some(at) {
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = Some(at);
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    /// Cancels `node` if its deadline has passed; otherwise arms the timer for it. The deadline
    /// is checked before the body is polled, so a deadline and a wake-up at the same instant
    /// resolve in favour of the deadline.
    pub(crate) fn check_deadline(&mut self, node: &Arc<Node>, cx: &mut Context<'_>) {
        let Some(deadline) = node.deadline() else {
            if self.armed.take().is_some() {
                self.sleep = None;
            }
            return;
        };
        if self.expired(deadline, cx) {
            node.cancel(CancelReason::Deadline);
        }
    }

    /// While draining, the timer serves the gate's deadline; at it the gate cancels with the
    /// scope's own reason, so everything inside sees where the cancellation came from.
    pub(crate) fn drain_deadline(
        &mut self,
        node: &Arc<Node>,
        gate: &Arc<Node>,
        cx: &mut Context<'_>,
    ) {
        let Some(hard_at) = gate.deadline() else {
            return;
        };
        if self.expired(hard_at, cx) {
            let reason = node
                .effective_reason()
                .unwrap_or_else(|| Arc::new(CancelReason::Deadline));
            gate.cancel_shared(reason);
        }
    }
}
