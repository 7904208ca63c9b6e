//! Finishing a nursery whose future was dropped by foreign code.
//!
//! Nothing can be awaited in `Drop`, so a task spawned on the runtime captured at the first poll
//! waits for the body's orphans and the children, runs the pending cleanups (shielded, bounded),
//! reports every error and panic through `tracing`, and only then releases the nursery's live
//! token: the nearest enclosing scope waits for all of it.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use crate::cancel::tree::LiveToken;
use crate::nursery::cleanup::CleanupRunner;
use crate::nursery::core::{report_suppressed, Core};
use crate::panic;

struct Finisher<E: std::fmt::Display + Send + 'static> {
    core: Arc<Core<E>>,
    body_member: bool,
    cleanup: Option<CleanupRunner<E>>,
    token: Option<LiveToken>,
    done: bool,
}

pub(crate) fn finish<E>(
    core: Arc<Core<E>>,
    body_member: bool,
    cleanup: Option<CleanupRunner<E>>,
    token: Option<LiveToken>,
) where
    E: std::fmt::Display + Send + 'static,
{
    let runtime = core.runtime();
    let finisher = Finisher {
        core,
        body_member,
        cleanup,
        token,
        done: false,
    };
    // On a runtime that is shutting down the task is dropped at once, and without a runtime it
    // cannot be spawned at all; either way `Finisher::drop` reports.
    match runtime {
        Some(runtime) => drop(runtime.spawn(finisher.run())),
        None => drop(finisher),
    }
}

impl<E: std::fmt::Display + Send + 'static> Finisher<E> {
    async fn run(mut self) {
        let core = Arc::clone(&self.core);
        poll_fn(|cx| {
            core.body.register_owner(cx.waker());
            if core.body.live() > 0 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        if std::mem::take(&mut self.body_member) {
            core.leave();
        }
        poll_fn(|cx| {
            core.register(cx.waker());
            if core.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.await;
        }
        while let Some(cleanup) = core.pop_cleanup() {
            CleanupRunner::new(&core, cleanup).await;
        }
        let outcome = core.finalize();
        report_suppressed(
            &core.name,
            &outcome.errors,
            "the nursery was dropped before it completed",
        );
        if let Some(payload) = outcome.panic {
            tracing::error!(
                nursery = ?core.name,
                panic = %panic::message(&payload),
                "panic inside a nursery that was dropped before it completed"
            );
            drop(panic::catch(move || drop(payload)));
        }
        core.detach_nodes();
        self.token = None;
        self.done = true;
    }
}

impl<E: std::fmt::Display + Send + 'static> Drop for Finisher<E> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::mem::take(&mut self.body_member) {
            self.core.leave();
        }
        self.core.finalize_and_report(
            "a dropped nursery could not be finished (no runtime, or runtime shutting down)",
        );
        self.core.detach_nodes();
    }
}
