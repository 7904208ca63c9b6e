//! Borrowing children: futures polled inside the nursery's own task, so they may borrow from the
//! caller's stack (`'env`) — the safe corner of the scoped-task trilemma: no parallelism, no
//! `'static` bound, no `unsafe`.
//!
//! Handles push new children into `incoming` (any clone of the body's `Nursery` may, including a
//! borrowing child itself); the nursery future moves them into its `FuturesUnordered` on its next
//! poll and polls them there. Each child is wrapped in the same `ChildTask` runner as a spawned
//! child, so failure, cancellation, panic and membership rules are identical.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

pub(crate) type BorrowedChild<'env> = Pin<Box<dyn Future<Output = ()> + Send + 'env>>;

/// The part shared with `Nursery` handles.
pub(crate) struct Incoming<'env> {
    children: Mutex<Vec<BorrowedChild<'env>>>,
    waker: AtomicWaker,
}

impl<'env> Incoming<'env> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Incoming {
            children: Mutex::new(Vec::new()),
            waker: AtomicWaker::new(),
        })
    }

    pub(crate) fn push(&self, child: BorrowedChild<'env>) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
        self.waker.wake();
    }

    fn take(&self) -> Vec<BorrowedChild<'env>> {
        std::mem::take(&mut *self.children.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

/// The part owned by the nursery future.
pub(crate) struct BorrowedSet<'env> {
    running: FuturesUnordered<BorrowedChild<'env>>,
    incoming: Arc<Incoming<'env>>,
}

impl<'env> BorrowedSet<'env> {
    pub(crate) fn new(incoming: Arc<Incoming<'env>>) -> Self {
        BorrowedSet {
            running: FuturesUnordered::new(),
            incoming,
        }
    }

    /// Polls every ready borrowing child, including ones spawned while doing so.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) {
        self.incoming.waker.register(cx.waker());
        loop {
            self.running.extend(self.incoming.take());
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                Poll::Ready(None) | Poll::Pending => {
                    if self
                        .incoming
                        .children
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Drops every borrowing child now (a foreign drop of the nursery): they borrow the stack.
    pub(crate) fn clear(&mut self) {
        drop(self.incoming.take());
        self.running.clear();
    }
}

impl std::fmt::Debug for BorrowedSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BorrowedSet")
            .field("running", &self.running.len())
            .finish()
    }
}
