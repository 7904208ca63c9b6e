//! The roster: one slot per spawned or borrowing child of a nursery, kept by the nursery's
//! children group, so that a child costs no node of its own until it needs one.
//!
//! A child needs a node (a place in the cancel tree) only when something must hang below it (a
//! scope or nursery inside it, a deadline lookup) or when it is cancelled on its own through its
//! `ChildHandle`. Until then, "is this child cancelled?" is "is the group cancelled?", and the
//! group's cancellation reaches it through the waker in its slot.
//!
//! Invariants
//!
//!  1. A slot is occupied from `enroll` until the child has left (`leave`) *and* no handle refers
//!     to it (`handles == 0`). Keys are never reused while a handle holds one.
//!  2. A slot's node, once made, is attached under the group and stays the child's node until the
//!     child leaves; `leave` detaches it and freezes what handles report (`Ended`).
//!  3. Wakeups (tree invariant 5): a child stores its waker in its slot (under the roster lock)
//!     *before* it reads the group's bit; the group's propagation stores the bit *before* it
//!     reads the wakers (`wake_all`, under the same lock). Waking leaves them in place: the
//!     child registers once, and the group can be un-cancelled (a shield) and cancelled again. A node made by a handle gets the slot's
//!     waker as its owner before it is cancelled, and a child that finds a node made for it
//!     registers the slot's waker on it before reading the node's bit; `singled` is raised before
//!     the node is made, so one of the two always sees the other.
//!  4. `singled` only grows: it counts nodes made from outside the child (by a handle), so a lazy
//!     child checks its slot under the lock only once some child was singled out.
//!
//! Lock order: the roster lock may be held while a node lock is taken (`make_node` attaches under
//! the group), never the other way round: the tree calls `wake_all` after releasing its locks.
//! The location table's lock (`crate::location`) is a leaf below both.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{PoisonError, Weak};
use std::task::Waker;

use self::slots::Slots;
use crate::cancel::reason::CancelReason;
use crate::cancel::tree::{GroupMembers, Node, NodeKind, RunningMember};
use crate::location::LocationId;
use crate::sync::{Arc, AtomicUsize, Mutex, MutexGuard};

mod slots;

pub(crate) struct Roster {
    group: Arc<Node>,
    slots: Mutex<Slots<Slot>>,
    singled: AtomicUsize,
}

/// One child. Kept to 32 bytes: a nursery of N children holds N of these (in `slots`' chunks),
/// and the common child (unnamed, no node, no handle left) needs nothing more.
struct Slot {
    waker: Option<Waker>,
    /// Name, node and final state, for the children that have any of them.
    extra: Option<Box<Extra>>,
    /// Handles referring to this slot.
    handles: u32,
    /// Where the child was spawned (in the 4 bytes beside `handles` that were padding).
    site: LocationId,
}

#[derive(Default)]
struct Extra {
    name: Option<Arc<str>>,
    node: Option<Arc<Node>>,
    /// Set when the child left while handles remained: what they report from then on.
    ended: Option<Ended>,
}

#[derive(Clone)]
struct Ended {
    cancelled: bool,
    reason: Option<CancelReason>,
}

impl Ended {
    /// What a child's own node says.
    fn of(node: &Node) -> Ended {
        Ended {
            cancelled: node.is_cancelled(),
            reason: node.public_reason(),
        }
    }
}

impl Slot {
    fn name(&self) -> Option<&Arc<str>> {
        self.extra.as_ref().and_then(|e| e.name.as_ref())
    }

    fn node(&self) -> Option<&Arc<Node>> {
        self.extra.as_ref().and_then(|e| e.node.as_ref())
    }

    fn ended(&self) -> Option<&Ended> {
        self.extra.as_ref().and_then(|e| e.ended.as_ref())
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster")
            .field("children", &self.slots().len())
            .finish_non_exhaustive()
    }
}

/// What a lazily polled child's context needs to make its node: the roster and the key.
#[derive(Clone)]
pub(crate) struct SlotRef {
    pub(crate) roster: Arc<Roster>,
    pub(crate) key: usize,
}

impl Roster {
    /// The roster of `group`; the group's propagation wakes the roster's children.
    pub(crate) fn new(group: Arc<Node>) -> Arc<Roster> {
        let roster = Arc::new(Roster {
            group,
            slots: Mutex::new(Slots::new()),
            singled: AtomicUsize::new(0),
        });
        let members: Weak<Roster> = Arc::downgrade(&roster);
        roster.group.set_members(members);
        roster
    }

    fn slots(&self) -> MutexGuard<'_, Slots<Slot>> {
        // No user code runs under this lock; wakers are woken after it is released.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new child, with one handle (the one `spawn` returns).
    pub(crate) fn enroll(&self, name: Option<Arc<str>>, site: LocationId) -> usize {
        self.slots().insert(Slot {
            waker: None,
            extra: name.map(|name| {
                Box::new(Extra {
                    name: Some(name),
                    ..Extra::default()
                })
            }),
            handles: 1,
            site,
        })
    }

    /// Stores the waker of a child without a node (invariant 3).
    pub(crate) fn register(&self, key: usize, waker: &Waker) {
        if let Some(slot) = self.slots().get_mut(key) {
            match &slot.waker {
                Some(old) if old.will_wake(waker) => {}
                _ => slot.waker = Some(waker.clone()),
            }
        }
    }

    /// Whether a child without a node of its own is cancelled: the group's bit, unless some
    /// child was singled out, in which case its slot may have a node by now (returned).
    pub(crate) fn lazy_cancelled(&self, key: usize) -> (bool, Option<Arc<Node>>) {
        if self.singled.load(SeqCst) > 0 {
            let node = {
                let slots = self.slots();
                slots.get(key).and_then(|slot| {
                    let node = slot.node()?.clone();
                    // The child waited through its slot: it now waits through the node, and its
                    // waker must be there before the node's bit is read (invariant 3).
                    if let Some(waker) = &slot.waker {
                        node.register_owner(waker);
                    }
                    Some(node)
                })
            };
            if let Some(node) = node {
                return (node.is_cancelled(), Some(node));
            }
        }
        (self.group.is_cancelled(), None)
    }

    /// The child's name (for failure reports).
    pub(crate) fn name(&self, key: usize) -> Option<Arc<str>> {
        self.slots().get(key).and_then(|slot| slot.name().cloned())
    }

    /// The child's node, made and attached under the group if it has none yet. `None` once the
    /// child has left.
    pub(crate) fn make_node(&self, key: usize) -> Option<Arc<Node>> {
        let mut slots = self.slots();
        let slot = slots.get_mut(key)?;
        if slot.ended().is_some() {
            return None;
        }
        if let Some(node) = slot.node() {
            return Some(Arc::clone(node));
        }
        let node = Node::new(NodeKind::Child, slot.name().cloned());
        if let Some(site) = slot.site.resolve() {
            node.set_location(site);
        }
        if let Some(waker) = &slot.waker {
            node.register_owner(waker);
        }
        node.attach(Some(&self.group));
        slot.extra().node = Some(Arc::clone(&node));
        Some(node)
    }

    /// `ChildHandle::cancel`: the child gets its node (if it has none) and that node is
    /// cancelled; the child sees it at its next poll, which this wakes.
    pub(crate) fn cancel(&self, key: usize, reason: CancelReason) {
        // Counted before the node is made: a child that stores its waker after `make_node`
        // looked for it then sees the count and finds the node (invariant 3).
        self.singled.fetch_add(1, SeqCst);
        let Some(node) = self.make_node(key) else {
            return;
        };
        node.cancel(reason);
    }

    /// The child left the nursery: freeze what handles report, detach its node.
    pub(crate) fn leave(&self, key: usize) {
        let node = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(key) else {
                return;
            };
            let node = slot.extra.as_mut().and_then(|e| e.node.take());
            if slot.handles == 0 {
                slots.remove(key);
            } else {
                let ended = node.as_deref().map_or_else(|| self.group_view(), Ended::of);
                slot.extra().ended = Some(ended);
                slot.waker = None;
            }
            node
        };
        if let Some(node) = node {
            node.detach();
        }
    }

    /// What a child without a node of its own sees: the group's state.
    fn group_view(&self) -> Ended {
        let cancelled = self.group.is_cancelled();
        Ended {
            cancelled,
            reason: cancelled
                .then(|| self.group.effective_reason())
                .flatten()
                .map(CancelReason::ParentCancelled),
        }
    }

    /// One more handle on `key`.
    pub(crate) fn retain(&self, key: usize) {
        if let Some(slot) = self.slots().get_mut(key) {
            slot.handles += 1;
        }
    }

    /// One handle fewer on `key`; frees the slot if the child has left and it was the last.
    pub(crate) fn release(&self, key: usize) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(key) {
            slot.handles -= 1;
            if slot.handles == 0 && slot.ended().is_some() {
                slots.remove(key);
            }
        }
    }

    /// (cancelled now, its public reason, finished) as a handle reports them.
    pub(crate) fn status(&self, key: usize) -> (bool, Option<CancelReason>, bool) {
        let node = {
            let slots = self.slots();
            let Some(slot) = slots.get(key) else {
                return (false, None, true);
            };
            if let Some(ended) = slot.ended() {
                return (ended.cancelled, ended.reason.clone(), true);
            }
            slot.node().cloned()
        };
        let view = node.as_deref().map_or_else(|| self.group_view(), Ended::of);
        (view.cancelled, view.reason, false)
    }
}

impl GroupMembers for Roster {
    /// Wakes every child without a node (the group was cancelled). The wakers stay in their
    /// slots: a child registers its slot once, and a shield set right after can un-cancel the
    /// group, so a later cancellation must still find them.
    fn wake_all(&self) {
        let wakers: Vec<Waker> = self
            .slots()
            .iter()
            .filter_map(|(_, slot)| slot.waker.clone())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// The running children for rendering: name, node if made, spawn site.
    fn running(&self) -> Vec<RunningMember> {
        self.slots()
            .iter()
            .filter(|(_, slot)| slot.ended().is_none())
            .map(|(_, slot)| RunningMember {
                name: slot.name().cloned(),
                node: slot.node().cloned(),
                location: slot.site.resolve(),
            })
            .collect()
    }

    /// The public reason of a running child without a node (rendering).
    fn lazy_reason(&self) -> Option<CancelReason> {
        self.group_view().reason
    }
}

impl SlotRef {
    /// Whether a child being polled without a node is cancelled.
    pub(crate) fn lazy_cancelled(&self) -> bool {
        self.roster.lazy_cancelled(self.key).0
    }
}
