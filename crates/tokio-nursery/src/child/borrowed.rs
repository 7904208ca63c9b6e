//! Borrowing children: futures polled inside the nursery's own task, so they may borrow from the
//! caller's stack (`'env`) — the safe corner of the scoped-task trilemma: no parallelism, no
//! `'static` bound, no `unsafe`.
//!
//! Handles push new children straight into the `FuturesUnordered` the nursery future polls
//! (any clone of the body's `Nursery` may, including a borrowing child itself). Each child is
//! wrapped in the same `ChildTask` runner as a spawned child, so failure, cancellation, panic and
//! membership rules are identical.
//!
//! Invariants
//!
//!  1. `running` is locked by the nursery future while it polls or drops children, and by a
//!     push only with `try_lock`: a push that finds it locked (a child spawning from inside its
//!     own poll, or a push from another thread meanwhile) goes to `overflow` instead, and never
//!     waits, so a child spawning a sibling cannot deadlock the set.
//!  2. A push stores its child (in `running` or `overflow`, and `overflowed` after `overflow`)
//!     *before* it wakes `waker`; the nursery future registers `waker` before it locks
//!     `running`, and reads `overflowed` after every round of polls, before it unlocks. So a
//!     child pushed while a poll is under way is either polled in it or wakes the nursery task.
//!     (loom model `borrowed_push_racing_the_nursery_poll`.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{PoisonError, TryLockError};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::sync::{Arc, AtomicBool, AtomicWaker, Mutex, MutexGuard};

pub(crate) type BorrowedChild<'env> = Pin<Box<dyn Future<Output = ()> + Send + 'env>>;

type Running<'env> = FuturesUnordered<BorrowedChild<'env>>;

/// The part shared with `Nursery` handles.
pub(crate) struct Incoming<'env> {
    running: Mutex<Running<'env>>,
    /// Children pushed while `running` was locked (invariant 1).
    overflow: Mutex<Vec<BorrowedChild<'env>>>,
    /// Set once something is in `overflow`, so the poll loop checks it without a lock.
    overflowed: AtomicBool,
    waker: AtomicWaker,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A child's panic is caught inside its runner, so a poisoned lock still holds a sound set.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<'env> Incoming<'env> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Incoming {
            running: Mutex::new(FuturesUnordered::new()),
            overflow: Mutex::new(Vec::new()),
            overflowed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    pub(crate) fn push(&self, child: BorrowedChild<'env>) {
        match self.running.try_lock() {
            Ok(running) => running.push(child),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().push(child),
            Err(TryLockError::WouldBlock) => {
                lock(&self.overflow).push(child);
                self.overflowed.store(true, SeqCst);
            }
        }
        self.waker.wake();
    }

    /// Moves the overflow into `running`; `false` if there was none.
    fn drain_overflow(&self, running: &mut Running<'env>) -> bool {
        if !self.overflowed.swap(false, SeqCst) {
            return false;
        }
        let children = std::mem::take(&mut *lock(&self.overflow));
        running.extend(children);
        true
    }
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

/// The part owned by the nursery future.
pub(crate) struct BorrowedSet<'env> {
    incoming: Arc<Incoming<'env>>,
}

impl<'env> BorrowedSet<'env> {
    pub(crate) fn new(incoming: Arc<Incoming<'env>>) -> Self {
        BorrowedSet { incoming }
    }

    /// Polls every ready borrowing child, including ones spawned while doing so.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) {
        let incoming = &*self.incoming;
        incoming.waker.register(cx.waker());
        let mut running = lock(&incoming.running);
        loop {
            incoming.drain_overflow(&mut running);
            match running.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => continue,
                Poll::Ready(None) | Poll::Pending => {
                    if !incoming.overflowed.load(SeqCst) {
                        return;
                    }
                }
            }
        }
    }

    /// Drops every borrowing child now (a foreign drop of the nursery): they borrow the stack.
    /// A child's destructor may push another child: that one goes too.
    pub(crate) fn clear(&mut self) {
        let incoming = &*self.incoming;
        let mut running = lock(&incoming.running);
        loop {
            running.clear();
            if !incoming.drain_overflow(&mut running) {
                return;
            }
        }
    }
}

impl Drop for BorrowedSet<'_> {
    /// The children go with the nursery future, even though handles may keep `incoming` alive.
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for BorrowedSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.incoming.running.try_lock().map(|r| r.len()).ok();
        f.debug_struct("BorrowedSet")
            .field("running", &running)
            .finish()
    }
}
