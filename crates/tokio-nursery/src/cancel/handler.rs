//! Cancellation handlers (DESIGN §7): a synchronous callback run the moment the context of a
//! future becomes effectively cancelled, while the future itself goes on under the usual rules.
//!
//! The handler is a leaf node of the cancel tree (`NodeKind::Handler`) attached under the node
//! current at the first poll; the guarded future is *not* polled under it. The tree fires it
//! (`OnCancel::fire`) when the leaf's bit flips on — on the cancelling thread, outside every
//! lock — or when a grace period above it starts draining. While armed or running, the guarded
//! future holds a live token on the node it guards (invariant 8 of `tree.rs`): a cancelled scope
//! keeps polling it until the handler has run, so a handler's panic is re-raised in that poll and
//! a value the future reaches meanwhile is kept (Rule 1). States of the cell, and where each goes
//! next:
//!   Armed     - the callback waits. Next: `Running` (fired), `Disarmed` (the future finished or
//!               was dropped first).
//!   Running   - the callback runs on the firing thread. Next: `Ran`, or `Abandoned` if the
//!               future is dropped meanwhile (a foreign drop: nothing else can drop it then).
//!   Ran       - finished, with its panic if it panicked. Final; the future re-raises the panic.
//!   Abandoned - the future is gone; a panic the callback ends with is logged. Final.
//!   Disarmed  - the future finished first: the callback never runs. Final.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll};

use pin_project::{pin_project, pinned_drop};

use crate::cancel::context;
use crate::cancel::tree::{LiveToken, Node, NodeKind, OnCancel};
use crate::panic::{self, Payload};
use crate::sync::{Arc, AtomicWaker, Mutex, MutexGuard};

type Callback = Box<dyn FnOnce() + Send + 'static>;

enum State {
    Armed(Callback),
    Running,
    Ran(Option<Payload>),
    Abandoned,
    Disarmed,
}

/// What the tree holds for a handler leaf: the callback and the waker of the future that waits
/// for a running callback.
struct Cell {
    state: Mutex<State>,
    waiter: AtomicWaker,
}

impl Cell {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the future sees. `Armed` -> `Disarmed` only when `finish` (the future completed or
    /// is dropped); `Running` -> `Abandoned` when dropped.
    fn observe(&self, finish: Finish) -> Seen {
        let mut state = self.lock();
        let seen = match &mut *state {
            State::Armed(_) if finish == Finish::No => return Seen::Armed,
            State::Armed(_) => Seen::Disarmed,
            State::Running if finish == Finish::Dropped => Seen::Abandoned,
            State::Running => return Seen::Running,
            State::Ran(payload) => return Seen::Ran(payload.take()),
            State::Abandoned | State::Disarmed => return Seen::Disarmed,
        };
        let next = match seen {
            Seen::Abandoned => State::Abandoned,
            _ => State::Disarmed,
        };
        let previous = std::mem::replace(&mut *state, next);
        drop(state);
        // The callback (and what it captured) is dropped outside the lock.
        drop(previous);
        seen
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    No,
    Completed,
    Dropped,
}

#[must_use = "a running handler must be waited for, and a panic re-raised"]
enum Seen {
    Armed,
    Running,
    Ran(Option<Payload>),
    Abandoned,
    Disarmed,
}

impl OnCancel for Cell {
    fn fire(&self) {
        let callback = {
            let mut state = self.lock();
            match std::mem::replace(&mut *state, State::Running) {
                State::Armed(callback) => callback,
                other => {
                    *state = other;
                    return;
                }
            }
        };
        // Never under a lock, and a panic stays here: it is the guarded future's to re-raise.
        let outcome = panic::catch(callback).err();
        let mut state = self.lock();
        if matches!(*state, State::Abandoned) {
            drop(state);
            if let Some(payload) = outcome {
                tracing::error!(
                    panic = %panic::message(&payload),
                    "a cancellation handler panicked after its future was dropped"
                );
            }
            return;
        }
        *state = State::Ran(outcome);
        drop(state);
        self.waiter.wake();
    }
}

/// Runs `handler` the moment the context of `fut` becomes effectively cancelled, while `fut` goes
/// on under the usual rules (Swift's `withTaskCancellationHandler`, Go's `context.AfterFunc`):
/// for bridging callback and FFI APIs that must be told to stop.
///
/// - On an explicit `cancel()` the handler runs on the cancelling thread before `cancel()`
///   returns; on a deadline, in the task that observes it; inherited from an enclosing scope, on
///   the thread that cancelled that scope; under a grace period, when the drain begins. A shield
///   blocks it like any other cancellation.
/// - At most once; not at all if `fut` finished (or was dropped) first. It runs under no library
///   lock: it may cancel, spawn or fail from inside.
/// - If the context is already cancelled at the first poll, the handler runs then, in the
///   polling task, before `fut` is polled.
/// - Awaiting this future waits for a handler already running: the value comes after it.
/// - A panic inside it does not unwind into the canceller: it is re-raised where this future is
///   awaited (at its next poll, after `fut` is dropped).
///
/// Outside any scope or nursery of this library nothing can cancel `fut`, and the handler never
/// runs.
///
/// # Cancel safety
///
/// Dropping the future drops `fut` and disarms the handler. A handler already running on another
/// thread finishes there; while it runs it counts as live structure of the scope around the
/// future, so that scope returns only after it.
///
/// # Drop behavior
///
/// As for cancel safety: nothing outlives the drop but a handler already running.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // A callback API that must be told to stop: here, a flag its worker thread polls.
/// let stop = Arc::new(AtomicBool::new(false));
/// let out = tokio_nursery::move_on_after(Duration::from_secs(1), {
///     let stop = Arc::clone(&stop);
///     tokio_nursery::with_cancel_handler(
///         async { std::future::pending::<()>().await },
///         move || stop.store(true, Ordering::SeqCst),
///     )
/// })
/// .await;
/// assert_eq!(out, None);
/// assert!(stop.load(Ordering::SeqCst));
/// # }
/// ```
pub fn with_cancel_handler<F, H>(fut: F, handler: H) -> WithCancelHandler<F>
where
    F: Future,
    H: FnOnce() + Send + 'static,
{
    WithCancelHandler {
        fut: Some(fut),
        handler: Some(Box::new(handler)),
        armed: None,
        output: None,
    }
}

/// The future returned by [`with_cancel_handler`]: `fut`'s output, once any handler that
/// started has finished.
///
/// # Cancel safety
///
/// See [`with_cancel_handler`].
///
/// # Drop behavior
///
/// Dropping it disarms the handler and detaches its leaf from the tree.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let guarded: tokio_nursery::WithCancelHandler<_> =
///     tokio_nursery::with_cancel_handler(async { 7 }, || unreachable!("never cancelled"));
/// assert_eq!(guarded.await, 7);
/// # }
/// ```
#[pin_project(PinnedDrop)]
#[must_use = "futures do nothing unless awaited; the handler is armed at the first poll"]
pub struct WithCancelHandler<F: Future> {
    #[pin]
    fut: Option<F>,
    handler: Option<Callback>,
    armed: Option<Armed>,
    output: Option<F::Output>,
}

/// An armed handler as its future holds it: the cell, the leaf, and the live token on the node
/// it guards (released once the handler can no longer run, or has run).
struct Armed {
    cell: Arc<Cell>,
    leaf: Arc<Node>,
    live: Option<LiveToken>,
}

impl<F: Future> fmt::Debug for WithCancelHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithCancelHandler")
            .field("armed", &self.armed.is_some())
            .field("finished", &self.fut.is_none())
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for WithCancelHandler<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if let Some(handler) = this.handler.take() {
            *this.armed = arm(handler);
        }
        if let Some(armed) = this.armed.as_mut() {
            armed.cell.waiter.register(cx.waker());
            match armed.cell.observe(Finish::No) {
                Seen::Ran(Some(payload)) => {
                    this.fut.set(None);
                    armed.live = None;
                    std::panic::resume_unwind(payload);
                }
                // Ran: from here the future is an ordinary one its scope may drop.
                Seen::Ran(None) => armed.live = None,
                Seen::Armed | Seen::Running | Seen::Abandoned | Seen::Disarmed => {}
            }
        }
        if let Some(fut) = this.fut.as_mut().as_pin_mut() {
            let Poll::Ready(value) = fut.poll(cx) else {
                return Poll::Pending;
            };
            this.fut.set(None);
            *this.output = Some(value);
        }
        if let Some(armed) = this.armed.as_mut() {
            match armed.cell.observe(Finish::Completed) {
                // The token stays: the value comes once the handler has finished.
                Seen::Running => return Poll::Pending,
                Seen::Ran(Some(payload)) => {
                    armed.live = None;
                    std::panic::resume_unwind(payload);
                }
                Seen::Armed | Seen::Ran(None) | Seen::Abandoned | Seen::Disarmed => {}
            }
        }
        if let Some(armed) = this.armed.take() {
            armed.leaf.detach();
        }
        Poll::Ready(this.output.take().expect("polled after completion"))
    }
}

/// Attaches the handler's leaf under the current node; fires it at once if that node is already
/// cancelled (the leaf's bit was computed on attach, so no propagation will flip it).
fn arm(handler: Callback) -> Option<Armed> {
    let context = context::current()?;
    let cell = Arc::new(Cell {
        state: Mutex::new(State::Armed(handler)),
        waiter: AtomicWaker::new(),
    });
    let leaf = Node::new(NodeKind::Handler, None);
    leaf.set_on_cancel(Arc::clone(&cell) as Arc<dyn OnCancel>);
    let live = Some(LiveToken::new(&context));
    leaf.attach(Some(&context));
    if leaf.is_cancelled() || leaf.drain_started_above() {
        cell.fire();
    }
    Some(Armed { cell, leaf, live })
}

#[pinned_drop]
impl<F: Future> PinnedDrop for WithCancelHandler<F> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let Some(armed) = this.armed.take() else {
            return;
        };
        armed.leaf.detach();
        let seen = armed.cell.observe(Finish::Dropped);
        drop(armed);
        if let Seen::Ran(Some(payload)) = seen {
            // Dropped (by a `select!`, say) after the handler panicked but before the next poll:
            // this drop is where the future is awaited. Never a second panic while unwinding.
            if std::thread::panicking() {
                tracing::error!(panic = %panic::message(&payload), "a cancellation handler panicked");
            } else {
                std::panic::resume_unwind(payload);
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::*;

    /// The cell's protocol: a cancel firing the handler on one thread while the guarded future
    /// completes on another. The callback runs at most once, never after the future saw it
    /// disarmed, and a future that saw it running sees it finished before returning.
    #[test]
    fn handler_firing_racing_completion() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let runs = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&runs);
            let cell = Arc::new(Cell {
                state: Mutex::new(State::Armed(Box::new(move || {
                    counted.fetch_add(1, SeqCst);
                }))),
                waiter: AtomicWaker::new(),
            });
            let firing = Arc::clone(&cell);
            let canceller = loom::thread::spawn(move || firing.fire());
            let mut seen = cell.observe(Finish::Completed);
            while matches!(seen, Seen::Running) {
                loom::thread::yield_now();
                seen = cell.observe(Finish::Completed);
            }
            match seen {
                Seen::Disarmed => {
                    canceller.join().unwrap();
                    assert_eq!(runs.load(SeqCst), 0, "disarmed: never runs");
                }
                Seen::Ran(payload) => {
                    assert!(payload.is_none());
                    assert_eq!(runs.load(SeqCst), 1, "ran before the future returned");
                    canceller.join().unwrap();
                }
                Seen::Armed | Seen::Running | Seen::Abandoned => unreachable!("completed"),
            }
        });
    }
}
