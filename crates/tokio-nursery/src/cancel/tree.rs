//! The cancel tree: how a cancellation travels.
//!
//! `CancelScope`, nurseries and children decide *where* a cancellation starts; this file decides how
//! it reaches everything below. Every nursery (three nodes: nursery, body, children group) and
//! cleanup owns a `Node`. Scopes and children get theirs lazily: a scope whose body completes on
//! its first poll never needs one (`context.rs`), and a spawned or borrowing child lives in its
//! nursery's roster until something inside it, or its handle, needs a node (`roster.rs`).
//!
//! Invariants
//!
//!  1. `cancelled` (the cached "effectively cancelled" bit) equals
//!     `own_reason.is_some() || committed || (!shield && parent.cancelled)` whenever no update
//!     is in flight.
//!     Every update that flips a node's bit visits that node's children afterwards (`propagate`),
//!     and a visit recomputes the formula from the parent's *current* bit, so concurrent updates
//!     converge. Checking "am I cancelled?" is therefore one atomic load.
//!  2. A reason is written once (`SetOnce`): the first reason wins. A node's own cancellation is
//!     permanent; only shields can clear an inherited bit.
//!  3. Lock order: a node's lock may be taken while holding its parent's lock (attach), never the
//!     other way round, and never two siblings at once. Propagation holds one lock at a time.
//!  4. No user code runs under a node lock: wakers are taken under the lock (or from an
//!     `AtomicWaker`) and woken after it is released; reasons are rendered by callers beforehand.
//!  5. Flags before wakers: a canceller stores `cancelled` (and `live`) before it wakes; an owner
//!     registers its waker before it reads them. No wakeup is lost across threads.
//!  6. While attached, a child holds its parent strongly and the parent holds the child strongly;
//!     `detach` breaks both links when the owner ends, so finished scopes never form chains.
//!     `Drop` walks any remaining parent chain iteratively, so depth never grows the stack.
//!  7. A `Gate` node (grace periods) is attached shielded; effective-deadline lookups pass through
//!     it while it has no deadline of its own, and stop at it once draining set one (that deadline
//!     already includes every enclosing bound).
//!  8. `live` counts live structure inside the node's body (nested nurseries, running scopes,
//!     adopted orphans, futures whose cancellation handler may still run). Its 1 -> 0
//!     transition wakes the owner and releases the token the node keeps for its parent after a
//!     foreign drop (`stash_parent_token`); that release is a loop, not a recursion.
//!  9. Unwinding is committed on delivery (DESIGN §4: a shield set after unwinding began does
//!     not stop it). Whatever acts on a cancellation — drops a body or a child, parks, stops at
//!     a checkpoint — first calls `commit_unwinding` on the node it saw cancelled, which latches
//!     `committed` on every node from there up to the cancellation's origin (the first node
//!     cancelled in its own right). A latched node stays cancelled whatever its shield says, so
//!     no scope on the way can be un-cancelled around work that is already gone — not even by a
//!     shield set in the very poll that delivered the cancellation.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{OnceLock, PoisonError, Weak};
use std::task::Waker;

use slab::Slab;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cancel::reason::CancelReason;
use crate::sync::{
    arc_into_inner, Arc, AtomicBool, AtomicUsize, AtomicWaker, Mutex, MutexGuard, SetOnce,
};

/// The children of a children group that have no node of their own (a nursery's roster): the
/// group wakes them when it is cancelled, and rendering lists them. The node holds them weakly
/// (the roster holds the group strongly), and only as this trait, so the tree does not depend on
/// the folder that builds children on top of it.
pub(crate) trait GroupMembers: Send + Sync {
    /// Wakes every member without a node (the group was cancelled).
    fn wake_all(&self);
    /// The running members for rendering: name, node if made, spawn site.
    fn running(&self) -> Vec<RunningMember>;
    /// The public reason of a running member without a node (rendering).
    fn lazy_reason(&self) -> Option<CancelReason>;
}

/// A running member as rendering sees it: its name, its node if it has one, where it was spawned.
pub(crate) struct RunningMember {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) node: Option<Arc<Node>>,
    /// Where the member was spawned.
    pub(crate) location: Option<&'static std::panic::Location<'static>>,
}

/// What owns a node; used for absorbing decisions, reasons and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Scope,
    Nursery,
    Body,
    Children,
    Child,
    /// A deferred cleanup's shielded scope.
    Cleanup,
    /// The inner node of a grace scope: blocks cancellation like a shield until its own (hard)
    /// cancellation, but deadlines are looked up through it.
    Gate,
    /// A cancellation handler's leaf (`handler.rs`): fired when its bit flips on, or when a
    /// grace period above it starts draining.
    Handler,
}

/// What a `Handler` leaf runs when it is cancelled: implemented by the handler's cell, outside
/// this file, so the tree does not depend on it. Called with no lock held (invariant 4).
pub(crate) trait OnCancel: Send + Sync {
    fn fire(&self);
}

pub(crate) struct Node {
    kind: NodeKind,
    name: OnceLock<Arc<str>>,
    /// Effectively cancelled (invariant 1). Written under this node's lock, read anywhere.
    cancelled: AtomicBool,
    /// Set once the owner absorbed a cancellation (`cancelled_caught`).
    caught: AtomicBool,
    /// Set once by `detach`; a finished node ignores `cancel` and deadline changes.
    finished: AtomicBool,
    /// Live structure inside the body (invariant 7).
    live: AtomicUsize,
    /// The task that drives this node's owner.
    pub(super) owner: AtomicWaker,
    /// `cancelled()` futures waiting on this node.
    waiters: Notify,
    own_reason: SetOnce<Arc<CancelReason>>,
    inherited_reason: SetOnce<Arc<CancelReason>>,
    /// A tokio-util token handed out by `cancellation_token`, cancelled with this node.
    token: OnceLock<CancellationToken>,
    /// Grace scopes: the grace period and the gate node whose deadline the drain sets.
    pub(super) grace: OnceLock<(std::time::Duration, Arc<Node>)>,
    /// A token for the parent, held after the owner was dropped with live structure left.
    stashed: Mutex<Option<LiveToken>>,
    /// A nursery's children group: the members (children without nodes) it wakes.
    members: OnceLock<Weak<dyn GroupMembers>>,
    /// A `Handler` leaf: the callback it fires.
    pub(super) on_cancel: OnceLock<Arc<dyn OnCancel>>,
    /// Where in the user's code the scope or nursery was opened (`#[track_caller]`).
    location: OnceLock<&'static std::panic::Location<'static>>,
    pub(super) inner: Mutex<Inner>,
}

pub(super) struct Inner {
    pub(super) parent: Option<Arc<Node>>,
    key_in_parent: usize,
    children: Slab<Arc<Node>>,
    pub(super) shield: bool,
    /// Invariant 9: a cancellation was delivered inside this node; it stays cancelled.
    committed: bool,
    pub(super) deadline: Option<Instant>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under these locks (invariant 4), so poisoning means a library bug
    // already reported by its own panic; the data is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Node {
    pub(crate) fn new(kind: NodeKind, name: Option<Arc<str>>) -> Arc<Node> {
        let shield = kind == NodeKind::Gate;
        let name_cell = OnceLock::new();
        if let Some(name) = name {
            let _ = name_cell.set(name);
        }
        Arc::new(Node {
            kind,
            name: name_cell,
            cancelled: AtomicBool::new(false),
            caught: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            owner: AtomicWaker::new(),
            waiters: Notify::new(),
            own_reason: SetOnce::new(),
            inherited_reason: SetOnce::new(),
            token: OnceLock::new(),
            grace: OnceLock::new(),
            stashed: Mutex::new(None),
            members: OnceLock::new(),
            on_cancel: OnceLock::new(),
            location: OnceLock::new(),
            inner: Mutex::new(Inner {
                parent: None,
                key_in_parent: 0,
                children: Slab::new(),
                shield,
                committed: false,
                deadline: None,
            }),
        })
    }

    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.name.get()
    }

    /// Names a node that has none yet (scopes are named after they are built).
    pub(crate) fn set_name(&self, name: Arc<str>) {
        let _ = self.name.set(name);
    }

    pub(crate) fn kind(&self) -> NodeKind {
        self.kind
    }

    /// The attached children, in attach order (for rendering).
    pub(crate) fn children(&self) -> Vec<Arc<Node>> {
        lock(&self.inner)
            .children
            .iter()
            .map(|(_, c)| Arc::clone(c))
            .collect()
    }

    /// Records where the user's code opened this node's owner (for snapshots).
    pub(crate) fn set_location(&self, location: &'static std::panic::Location<'static>) {
        let _ = self.location.set(location);
    }

    pub(crate) fn location(&self) -> Option<&'static std::panic::Location<'static>> {
        self.location.get().copied()
    }

    /// Makes this (`Handler`) node run `handler` when it is cancelled.
    pub(crate) fn set_on_cancel(&self, handler: Arc<dyn OnCancel>) {
        let _ = self.on_cancel.set(handler);
    }

    /// Makes this (children group) node wake `members` when it is cancelled.
    pub(crate) fn set_members(&self, members: Weak<dyn GroupMembers>) {
        let _ = self.members.set(members);
    }

    /// The members of a children group node (a nursery's roster), while it lives.
    pub(crate) fn members(&self) -> Option<Arc<dyn GroupMembers>> {
        self.members.get().and_then(Weak::upgrade)
    }

    /// For a grace scope: its gate, whose deadline is set once the drain started.
    pub(crate) fn grace_gate(&self) -> Option<&Arc<Node>> {
        self.grace.get().map(|(_, gate)| gate)
    }

    /// Links this node under `parent` and computes its initial bit. Called once, by the owner's
    /// first poll (or by `spawn`), before anything can observe the node through the tree.
    pub(crate) fn attach(self: &Arc<Self>, parent: Option<&Arc<Node>>) {
        let Some(parent) = parent else {
            if self.own_reason.get().is_some() {
                self.cancelled.store(true, SeqCst);
            }
            return;
        };
        // Parent first, then child (invariant 3). Holding the parent's lock orders this insert
        // against a concurrent propagation: either it sees the child in its snapshot or we see
        // its bit.
        let mut p = lock(&parent.inner);
        let key = p.children.insert(Arc::clone(self));
        let mut inner = lock(&self.inner);
        inner.parent = Some(Arc::clone(parent));
        inner.key_in_parent = key;
        let inherited = !inner.shield && parent.cancelled.load(SeqCst);
        if inherited && self.own_reason.get().is_none() {
            if let Some(origin) = parent.effective_reason() {
                let _ = self.inherited_reason.set(origin);
            }
        }
        if inherited || self.own_reason.get().is_some() {
            self.cancelled.store(true, SeqCst);
        }
    }

    /// Moves the node under `new_parent` (`start`: from the caller's scope into the nursery) and
    /// recomputes its bit and its subtree's from the new ancestry. Live structure inside the
    /// node stays counted on the node itself; the caller transfers its own token.
    pub(crate) fn reparent(self: &Arc<Self>, new_parent: &Arc<Node>) {
        if self.is_finished() {
            return;
        }
        let (old, key) = {
            let mut inner = lock(&self.inner);
            (inner.parent.take(), inner.key_in_parent)
        };
        if let Some(old) = old {
            let removed = lock(&old.inner).children.try_remove(key);
            drop(removed);
        }
        {
            // Parent first, then child (invariant 3).
            let mut p = lock(&new_parent.inner);
            let key = p.children.insert(Arc::clone(self));
            let mut inner = lock(&self.inner);
            inner.parent = Some(Arc::clone(new_parent));
            inner.key_in_parent = key;
        }
        // A propagation racing with the move recomputes from whichever parent it reads under the
        // node's lock; this one recomputes from the new parent.
        self.propagate_from_parent();
    }

    /// `attach` for a node that already has children: links it under `parent` and recomputes the
    /// bits of its whole subtree.
    pub(crate) fn reattach(self: &Arc<Self>, parent: Option<&Arc<Node>>) {
        match parent {
            Some(parent) => self.reparent(parent),
            None => self.propagate(),
        }
    }

    /// Unlinks the node from its parent and marks it finished. Idempotent.
    pub(crate) fn detach(&self) {
        self.finished.store(true, SeqCst);
        let (parent, key, children) = {
            let mut inner = lock(&self.inner);
            let children = std::mem::take(&mut inner.children);
            (inner.parent.take(), inner.key_in_parent, children)
        };
        // Orphaned grandchildren (their owners were leaked) lose their link to us.
        for (_, child) in children {
            lock(&child.inner).parent = None;
        }
        if let Some(parent) = parent {
            let removed = lock(&parent.inner).children.try_remove(key);
            drop(removed);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(SeqCst)
    }

    /// Effectively cancelled: one atomic load (invariant 1).
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(SeqCst)
    }

    /// Whether this node's own cancellation was requested (explicitly, by deadline or failure).
    pub(crate) fn cancel_called(&self) -> bool {
        self.own_reason.get().is_some()
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn own_reason(&self) -> Option<&Arc<CancelReason>> {
        self.own_reason.get()
    }

    /// The reason this node is (or was) cancelled: its own, else the one it inherited.
    pub(crate) fn effective_reason(&self) -> Option<Arc<CancelReason>> {
        self.own_reason
            .get()
            .or_else(|| self.inherited_reason.get())
            .cloned()
    }

    /// The public view of the reason: inherited reasons are wrapped in `ParentCancelled`.
    pub(crate) fn public_reason(&self) -> Option<CancelReason> {
        if let Some(own) = self.own_reason.get() {
            return Some((**own).clone());
        }
        self.inherited_reason
            .get()
            .map(|origin| CancelReason::ParentCancelled(Arc::clone(origin)))
    }

    pub(crate) fn set_caught(&self) {
        self.caught.store(true, SeqCst);
    }

    pub(crate) fn caught(&self) -> bool {
        self.caught.load(SeqCst)
    }

    /// Requests this node's own cancellation. Returns `false` if it was already requested or the
    /// node has finished (a finished scope ignores `cancel`).
    pub(crate) fn cancel(self: &Arc<Self>, reason: CancelReason) -> bool {
        self.cancel_shared(Arc::new(reason))
    }

    /// `cancel` with a reason shared with another node (a grace gate reuses its scope's reason).
    pub(crate) fn cancel_shared(self: &Arc<Self>, reason: Arc<CancelReason>) -> bool {
        if self.is_finished() || self.own_reason.set(reason).is_err() {
            return false;
        }
        self.propagate();
        true
    }

    /// Invariant 9: called by whatever acts on this node's cancellation. Latches each node up
    /// to the origin; stops at one already latched (its walk goes on to the origin).
    /// The caller saw this node cancelled; a shield may have cleared it since, and loses.
    pub(crate) fn commit_unwinding(self: &Arc<Self>) {
        let mut node = Arc::clone(self);
        while !node.cancel_called() && !node.is_finished() {
            let parent = {
                let mut inner = lock(&node.inner);
                if inner.committed {
                    return;
                }
                inner.committed = true;
                inner.parent.clone()
            };
            // A shield that raced in before the latch loses: the bit comes back on below it.
            node.propagate();
            match parent {
                Some(parent) => node = parent,
                None => return,
            }
        }
    }

    pub(crate) fn shield(&self) -> bool {
        lock(&self.inner).shield
    }

    /// Sets the shield flag before the node is attached; no propagation needed yet.
    pub(crate) fn init_shield(&self, shield: bool) {
        lock(&self.inner).shield = shield;
    }

    pub(crate) fn set_shield(self: &Arc<Self>, shield: bool) {
        {
            let mut inner = lock(&self.inner);
            if inner.shield == shield {
                return;
            }
            inner.shield = shield;
        }
        self.propagate();
    }

    /// A `CancellationToken` cancelled when this node is first effectively cancelled (or at once
    /// if it already is). Shielding later does not un-cancel it: tokens are one-way.
    pub(crate) fn cancellation_token(&self) -> CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new).clone();
        // The bit is stored before `propagate` reads `token`: whichever of the two runs second
        // sees the other's write.
        if self.is_cancelled() {
            token.cancel();
        }
        token
    }

    /// Makes this node a grace scope draining through `gate` (set once, at the first poll).
    pub(crate) fn set_grace(&self, grace: std::time::Duration, gate: Arc<Node>) {
        let _ = self.grace.set((grace, gate));
        if self.is_cancelled() {
            self.start_drain();
        }
    }

    /// The parent link as it is now.
    pub(crate) fn parent(&self) -> Option<Arc<Node>> {
        lock(&self.inner).parent.clone()
    }

    /// Recomputes the bit of this node and, transitively, of every descendant whose bit changes
    /// (invariant 1). Iterative; holds one lock at a time; wakes outside locks.
    fn propagate_from_parent(self: &Arc<Self>) {
        self.propagate();
    }

    fn propagate(self: &Arc<Self>) {
        let mut stack = vec![Arc::clone(self)];
        while let Some(node) = stack.pop() {
            let flipped_on;
            {
                let inner = lock(&node.inner);
                let inherited = !inner.shield
                    && inner
                        .parent
                        .as_ref()
                        .is_some_and(|p| p.cancelled.load(SeqCst));
                let target = node.own_reason.get().is_some() || inner.committed || inherited;
                if node.cancelled.load(SeqCst) == target {
                    continue;
                }
                if target && node.own_reason.get().is_none() {
                    if let Some(origin) = inner.parent.as_ref().and_then(|p| p.effective_reason()) {
                        let _ = node.inherited_reason.set(origin);
                    }
                }
                node.cancelled.store(target, SeqCst);
                flipped_on = target;
                stack.extend(inner.children.iter().map(|(_, c)| Arc::clone(c)));
            }
            if flipped_on {
                node.start_drain();
                if let Some(token) = node.token.get() {
                    token.cancel();
                }
                node.owner.wake();
                node.waiters.notify_waiters();
                if let Some(members) = node.members() {
                    members.wake_all();
                }
                if let Some(handler) = node.on_cancel.get() {
                    handler.fire();
                }
            }
        }
    }

    pub(crate) fn register_owner(&self, waker: &Waker) {
        self.owner.register(waker);
    }

    pub(crate) fn waiters(&self) -> &Notify {
        &self.waiters
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(SeqCst)
    }

    /// Keeps `token` (held by the owner for its parent) until this node's live structure is gone.
    /// Used when the owner is dropped by foreign code while structure inside it still runs: the
    /// nearest enclosing scope then waits for that structure (it adopts the orphans).
    pub(crate) fn stash_parent_token(&self, token: LiveToken) {
        *lock(&self.stashed) = Some(token);
        // The last live token may have gone between the owner's check and the stash.
        if self.live() == 0 {
            let token = lock(&self.stashed).take();
            drop(token);
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("kind", &self.kind)
            .field("name", &self.name.get())
            .field("cancelled", &self.is_cancelled())
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Invariant 6: unlink the parent chain iteratively instead of letting each `Arc<Node>`
        // drop its parent recursively.
        let mut next = self.inner.get_mut().map_or(None, |i| i.parent.take());
        while let Some(parent) = next {
            next = match arc_into_inner(parent) {
                Some(mut node) => node.inner.get_mut().map_or(None, |i| i.parent.take()),
                None => None,
            };
        }
    }
}

/// One unit of live structure registered on a node (invariant 7). Dropping it releases it.
#[derive(Debug)]
pub(crate) struct LiveToken {
    node: Option<Arc<Node>>,
}

impl LiveToken {
    pub(crate) fn new(node: &Arc<Node>) -> LiveToken {
        node.live.fetch_add(1, SeqCst);
        LiveToken {
            node: Some(Arc::clone(node)),
        }
    }

    /// A token on `parent` if there is one (a root has nobody to keep waiting).
    pub(crate) fn on(parent: Option<&Arc<Node>>) -> Option<LiveToken> {
        parent.map(LiveToken::new)
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        let mut next = self.node.take();
        while let Some(node) = next {
            next = None;
            if node.live.fetch_sub(1, SeqCst) == 1 {
                node.owner.wake();
                // Release the stashed parent token in this loop rather than by recursion.
                let stashed = lock(&node.stashed).take();
                if let Some(mut token) = stashed {
                    next = token.node.take();
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
#[path = "tree_tests.rs"]
mod tests;
