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
//!
//! This file imports nothing of the crate: the spawn paths (`crate::child::handle`) and the
//! nursery's state (`core.rs`) both use it. The spawns that wait for or refuse a slot are in
//! `backpressure.rs`.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

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
        // A free permit means nobody waits (the semaphore hands released permits to waiters
        // directly), so taking it does not jump the line; and it saves boxing a wait.
        if let Some(permit) = self.try_permit() {
            return Limited::holding(permit, fut);
        }
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
