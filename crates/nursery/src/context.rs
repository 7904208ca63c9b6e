// The node the current poll runs under.
//
// A runner (scope, nursery body, child task, cleanup) sets the thread-local while it polls its
// body and restores the previous value afterwards, even on panic. Polls nest synchronously, so a
// thread-local is exact: it always names the innermost structure being polled on this thread.

use std::cell::RefCell;
use std::sync::Arc;

use crate::tree::Node;

thread_local! {
    static CURRENT: RefCell<Option<Arc<Node>>> = const { RefCell::new(None) };
}

/// The node of the innermost scope, nursery or child being polled on this thread.
pub(crate) fn current() -> Option<Arc<Node>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `true` if the innermost structure being polled is effectively cancelled.
pub(crate) fn current_is_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|n| n.is_cancelled()))
}

struct Restore(Option<Arc<Node>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with `node` as the current node.
pub(crate) fn enter<R>(node: &Arc<Node>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(node)));
    let _restore = Restore(previous);
    f()
}
