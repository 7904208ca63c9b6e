//! Children that return a value: `spawn_returning` wraps the child's future so its `Ok` value
//! lands in a slot that `ChildHandle::join` awaits. Errors still go to the nursery (that is what
//! cancels the siblings); the handle only learns that there is no value, and why.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::cancel::reason::CancelReason;
use crate::child::link::HandleLink;

/// Why [`ChildHandle::join`](crate::ChildHandle::join) has no value: the child did not complete
/// successfully. Its error or panic went to the nursery, which reports it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = tokio_nursery::nursery(|n| async move {
///     let child = n.spawn_returning(std::future::pending::<Result<u8, String>>());
///     child.cancel();
///     let err = child.join().await.unwrap_err();
///     assert!(err.is_cancelled());
///     Ok::<_, String>(())
/// })
/// .await;
/// assert!(out.is_ok());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The child returned an error; the nursery reports it.
    #[error("the child failed; its error is reported by its nursery")]
    Failed,
    /// The child panicked; the nursery re-raises the panic.
    #[error("the child panicked; its nursery re-raises the panic")]
    Panicked,
    /// The child was cancelled (or its nursery was closed and it never ran).
    #[error("the child was {0}")]
    Cancelled(CancelReason),
    /// Another clone of the handle already joined the child and took its value.
    #[error("the child's value was already taken by another join")]
    AlreadyJoined,
}

impl JoinError {
    /// `true` if the child was cancelled.
    ///
    /// ```
    /// assert!(!tokio_nursery::JoinError::Failed.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled(_))
    }

    /// `true` if the child returned an error.
    ///
    /// ```
    /// assert!(tokio_nursery::JoinError::Failed.is_failed());
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self, JoinError::Failed)
    }

    /// `true` if the child panicked.
    ///
    /// ```
    /// assert!(tokio_nursery::JoinError::Panicked.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked)
    }
}

enum SlotState<T> {
    Waiting,
    Value(T),
    Failed,
    /// Dropped without a value; `true` if by a panic unwinding through it.
    Gone(bool),
    Taken,
}

pub(crate) struct ValueSlot<T> {
    state: Mutex<SlotState<T>>,
    waker: AtomicWaker,
}

impl<T> ValueSlot<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ValueSlot {
            state: Mutex::new(SlotState::Waiting),
            waker: AtomicWaker::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, next: SlotState<T>) {
        {
            let mut state = self.state();
            if matches!(*state, SlotState::Waiting) {
                *state = next;
            }
        }
        self.waker.wake();
    }
}

/// Wraps a value-returning child: stores its `Ok` value, forwards its error to the nursery.
pub(crate) fn deliver<T, E, F>(
    slot: Arc<ValueSlot<T>>,
    fut: F,
) -> impl Future<Output = Result<(), E>>
where
    F: Future<Output = Result<T, E>>,
{
    let guard = SettleOnDrop(slot);
    async move {
        let guard = guard;
        match fut.await {
            Ok(value) => {
                guard.0.settle(SlotState::Value(value));
                Ok(())
            }
            Err(error) => {
                guard.0.settle(SlotState::Failed);
                Err(error)
            }
        }
    }
}

/// Dropped without a value: cancelled (before or while running) or unwound by a panic.
struct SettleOnDrop<T>(Arc<ValueSlot<T>>);

impl<T> Drop for SettleOnDrop<T> {
    fn drop(&mut self) {
        self.0.settle(SlotState::Gone(std::thread::panicking()));
    }
}

/// The future returned by [`ChildHandle::join`](crate::ChildHandle::join).
///
/// # Cancel safety
///
/// Cancel safe: dropping it before completion loses nothing; a clone of the handle can join
/// again. Once one join has returned the value, later joins get [`JoinError::AlreadyJoined`].
///
/// # Drop behavior
///
/// Dropping it does not affect the child.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::nursery(|n| async move {
///     let j: tokio_nursery::Join<u8> = n.spawn_returning(async { Ok::<_, String>(1) }).join();
///     assert_eq!(j.await, Ok(1));
///     Ok::<_, String>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Join<T> {
    slot: Option<Arc<ValueSlot<T>>>,
    child: HandleLink,
}

impl<T> std::fmt::Debug for Join<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (cancelled, _, finished) = self.child.status();
        f.debug_struct("Join")
            .field("cancelled", &cancelled)
            .field("finished", &finished)
            .finish()
    }
}

impl<T> Join<T> {
    pub(crate) fn new(slot: Option<Arc<ValueSlot<T>>>, child: HandleLink) -> Self {
        Join { slot, child }
    }
}

impl<T> Unpin for Join<T> {}

impl<T> Future for Join<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let cancelled = |child: &HandleLink| {
            JoinError::Cancelled(child.status().1.unwrap_or(CancelReason::explicit(Some(
                "the nursery was closed".into(),
            ))))
        };
        let Some(slot) = self.slot.as_ref() else {
            return Poll::Ready(Err(cancelled(&self.child)));
        };
        slot.waker.register(cx.waker());
        let mut state = slot.state();
        match std::mem::replace(&mut *state, SlotState::Taken) {
            SlotState::Waiting => {
                *state = SlotState::Waiting;
                Poll::Pending
            }
            SlotState::Value(value) => Poll::Ready(Ok(value)),
            SlotState::Failed => Poll::Ready(Err(JoinError::Failed)),
            SlotState::Gone(true) => Poll::Ready(Err(JoinError::Panicked)),
            SlotState::Gone(false) => Poll::Ready(Err(cancelled(&self.child))),
            SlotState::Taken => Poll::Ready(Err(JoinError::AlreadyJoined)),
        }
    }
}
