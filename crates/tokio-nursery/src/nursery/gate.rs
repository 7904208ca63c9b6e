//! The counting gate behind a nursery's concurrency limit (`policy.rs`): a fair (FIFO)
//! semaphore whose uncontended take and release are one compare-exchange each, with no lock and
//! no allocation. A limited nursery pays that per child, so it is kept to the atomic word; the
//! line of waiters, under a lock, is touched only once a child has to wait.
//!
//! `state` holds the free permits times two (`ONE`), plus the `QUEUED` bit. Invariants:
//!   1. `QUEUED` is set exactly while `line` is non-empty; both change only under `line`'s lock.
//!   2. While `QUEUED` is set no permit is free (`state == QUEUED`): a release hands its permit
//!      to the first waiter instead, under the lock. So a take outside the lock, which needs
//!      `QUEUED` clear, never jumps the line.
//!   3. Outside the lock `state` changes only by a compare-exchange from a value without
//!      `QUEUED`: a take (-`ONE`, if a permit is free) or a release (+`ONE`). `QUEUED` is set
//!      under the lock by a compare-exchange from 0, so a release that lands first makes it
//!      retry, and the permit is taken rather than waited for.
//!   4. A waiter goes `WAITING` -> `GRANTED` under the lock, as it is popped from `line` with a
//!      permit (it is woken after the lock is released); `GRANTED` -> `DONE` only by its owner,
//!      which then holds that permit as a `Permit`. A ticket dropped while `WAITING` leaves the
//!      line; dropped while `GRANTED`, it passes on the permit it was handed.
//!   5. Every permit is in exactly one place: free in `state`, a `Permit`, or a `GRANTED` waiter.
//!      So at most the gate's permits are ever held, and none is lost.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::PoisonError;
use std::task::{Context, Poll};

use crate::sync::{Arc, AtomicUsize, AtomicWaker, Mutex, MutexGuard};

/// The most permits a gate holds (tokio's semaphore maximum, which the limit documents).
pub(crate) const MAX_PERMITS: usize = usize::MAX >> 3;

const QUEUED: usize = 1;
const ONE: usize = 2;

const WAITING: usize = 0;
const GRANTED: usize = 1;
const DONE: usize = 2;

type Line = VecDeque<Arc<Waiter>>;

#[derive(Debug)]
pub(crate) struct Gate {
    state: AtomicUsize,
    line: Mutex<Line>,
}

#[derive(Debug)]
struct Waiter {
    state: AtomicUsize,
    waker: AtomicWaker,
}

/// One permit of a gate; dropping it releases the permit.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<Gate>,
}

/// A place in a gate's line; dropping it gives the place up.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    waiter: Arc<Waiter>,
}

impl Gate {
    pub(crate) fn new(permits: usize) -> Arc<Gate> {
        Arc::new(Gate {
            state: AtomicUsize::new(permits.min(MAX_PERMITS) * ONE),
            line: Mutex::new(VecDeque::new()),
        })
    }

    fn line(&self) -> MutexGuard<'_, Line> {
        // No user code runs under this lock, and no step leaves the line half-changed: it is
        // consistent even if poisoned.
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free permit, if nobody waits for one (invariant 2).
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<Permit> {
        let mut state = self.state.load(SeqCst);
        loop {
            if state & QUEUED != 0 || state < ONE {
                return None;
            }
            match self
                .state
                .compare_exchange_weak(state, state - ONE, SeqCst, SeqCst)
            {
                Ok(_) => {
                    return Some(Permit {
                        gate: Arc::clone(self),
                    })
                }
                Err(now) => state = now,
            }
        }
    }

    /// A permit now if one is free and nobody waits, else a place at the end of the line.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<Permit, Ticket> {
        if let Some(permit) = self.try_take() {
            return Ok(permit);
        }
        let mut line = self.line();
        let mut state = self.state.load(SeqCst);
        // Invariant 3: only a release can race this; it turns the 0 we expect into a permit.
        while state & QUEUED == 0 {
            let next = if state >= ONE { state - ONE } else { QUEUED };
            match self.state.compare_exchange(state, next, SeqCst, SeqCst) {
                Ok(_) if next == QUEUED => break,
                Ok(_) => {
                    drop(line);
                    return Ok(Permit {
                        gate: Arc::clone(self),
                    });
                }
                Err(now) => state = now,
            }
        }
        let waiter = Arc::new(Waiter {
            state: AtomicUsize::new(WAITING),
            waker: AtomicWaker::new(),
        });
        line.push_back(Arc::clone(&waiter));
        Err(Ticket {
            gate: Arc::clone(self),
            waiter,
        })
    }

    /// Gives a permit back: free if nobody waits, else to the first waiter.
    fn release(&self) {
        let mut state = self.state.load(SeqCst);
        while state & QUEUED == 0 {
            match self
                .state
                .compare_exchange_weak(state, state + ONE, SeqCst, SeqCst)
            {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        self.hand_on(self.line());
    }

    /// Under the lock: a permit goes to the first waiter, or is freed if the line is empty
    /// (the last waiter may have left since `QUEUED` was seen).
    fn hand_on(&self, mut line: MutexGuard<'_, Line>) {
        let Some(waiter) = line.pop_front() else {
            // Invariant 1: `QUEUED` is clear, so only compare-exchanges race this add.
            self.state.fetch_add(ONE, SeqCst);
            return;
        };
        if line.is_empty() {
            self.state.fetch_and(!QUEUED, SeqCst);
        }
        waiter.state.store(GRANTED, SeqCst);
        drop(line);
        waiter.waker.wake();
    }

    /// A ticket's waiter leaves the line without taking a permit.
    fn leave_line(&self, waiter: &Arc<Waiter>) {
        let mut line = self.line();
        if waiter.state.load(SeqCst) == GRANTED {
            // Handed a permit since the caller looked: pass it on (invariant 4).
            waiter.state.store(DONE, SeqCst);
            self.hand_on(line);
            return;
        }
        // Waiters leave mostly from the front (they are cancelled in about the order they
        // queued), so this scan is short.
        if let Some(at) = line.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            line.remove(at);
        }
        if line.is_empty() {
            self.state.fetch_and(!QUEUED, SeqCst);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl Ticket {
    /// The permit handed to this place in line, once there is one; registers `cx`'s waker
    /// otherwise (checked again after registering, so a grant in between is not missed).
    pub(crate) fn poll_permit(&self, cx: &mut Context<'_>) -> Poll<Permit> {
        if self.waiter.state.load(SeqCst) != GRANTED {
            self.waiter.waker.register(cx.waker());
            if self.waiter.state.load(SeqCst) != GRANTED {
                return Poll::Pending;
            }
        }
        self.waiter.state.store(DONE, SeqCst);
        Poll::Ready(Permit {
            gate: Arc::clone(&self.gate),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // `DONE` is set only by this ticket's owner: its permit is a `Permit` now.
        if self.waiter.state.load(SeqCst) != DONE {
            self.gate.leave_line(&self.waiter);
        }
    }
}

#[cfg(all(test, loom))]
impl Gate {
    /// Free permits and whether anyone waits, for the tests and models.
    pub(crate) fn snapshot(&self) -> (usize, bool) {
        let state = self.state.load(SeqCst);
        (state / ONE, state & QUEUED != 0)
    }
}

#[cfg(all(test, loom))]
impl Ticket {
    /// Whether a permit was handed to this place in line (not yet taken by `poll_permit`).
    pub(crate) fn is_granted(&self) -> bool {
        self.waiter.state.load(SeqCst) == GRANTED
    }
}
