//! Completion policies a builder can give a nursery (DESIGN §7): the supervisor policy (a child's
//! failure is collected, not a reason to cancel) and the concurrency limit.
//!
//! The limit is a fair semaphore (`gate.rs`) with one permit per running child. A child takes its
//! place in line when it is spawned (inside `spawn`, synchronously), so children start in the
//! order they were spawned, whichever worker thread first polls their task. The permit lives
//! inside the child's future (`Limited`): every way a child ends drops that future, and with it
//! the permit. A child cancelled while it waits is dropped by its runner like any other leaf,
//! which takes it out of the line: it never starts. The gate's atomic protocol and its
//! invariants are in `gate.rs` (loom models in `loom_models.rs`).
//!
//! This file imports nothing of the crate but the gate: the spawn paths (`crate::child::handle`)
//! and the nursery's state (`core.rs`) both use it. The spawns that wait for or refuse a slot are
//! in `backpressure.rs`.

use std::future::{poll_fn, Future};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

use crate::nursery::gate::{Gate, Permit, Ticket};
use crate::sync::Arc;

/// What the builder chose; `Policy::default()` is a plain nursery.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// A child's or cleanup's failure does not cancel the nursery.
    pub(crate) supervisor: bool,
    /// At most this many children run at once.
    pub(crate) limit: Option<NonZeroUsize>,
}

/// The running-children bound of a limited nursery.
#[derive(Debug)]
pub(crate) struct Limit {
    gate: Arc<Gate>,
}

impl Limit {
    pub(crate) fn new(max: NonZeroUsize) -> Self {
        // A limit above the gate's maximum bounds nothing a process can run.
        Limit {
            gate: Gate::new(max.get()),
        }
    }

    /// Wraps a child: it holds a permit now if one is free, else its place in line is taken now.
    pub(crate) fn queue<F: Future>(&self, fut: F) -> Limited<F> {
        let slot = match self.gate.enter() {
            Ok(permit) => Slot::Holding { _permit: permit },
            Err(ticket) => Slot::Waiting(ticket),
        };
        Limited { slot, fut }
    }

    /// A permit if one is free and nobody waits for one (`try_spawn`).
    pub(crate) fn try_permit(&self) -> Option<Permit> {
        self.gate.try_take()
    }

    /// Waits in line for a permit (`spawn_when_ready`); dropped, it gives up its place.
    pub(crate) async fn permit(&self) -> Permit {
        match self.gate.enter() {
            Ok(permit) => permit,
            Err(ticket) => poll_fn(|cx| ticket.poll_permit(cx)).await,
        }
    }
}

/// What a limited child holds: its permit, or its place in line.
#[derive(Debug)]
enum Slot {
    /// Kept for its drop, which releases the permit.
    Holding {
        _permit: Permit,
    },
    Waiting(Ticket),
}

/// A child of a limited nursery: waits for its permit, then runs `fut` while holding it.
#[pin_project]
pub(crate) struct Limited<F> {
    slot: Slot,
    #[pin]
    fut: F,
}

impl<F> Limited<F> {
    pub(crate) fn holding(permit: Permit, fut: F) -> Self {
        Limited {
            slot: Slot::Holding { _permit: permit },
            fut,
        }
    }

    /// The child's own future, for a spawn that was refused (its place in line is given up).
    pub(crate) fn into_inner(self) -> F {
        self.fut
    }
}

impl<F: Future> Future for Limited<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Slot::Waiting(ticket) = this.slot {
            match ticket.poll_permit(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(permit) => *this.slot = Slot::Holding { _permit: permit },
            }
        }
        this.fut.poll(cx)
    }
}
