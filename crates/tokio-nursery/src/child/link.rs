//! What a `ChildHandle` and a `Join` refer to: a counted reference to the child's roster slot,
//! or, for a child a closed nursery refused, nothing but its name. Both `handle.rs` and
//! `join.rs` read a child's state through it.

use std::sync::Arc;

use crate::cancel::reason::CancelReason;
use crate::child::roster::SlotRef;

/// What a handle refers to: a roster slot (spawned and borrowing children), or nothing (a child
/// refused by a closed nursery: finished, never cancelled).
#[derive(Clone)]
pub(crate) enum HandleLink {
    Slot(SlotHandle),
    Rejected(Option<Arc<str>>),
}

/// A counted reference to a roster slot (the slot stays while handles refer to it).
pub(crate) struct SlotHandle {
    pub(super) slot: SlotRef,
    pub(super) name: Option<Arc<str>>,
}

impl Clone for SlotHandle {
    fn clone(&self) -> Self {
        self.slot.roster.retain(self.slot.key);
        SlotHandle {
            slot: self.slot.clone(),
            name: self.name.clone(),
        }
    }
}

impl Drop for SlotHandle {
    fn drop(&mut self) {
        self.slot.roster.release(self.slot.key);
    }
}

impl HandleLink {
    /// (cancelled, public reason, finished).
    pub(crate) fn status(&self) -> (bool, Option<CancelReason>, bool) {
        match self {
            HandleLink::Slot(h) => h.slot.roster.status(h.slot.key),
            HandleLink::Rejected(_) => (false, None, true),
        }
    }

    pub(super) fn name(&self) -> Option<&Arc<str>> {
        match self {
            HandleLink::Slot(h) => h.name.as_ref(),
            HandleLink::Rejected(name) => name.as_ref(),
        }
    }
}
