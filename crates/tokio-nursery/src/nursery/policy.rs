//! Completion policies a builder can give a nursery (DESIGN §7): the supervisor policy (a child's
//! failure is collected, not a reason to cancel) and the concurrency limit.
//!
//! The limit is a fair tokio `Semaphore` with one permit per running child. A child takes its
//! place in line when it is spawned (the semaphore's wait is polled once, synchronously, inside
//! `spawn`), so children start in the order they were spawned, whichever worker thread first
//! polls their task. The permit lives inside the child's future (`Limited`): every way a child
//! ends drops that future, and with it the permit. A child cancelled while it waits is dropped by
//! its runner like any other leaf, which takes it out of the line: it never starts. No new lock
//! or atomic protocol lives here; the semaphore's own is tokio's (and loom-tested there).

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::child::handle::{self as child, ChildHandle};
use crate::error::TrySpawnError;
use crate::nursery::handle::Nursery;

/// What the builder chose; `Policy::default()` is a plain nursery.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// A child's or cleanup's failure does not cancel the nursery.
    pub(crate) supervisor: bool,
    /// At most this many children run at once.
    pub(crate) limit: Option<NonZeroUsize>,
}

/// The running-children bound of a limited nursery.
#[derive(Debug)]
pub(crate) struct Limit {
    semaphore: Arc<Semaphore>,
}

type Wait = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

impl Limit {
    pub(crate) fn new(max: NonZeroUsize) -> Self {
        // tokio caps a semaphore's permits; a limit that high bounds nothing a process can run.
        let permits = max.get().min(Semaphore::MAX_PERMITS);
        Limit {
            semaphore: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Wraps a child: it holds a permit now if one is free, else its place in line is taken now.
    pub(crate) fn queue<F: Future>(&self, fut: F) -> Limited<F> {
        let mut wait: Wait = Box::pin(Arc::clone(&self.semaphore).acquire_owned());
        // Polling once enqueues the waiter (the semaphore keeps FIFO order by first poll); the
        // child's task replaces the no-op waker when it first polls.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match wait.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(permit)) => Limited::holding(permit, fut),
            // The semaphore is never closed; a child that cannot wait runs unbounded rather
            // than never.
            Poll::Ready(Err(_)) => Limited {
                wait: None,
                permit: None,
                fut,
            },
            Poll::Pending => Limited {
                wait: Some(wait),
                permit: None,
                fut,
            },
        }
    }

    /// A permit if one is free and nobody waits for one (`try_spawn`).
    pub(crate) fn try_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.semaphore).try_acquire_owned().ok()
    }

    /// Waits in line for a permit (`spawn_when_ready`). `None` only if the semaphore was closed,
    /// which never happens.
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.semaphore).acquire_owned().await.ok()
    }
}

/// A child of a limited nursery: waits for its permit, then runs `fut` while holding it.
#[pin_project]
pub(crate) struct Limited<F> {
    wait: Option<Wait>,
    permit: Option<OwnedSemaphorePermit>,
    #[pin]
    fut: F,
}

impl<F> Limited<F> {
    pub(crate) fn holding(permit: OwnedSemaphorePermit, fut: F) -> Self {
        Limited {
            wait: None,
            permit: Some(permit),
            fut,
        }
    }

    /// The child's own future, for a spawn that was refused (its place in line is given up).
    pub(crate) fn into_inner(self) -> F {
        self.fut
    }
}

impl<F: Future> Future for Limited<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(wait) = this.wait.as_mut() {
            match wait.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(permit) => {
                    *this.permit = permit.ok();
                    *this.wait = None;
                }
            }
        }
        this.fut.poll(cx)
    }
}

impl<E: std::fmt::Display + Send + 'static> Nursery<'_, E> {
    /// Spawns a child once the nursery's [limit](crate::NurseryBuilder::limit) has a free slot:
    /// waits (in line with the children already waiting) before it spawns, so a producer slows
    /// down to the pace of the children (backpressure). In a nursery without a limit it spawns
    /// at once, as [`spawn`](Self::spawn).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits, nothing was spawned, and `fut` is dropped unpolled.
    /// It waits in the caller's scopes, so a cancelled caller stops waiting.
    ///
    /// # Drop behavior
    ///
    /// Dropping it gives up its place in line.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let start = tokio::time::Instant::now();
    /// tokio_nursery::NurseryBuilder::new()
    ///     .limit(NonZeroUsize::new(2).unwrap())
    ///     .run(|n| async move {
    ///         for _ in 0..4 {
    ///             n.spawn_when_ready(async {
    ///                 tokio::time::sleep(Duration::from_secs(1)).await;
    ///                 Ok::<_, std::io::Error>(())
    ///             })
    ///             .await;
    ///         }
    ///         // The last two had to wait for the first two.
    ///         assert_eq!(start.elapsed(), Duration::from_secs(1));
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub async fn spawn_when_ready<F>(&self, fut: F) -> ChildHandle
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let Some(limit) = self.core().limit() else {
            return self.spawn(fut);
        };
        match limit.permit().await {
            Some(permit) => match child::spawn_holding(self.core(), None, permit, fut) {
                Ok(handle) => handle,
                Err(fut) => self.rejected(None, fut),
            },
            None => self.spawn(fut),
        }
    }

    /// Spawns a child only if the nursery's [limit](crate::NurseryBuilder::limit) has a free
    /// slot and no child waits for one: [`TrySpawnError::Full`] otherwise, and
    /// [`TrySpawnError::Closed`] once the nursery has finished; both give the future back
    /// unpolled. Without a limit only `Closed` can happen.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::NurseryBuilder::new()
    ///     .limit(NonZeroUsize::new(1).unwrap())
    ///     .run(|n| async move {
    ///         let first = n.try_spawn(async { Ok(()) });
    ///         let second = n.try_spawn(async { Ok(()) });
    ///         Ok::<_, String>((first.is_ok(), second.map_err(|e| e.is_full()).unwrap_err()))
    ///     })
    ///     .await;
    /// assert_eq!(out, Ok((true, true)));
    /// # }
    /// ```
    pub fn try_spawn<F>(&self, fut: F) -> Result<ChildHandle, TrySpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let spawned = match self.core().limit() {
            None => child::spawn(self.core(), None, fut),
            Some(limit) => match limit.try_permit() {
                Some(permit) => child::spawn_holding(self.core(), None, permit, fut),
                None => return Err(TrySpawnError::Full(fut)),
            },
        };
        spawned.map_err(TrySpawnError::Closed)
    }
}
