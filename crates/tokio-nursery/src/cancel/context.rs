//! The node the current poll runs under.
//!
//! A runner (scope, nursery body, child task, cleanup) pushes an entry on a thread-local stack
//! while it polls its body and pops it afterwards, even on panic. Polls nest synchronously, so
//! the top of the stack always names the innermost structure being polled on this thread.
//!
//! Entries may have no node yet. A scope polled for the first time may run its body *lazily*
//! (`Lazy`: the recipe for its node), and a spawned or borrowing child may have only its roster
//! slot (`Child`). The node is made the first time anything inside asks for the current node (a
//! nested scope or nursery, a deadline lookup); entries below that have no node yet are made
//! first, from the bottom up, so each node is attached under its real parent. A lazily polled
//! scope whose body is still pending gets its node the same way when its entry is popped. A body
//! that completes without asking costs no node at all; asking whether the current context is
//! cancelled never makes one.
//!
//! The innermost lazy scope's entry, if it has no name, is not pushed on the stack: it waits in
//! `TOP`, a destructor-free thread-local, and is pushed (flushed) only when something needs the
//! stack as a whole (a nested runner, a node being made). `STACKED` says whether the stack
//! holds anything. So a scope whose body completes at once touches the stack itself at most
//! once (to check the enclosing cancellation and flush an enclosing lazy entry), and not at all
//! outside every runner. Invariants:
//!  1. The logical stack is `STACK` followed by `TOP`, if set.
//!  2. `TOP` is set only while its own scope's body is polled, and every push on `STACK`
//!     flushes it first; so it is always the innermost entry, and a lazy scope finding `TOP`
//!     unset after its poll knows its entry is the top of `STACK`.
//!  3. `STACKED` is `!STACK.is_empty()` whenever no `STACK` borrow is held.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::Poll;

use tokio::time::Instant;

use crate::cancel::tree::{Node, NodeKind};
use crate::child::roster::SlotRef;

/// How to make a scope's node when something inside its lazily polled body needs it.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub(crate) kind: NodeKind,
    pub(crate) deadline: Option<Instant>,
    pub(crate) shield: bool,
    pub(crate) name: Option<Arc<str>>,
    /// Where the user's code built the scope.
    pub(crate) location: Option<&'static std::panic::Location<'static>>,
}

impl NodeSpec {
    /// A placeholder while the real recipe is lent to the thread-local.
    pub(crate) const EMPTY: NodeSpec = NodeSpec {
        kind: NodeKind::Scope,
        deadline: None,
        shield: false,
        name: None,
        location: None,
    };

    /// A node built from the recipe, not attached yet.
    pub(crate) fn make(&self) -> Arc<Node> {
        let node = Node::new(self.kind, self.name.clone());
        if self.shield {
            node.init_shield(true);
        }
        if self.deadline.is_some() {
            node.set_deadline(self.deadline);
        }
        if let Some(location) = self.location {
            node.set_location(location);
        }
        node
    }
}

enum Current {
    Node(Arc<Node>),
    /// A spawned or borrowing child without a node yet (see `roster`); `made` once needed.
    Child {
        slot: SlotRef,
        made: Option<Arc<Node>>,
    },
    /// A scope running its body without a node yet; `made` is the node once it was needed.
    Lazy {
        spec: NodeSpec,
        made: Option<Arc<Node>>,
    },
}

impl Current {
    fn node(&self) -> Option<&Arc<Node>> {
        match self {
            Current::Node(node) => Some(node),
            Current::Child { made, .. } | Current::Lazy { made, .. } => made.as_ref(),
        }
    }
}

/// An unnamed lazy scope's recipe: `Copy`, so that it can wait in `TOP`.
#[derive(Debug, Clone, Copy)]
struct Unnamed {
    deadline: Option<Instant>,
    shield: bool,
    location: Option<&'static std::panic::Location<'static>>,
}

impl Unnamed {
    fn spec(self) -> NodeSpec {
        NodeSpec {
            kind: NodeKind::Scope,
            deadline: self.deadline,
            shield: self.shield,
            name: None,
            location: self.location,
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<Current>> = const { RefCell::new(Vec::new()) };
    /// The innermost entry, if it is an unnamed lazy scope's not pushed yet (invariant 2).
    static TOP: Cell<Option<Unnamed>> = const { Cell::new(None) };
    /// `!STACK.is_empty()`: lets a runner outside every other skip the stack (invariant 3).
    static STACKED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the logical stack is empty: then there is no current node and nothing is cancelled.
#[inline]
fn nothing_entered() -> bool {
    !STACKED.get() && TOP.get().is_none()
}

/// Pushes the entry waiting in `TOP`, if any, so that `stack` is the whole logical stack.
#[inline]
fn flush(stack: &mut Vec<Current>) {
    // Read before taking: every runner flushes, and `TOP` is almost always empty then.
    if TOP.get().is_none() {
        return;
    }
    if let Some(top) = TOP.take() {
        push(
            stack,
            Current::Lazy {
                spec: top.spec(),
                made: None,
            },
        );
    }
}

#[inline]
fn push(stack: &mut Vec<Current>, entry: Current) {
    stack.push(entry);
    STACKED.set(true);
}

#[inline]
fn pop(stack: &mut Vec<Current>) -> Option<Current> {
    let entry = stack.pop();
    STACKED.set(!stack.is_empty());
    entry
}

/// The node of the innermost scope, nursery or child being polled on this thread. Makes (and
/// attaches) the nodes of entries that have none yet.
pub(crate) fn current() -> Option<Arc<Node>> {
    if nothing_entered() {
        return None;
    }
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        flush(&mut stack);
        make_nodes(&mut stack).cloned()
    })
}

/// Makes (and attaches) the nodes of the entries without one, from the nearest entry below the
/// top that has one; returns the top's node.
fn make_nodes(stack: &mut [Current]) -> Option<&Arc<Node>> {
    let top = stack.len().checked_sub(1)?;
    if stack[top].node().is_some() {
        return stack[top].node();
    }
    // The nearest entry below with a node; everything above it is made in order.
    let first_without = stack[..top]
        .iter()
        .rposition(|entry| entry.node().is_some())
        .map_or(0, |with| with + 1);
    for i in first_without..=top {
        let parent = i
            .checked_sub(1)
            .and_then(|below| stack[below].node().cloned());
        match &mut stack[i] {
            Current::Node(_) => {}
            // `None` only if the child has left, which cannot happen while it is polled.
            Current::Child { slot, made } => *made = slot.roster.make_node(slot.key),
            Current::Lazy { spec, made } => {
                let node = spec.make();
                node.attach(parent.as_ref());
                *made = Some(node);
            }
        }
    }
    stack[top].node()
}

/// A future that stops for good because its context is cancelled (a checkpoint, a parked
/// `start`) commits the unwinding first (invariant 9 of the tree). Makes the current node if it
/// was not made yet: this is the cancelled path, not the hot one.
pub(crate) fn commit_current_unwinding() {
    if let Some(node) = current() {
        node.commit_unwinding();
    }
}

/// `true` if the innermost structure being polled is effectively cancelled. Makes no node.
pub(crate) fn current_is_cancelled() -> bool {
    // A lazy entry in `TOP` has no node: as in `is_cancelled_in`, only its shield matters.
    if TOP.get().is_some_and(|top| top.shield) {
        return false;
    }
    STACKED.get() && STACK.with(|stack| is_cancelled_in(&stack.borrow()))
}

/// Whether the top of `stack` is effectively cancelled, without making a node.
#[inline]
fn is_cancelled_in(stack: &[Current]) -> bool {
    for entry in stack.iter().rev() {
        match entry {
            Current::Node(node)
            | Current::Child {
                made: Some(node), ..
            }
            | Current::Lazy {
                made: Some(node), ..
            } => return node.is_cancelled(),
            Current::Child { slot, made: None } => return slot.lazy_cancelled(),
            // Not made yet: only an enclosing cancellation can reach the body (the scope's
            // own deadline was checked before the poll, and nothing can cancel a scope
            // without a node), and a shield stops that.
            Current::Lazy { spec, made: None } => {
                if spec.shield {
                    return false;
                }
            }
        }
    }
    false
}

/// An entry pushed for one poll; `exit` pops it (two thread-local accesses in all), and so does
/// `Drop` when the poll unwinds.
struct Entered {
    armed: bool,
}

impl Entered {
    fn enter(entry: Current) -> Entered {
        STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            flush(&mut stack);
            push(&mut stack, entry);
        });
        Entered { armed: true }
    }

    /// Pops this entry and returns it, as the poll left it.
    fn exit(mut self) -> Option<Current> {
        self.armed = false;
        STACK.with(|stack| pop(&mut stack.borrow_mut()))
    }
}

impl Drop for Entered {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            pop_unwound();
        }
    }
}

/// A poll unwound out of an entry: pops it.
#[cold]
fn pop_unwound() {
    let mine = STACK.with(|stack| pop(&mut stack.borrow_mut()));
    // Unwinding out of a lazily polled body: a node it made is attached but has no owner.
    if let Some(Current::Lazy {
        made: Some(node), ..
    }) = mine
    {
        node.detach();
    }
}

/// Runs `f` with `node` as the current node.
pub(crate) fn enter<R>(node: &Arc<Node>, f: impl FnOnce() -> R) -> R {
    let entered = Entered::enter(Current::Node(Arc::clone(node)));
    let out = f();
    drop(entered.exit());
    out
}

/// Runs `f` as the child `slot`, which has no node yet; returns its node if something inside
/// made it.
pub(crate) fn enter_child<R>(slot: SlotRef, f: impl FnOnce() -> R) -> (R, Option<Arc<Node>>) {
    let entered = Entered::enter(Current::Child { slot, made: None });
    let out = f();
    match entered.exit() {
        Some(Current::Child { made, .. }) => (out, made),
        _ => (out, None),
    }
}

/// Runs `poll` under a scope that has no node yet, unless the enclosing structure is cancelled
/// and `spec` is not shielded (then `None`, and nothing ran). `spec` is a plain scope's.
/// Returns the scope's node if it has one now: made inside the body by whatever needed it, or,
/// if the body is pending, made when the entry is popped (the scope goes on with a node).
/// Either way it is attached under the enclosing entry's node. This is the hot path of every
/// scope: an unnamed one waits in `TOP`, and the stack is touched only to check the enclosing
/// cancellation (not at all outside every runner) and to make a node.
pub(crate) fn enter_lazy<T>(
    spec: &mut NodeSpec,
    poll: impl FnOnce() -> Poll<T>,
) -> Option<(Poll<T>, Option<Arc<Node>>)> {
    if spec.name.is_some() {
        return enter_lazy_stacked(spec, poll);
    }
    let mine = Unnamed {
        deadline: spec.deadline,
        shield: spec.shield,
        location: spec.location,
    };
    if !nothing_entered() {
        let cancelled = STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            flush(&mut stack);
            !mine.shield && is_cancelled_in(&stack)
        });
        if cancelled {
            return None;
        }
    }
    TOP.set(Some(mine));
    let mut entered = EnteredTop { armed: true };
    let polled = poll();
    entered.armed = false;
    let made = match TOP.take() {
        // Nothing inside needed the stack: no node, unless the body is pending.
        Some(_) if polled.is_ready() => None,
        Some(mine) => STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            push(
                &mut stack,
                Current::Lazy {
                    spec: mine.spec(),
                    made: None,
                },
            );
            make_nodes(&mut stack);
            pop_lazy(&mut stack)
        }),
        None => STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            if polled.is_pending() {
                make_nodes(&mut stack);
            }
            pop_lazy(&mut stack)
        }),
    };
    Some((polled, made))
}

/// `enter_lazy` for a named scope: its entry goes on the stack at once.
fn enter_lazy_stacked<T>(
    spec: &mut NodeSpec,
    poll: impl FnOnce() -> Poll<T>,
) -> Option<(Poll<T>, Option<Arc<Node>>)> {
    let mut entered = STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        flush(&mut stack);
        if !spec.shield && is_cancelled_in(&stack) {
            return None;
        }
        let spec = std::mem::replace(spec, NodeSpec::EMPTY);
        push(&mut stack, Current::Lazy { spec, made: None });
        Some(Entered { armed: true })
    })?;
    let polled = poll();
    entered.armed = false;
    let made = STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        if polled.is_pending() {
            make_nodes(&mut stack);
        }
        pop_lazy(&mut stack)
    });
    Some((polled, made))
}

/// Pops a lazy scope's own entry (the top: runners pop what they pushed) and returns its node.
fn pop_lazy(stack: &mut Vec<Current>) -> Option<Arc<Node>> {
    match pop(stack) {
        Some(Current::Lazy { made, .. }) => made,
        _ => unreachable!("the lazy scope's context entry was replaced"),
    }
}

/// The entry of an unnamed lazy scope for one poll: on unwind, it is cleared from `TOP`, or
/// popped from the stack if something flushed it there.
struct EnteredTop {
    armed: bool,
}

impl Drop for EnteredTop {
    #[inline]
    fn drop(&mut self) {
        if self.armed && TOP.take().is_none() {
            pop_unwound();
        }
    }
}
