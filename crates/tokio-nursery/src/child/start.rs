//! `start` (trio's `nursery.start`): run a child until it signals that it is ready, return the
//! value it signals, and leave the child running in the nursery.
//!
//! Before the signal, the child's node hangs under the *caller's* node: the caller's scopes govern
//! it, its failure comes back from `start` (the nursery is not cancelled), and the caller's scope
//! counts it as live structure through a token the slot holds. `started(v)` moves the node under
//! the nursery's children group (`Node::reparent`) and releases that token: from then on it is an
//! ordinary child. The child is a member of the nursery from the beginning, so a pending `start`
//! keeps the nursery open.
//!
//! Slot states (each written once, from `Waiting`):
//!   Waiting          - the child runs and has not signalled.
//!   Started(v)       - `started(v)` was called; the child is in the nursery.
//!   NurseryCancelled - `started(v)` was called but the nursery's children were already cancelled.
//!   Failed(e)        - the child returned `Err(e)` before signalling.
//!   Panicked(p)      - the child panicked before signalling.
//!   NotStarted       - the child returned `Ok` without signalling, or dropped its signal.
//!   ChildCancelled   - the child was dropped by cancellation (the caller's scope) before signalling.
//!   Taken            - `Start` returned the outcome.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::cancel::context;
use crate::cancel::reason::CancelReason;
use crate::cancel::tree::{LiveToken, Node, NodeKind};
use crate::child::handle as child;
use crate::child::runner::PreStart;
use crate::error::Closed;
use crate::local::frame;
use crate::nursery::core::Core;
use crate::panic::Payload;

/// Why [`Nursery::start`](crate::Nursery::start) did not return the child's value.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::nursery(|n| async move {
///     let err = n
///         .start(|task_status: tokio_nursery::Started<u16>| async move {
///             let _held = task_status; // never signalled: the bind failed first
///             Err("bind failed".to_string())
///         })
///         .await
///         .unwrap_err();
///     assert_eq!(err.failure(), Some(&"bind failed".to_string()));
///     Ok::<_, String>(()) // the nursery itself was not cancelled
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError<E> {
    /// The child returned this error before signalling; the nursery was not cancelled.
    #[error("{0}")]
    Failed(E),
    /// The child returned, or dropped its [`Started`] signal, without using it.
    #[error("the child returned or dropped its start signal without signalling")]
    NotStarted,
    /// The nursery had finished.
    #[error(transparent)]
    Closed(#[from] Closed),
    /// The nursery's children were cancelled before the child signalled; it was cancelled on
    /// arrival.
    #[error("the nursery was cancelled before the child signalled that it started")]
    NurseryCancelled,
}

impl<E> StartError<E> {
    /// The child's own error, if that is what happened.
    ///
    /// ```
    /// let err: tokio_nursery::StartError<&str> = tokio_nursery::StartError::Failed("x");
    /// assert_eq!(err.failure(), Some(&"x"));
    /// ```
    pub fn failure(&self) -> Option<&E> {
        match self {
            StartError::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The child's own error, if that is what happened.
    ///
    /// ```
    /// let err: tokio_nursery::StartError<&str> = tokio_nursery::StartError::NotStarted;
    /// assert_eq!(err.into_failure(), None);
    /// ```
    pub fn into_failure(self) -> Option<E> {
        match self {
            StartError::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// `true` if the child never signalled and did not fail either.
    ///
    /// ```
    /// assert!(tokio_nursery::StartError::<()>::NotStarted.is_not_started());
    /// ```
    pub fn is_not_started(&self) -> bool {
        matches!(self, StartError::NotStarted)
    }

    /// `true` if the nursery had finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let h = tokio_nursery::nursery(|n| async move { Ok::<_, String>(n.handle()) }).await.unwrap();
    /// let err = h.start(|s: tokio_nursery::Started<()>| async move { s.started(()); Ok(()) }).await;
    /// assert!(err.unwrap_err().is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, StartError::Closed(_))
    }
}

enum SlotState<V, E> {
    Waiting,
    Started(V),
    NurseryCancelled,
    Failed(E),
    Panicked(Payload),
    NotStarted,
    ChildCancelled,
    Taken,
}

struct Slot<V, E> {
    state: Mutex<SlotState<V, E>>,
    waker: AtomicWaker,
    node: Arc<Node>,
    group: Arc<Node>,
    /// Keeps the caller's scope waiting for the child until it signals or ends.
    token: Mutex<Option<LiveToken>>,
    /// The signal was dropped unused. The outcome is still decided by how the child ends (its
    /// own async block drops the signal as it returns an error or unwinds a panic).
    signal_dropped: AtomicBool,
}

impl<V, E> Slot<V, E> {
    fn state(&self) -> MutexGuard<'_, SlotState<V, E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves `Waiting` to `next`; returns what could not be stored (already decided).
    fn settle(&self, next: SlotState<V, E>) -> Result<(), SlotState<V, E>> {
        {
            let mut state = self.state();
            if !matches!(*state, SlotState::Waiting) {
                return Err(next);
            }
            *state = next;
        }
        let token = self
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(token);
        self.waker.wake();
        Ok(())
    }
}

impl<V: Send + 'static, E: Send + 'static> PreStart<E> for Slot<V, E> {
    fn failed(&self, error: E) -> Option<E> {
        match self.settle(SlotState::Failed(error)) {
            Ok(()) => None,
            Err(SlotState::Failed(error)) => Some(error),
            Err(_) => None,
        }
    }

    fn panicked(&self, payload: Payload) -> Option<Payload> {
        match self.settle(SlotState::Panicked(payload)) {
            Ok(()) => None,
            Err(SlotState::Panicked(payload)) => Some(payload),
            Err(_) => None,
        }
    }

    fn ended(&self, cancelled: bool) {
        let next = if cancelled && !self.signal_dropped.load(SeqCst) {
            SlotState::ChildCancelled
        } else {
            SlotState::NotStarted
        };
        let _ = self.settle(next);
    }
}

trait Signal<V>: Send + Sync {
    fn started(&self, value: V);
    fn dropped(&self);
}

impl<V: Send + 'static, E: Send + 'static> Signal<V> for Slot<V, E> {
    fn started(&self, value: V) {
        let next = if self.group.is_cancelled() {
            SlotState::NurseryCancelled
        } else {
            SlotState::Started(value)
        };
        // Move before settling: once `start` returns, the child is governed by the nursery.
        self.node.reparent(&self.group);
        let _ = self.settle(next);
    }

    fn dropped(&self) {
        self.signal_dropped.store(true, SeqCst);
        if matches!(*self.state(), SlotState::Waiting) {
            self.node.cancel(CancelReason::explicit(Some(
                "dropped its start signal without signalling".into(),
            )));
        }
    }
}

/// The one-shot signal a child of [`Nursery::start`](crate::Nursery::start) uses to say it is
/// ready (trio's `task_status`). Consumed by [`started`](Self::started), so it cannot be used
/// twice; dropping it unused makes `start` return [`StartError::NotStarted`] and cancels the
/// child.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::nursery(|n| async move {
///     let port = n
///         .start(|task_status: tokio_nursery::Started<u16>| async move {
///             task_status.started(8080);
///             Ok(())
///         })
///         .await
///         .unwrap();
///     assert_eq!(port, 8080);
///     Ok::<_, String>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use = "dropping the signal without calling `started` makes `start` fail and cancels the child"]
pub struct Started<V> {
    signal: Option<Arc<dyn Signal<V>>>,
}

impl<V> fmt::Debug for Started<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("used", &self.signal.is_none())
            .finish()
    }
}

impl<V> Started<V> {
    /// Signals that the child is ready: `start` returns `value`, and the child goes on as a
    /// child of the nursery.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
    ///     n.start(|s| async move { s.started(()); Ok(()) }).await.unwrap();
    ///     Ok::<_, String>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn started(mut self, value: V) {
        if let Some(signal) = self.signal.take() {
            signal.started(value);
        }
    }
}

impl<V> Drop for Started<V> {
    fn drop(&mut self) {
        if let Some(signal) = self.signal.take() {
            signal.dropped();
        }
    }
}

enum StartState<V, E, F> {
    Init(F),
    Waiting(Arc<Slot<V, E>>),
    Parked,
    Done,
}

/// The future returned by [`Nursery::start`](crate::Nursery::start) and
/// [`NurseryHandle::start`](crate::NurseryHandle::start).
///
/// # Cancel safety
///
/// Dropping it before the child signalled cancels the child; the caller's enclosing scope still
/// waits for the child to unwind. After the signal, dropping it only loses the value.
///
/// # Drop behavior
///
/// As above; the child never outlives the caller's scope without having signalled.
///
/// # Panics
///
/// Resumes a panic of the child that happened before it signalled.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::nursery(|n| async move {
///     let fut: tokio_nursery::Start<u8, String, _> = n.start(|s| async move { s.started(1); Ok(()) });
///     assert_eq!(fut.await.unwrap(), 1);
///     Ok::<_, String>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use = "start does nothing unless awaited"]
pub struct Start<V, E: fmt::Display + Send + 'static, F> {
    core: Arc<Core<E>>,
    name: Option<Arc<str>>,
    /// Where `start` was called.
    location: Option<&'static Location<'static>>,
    state: StartState<V, E, F>,
    /// Started through a `NurseryHandle`: the child's `Local` bindings follow `handle_locals`.
    via_handle: bool,
}

impl<V, E: fmt::Display + Send + 'static, F> fmt::Debug for Start<V, E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Start")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<V, E: fmt::Display + Send + 'static, F> Start<V, E, F> {
    pub(crate) fn new(core: Arc<Core<E>>, name: Option<Arc<str>>, init: F) -> Self {
        Start {
            core,
            name,
            location: None,
            state: StartState::Init(init),
            via_handle: false,
        }
    }

    /// Records where the user's code called `start`, shown in snapshots of the tree.
    pub(crate) fn located(mut self, location: &'static Location<'static>) -> Self {
        self.location = Some(location);
        self
    }

    /// Marks a start made through a `NurseryHandle` (DESIGN §7: which bindings it carries).
    pub(crate) fn through_handle(mut self) -> Self {
        self.via_handle = true;
        self
    }
}

impl<V, E: fmt::Display + Send + 'static, F> Unpin for Start<V, E, F> {}

impl<V, E, F, Fut> Future for Start<V, E, F>
where
    V: Send + 'static,
    E: fmt::Display + Send + 'static,
    F: FnOnce(Started<V>) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
{
    type Output = Result<V, StartError<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.state, StartState::Done) {
                StartState::Init(init) => {
                    // Never start work in a cancelled context.
                    if context::current_is_cancelled() {
                        context::commit_current_unwinding();
                        this.state = StartState::Parked;
                        return Poll::Pending;
                    }
                    if !this.core.try_join() {
                        return Poll::Ready(Err(StartError::Closed(Closed)));
                    }
                    let caller = context::current();
                    let node = Node::new(NodeKind::Child, this.name.clone());
                    if let Some(location) = this.location {
                        node.set_location(location);
                    }
                    node.attach(caller.as_ref());
                    let slot = Arc::new(Slot {
                        state: Mutex::new(SlotState::Waiting),
                        waker: AtomicWaker::new(),
                        node: Arc::clone(&node),
                        group: Arc::clone(this.core.group()),
                        token: Mutex::new(LiveToken::on(caller.as_ref())),
                        signal_dropped: AtomicBool::new(false),
                    });
                    let started = Started {
                        signal: Some(Arc::clone(&slot) as Arc<dyn Signal<V>>),
                    };
                    let fut = init(started);
                    let pre_start: Arc<dyn PreStart<E>> = Arc::clone(&slot) as _;
                    if this.via_handle {
                        let locals = this.core.handle_locals(|| caller);
                        frame::enter(locals, || {
                            child::spawn_joined(&this.core, node, fut, pre_start);
                        });
                    } else {
                        child::spawn_joined(&this.core, node, fut, pre_start);
                    }
                    this.state = StartState::Waiting(slot);
                }
                StartState::Waiting(slot) => {
                    slot.waker.register(cx.waker());
                    // Decide under one lock: a child settling between a take and a put-back
                    // would find the slot taken and its outcome would be lost.
                    let outcome = {
                        let mut state = slot.state();
                        if matches!(*state, SlotState::Waiting) {
                            None
                        } else {
                            Some(std::mem::replace(&mut *state, SlotState::Taken))
                        }
                    };
                    let Some(outcome) = outcome else {
                        this.state = StartState::Waiting(slot);
                        return Poll::Pending;
                    };
                    let out = match outcome {
                        SlotState::Waiting => unreachable!("checked above"),
                        SlotState::Started(value) => Ok(value),
                        SlotState::NurseryCancelled => Err(StartError::NurseryCancelled),
                        SlotState::Failed(error) => Err(StartError::Failed(error)),
                        SlotState::Panicked(payload) => std::panic::resume_unwind(payload),
                        SlotState::NotStarted => Err(StartError::NotStarted),
                        SlotState::ChildCancelled | SlotState::Taken => {
                            // Cancelled by the caller's scope: that scope absorbs and drops us.
                            context::commit_current_unwinding();
                            this.state = StartState::Parked;
                            return Poll::Pending;
                        }
                    };
                    return Poll::Ready(out);
                }
                StartState::Parked => {
                    this.state = StartState::Parked;
                    return Poll::Pending;
                }
                StartState::Done => panic!("`Start` polled after completion"),
            }
        }
    }
}

impl<V, E: fmt::Display + Send + 'static, F> Drop for Start<V, E, F> {
    fn drop(&mut self) {
        if let StartState::Waiting(slot) = &self.state {
            if matches!(*slot.state(), SlotState::Waiting) {
                slot.node.cancel(CancelReason::explicit(Some(
                    "start() was dropped before the child signalled".into(),
                )));
            }
        }
    }
}
