// The node the current poll runs under.
//
// A runner (scope, nursery body, child task, cleanup) sets the thread-local while it polls its
// body and restores the previous value afterwards, even on panic. Polls nest synchronously, so a
// thread-local is exact: it always names the innermost structure being polled on this thread.
//
// A scope polled for the first time may run its body *lazily*: without a node of its own. The
// thread-local then holds the recipe for the node (`Lazy`), and the node is made the first time
// anything inside the body asks for the current node (a nested scope or nursery, a deadline
// lookup). A body that completes on its first poll without asking costs no node at all.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::time::Instant;

use crate::roster::SlotRef;
use crate::tree::{Node, NodeKind};

/// How to make a scope's node when something inside its lazily polled body needs it.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub(crate) kind: NodeKind,
    pub(crate) deadline: Option<Instant>,
    pub(crate) shield: bool,
    pub(crate) name: Option<Arc<str>>,
}

impl NodeSpec {
    /// A placeholder while the real recipe is lent to the thread-local.
    pub(crate) const EMPTY: NodeSpec = NodeSpec {
        kind: NodeKind::Scope,
        deadline: None,
        shield: false,
        name: None,
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
        parent: Option<Arc<Node>>,
        spec: NodeSpec,
        made: Option<Arc<Node>>,
    },
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// The node of the innermost scope, nursery or child being polled on this thread. Makes and
/// attaches the node of a lazily polled scope.
pub(crate) fn current() -> Option<Arc<Node>> {
    CURRENT.with(|c| match &mut *c.borrow_mut() {
        None => None,
        Some(Current::Node(node)) => Some(Arc::clone(node)),
        Some(Current::Child { slot, made }) => match made {
            Some(node) => Some(Arc::clone(node)),
            None => {
                // `None` only if the child has left, which cannot happen while it is polled.
                *made = slot.roster.make_node(slot.key);
                made.clone()
            }
        },
        Some(Current::Lazy { parent, spec, made }) => {
            Some(Arc::clone(made.get_or_insert_with(|| {
                let node = spec.make();
                node.attach(parent.as_ref());
                node
            })))
        }
    })
}

/// `true` if the innermost structure being polled is effectively cancelled.
pub(crate) fn current_is_cancelled() -> bool {
    CURRENT.with(|c| match &*c.borrow() {
        None => false,
        Some(Current::Node(node)) => node.is_cancelled(),
        Some(Current::Child {
            made: Some(node), ..
        }) => node.is_cancelled(),
        Some(Current::Child { slot, made: None }) => slot.lazy_cancelled(),
        Some(Current::Lazy {
            made: Some(node), ..
        }) => node.is_cancelled(),
        // Not made yet: only an enclosing cancellation can reach the body (the scope's own
        // deadline was checked before the poll, and nothing can cancel a scope without a node).
        Some(Current::Lazy { parent, spec, .. }) => {
            !spec.shield && parent.as_ref().is_some_and(|p| p.is_cancelled())
        }
    })
}

/// An entry made current; `exit` puts the previous one back (two thread-local accesses in all),
/// and so does `Drop` when a poll unwinds.
struct Entered {
    previous: Option<Current>,
    armed: bool,
}

impl Entered {
    fn enter(entry: Current) -> Entered {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(entry));
        Entered {
            previous,
            armed: true,
        }
    }

    /// Restores the previous entry and returns this one (as the poll left it).
    fn exit(mut self) -> Option<Current> {
        self.armed = false;
        let previous = self.previous.take();
        CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let previous = self.previous.take();
        let mine = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
        // Unwinding out of a lazily polled body: a node it made is attached but has no owner.
        if let Some(Current::Lazy {
            made: Some(node), ..
        }) = mine
        {
            node.detach();
        }
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

/// Runs `f` under a scope that has no node yet. Returns the node if something inside made it
/// (it is then attached under `parent`), and gives `parent` and `spec` back.
#[allow(clippy::type_complexity)]
pub(crate) fn enter_lazy<R>(
    parent: Option<Arc<Node>>,
    spec: NodeSpec,
    f: impl FnOnce() -> R,
) -> (R, Option<Arc<Node>>, (Option<Arc<Node>>, NodeSpec)) {
    let entered = Entered::enter(Current::Lazy {
        parent,
        spec,
        made: None,
    });
    let out = f();
    match entered.exit() {
        Some(Current::Lazy { parent, spec, made }) => (out, made, (parent, spec)),
        // Runners restore what they replaced, so the innermost entry is ours again.
        _ => unreachable!("the lazy scope's context entry was replaced"),
    }
}
