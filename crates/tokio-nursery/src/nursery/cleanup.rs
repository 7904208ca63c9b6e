//! Running one deferred cleanup: shielded, bounded by the cleanup timeout, panics caught, the
//! outcome recorded in the nursery's core. Used by the nursery future and by its detached finisher.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::cancel::context;
use crate::cancel::run::Run;
use crate::cancel::scope::CancelScope;
use crate::cancel::tree::NodeKind;
use crate::nursery::core::{CleanupFuture, Core, Source};
use crate::panic;

pub(crate) struct CleanupRunner<E: 'static> {
    run: Option<Pin<Box<Run<CleanupFuture<E>>>>>,
    core: Arc<Core<E>>,
}

impl<E> CleanupRunner<E>
where
    E: std::fmt::Display + Send + 'static,
{
    pub(crate) fn new(core: &Arc<Core<E>>, cleanup: CleanupFuture<E>) -> Self {
        let mut scope = CancelScope::of_kind(NodeKind::Cleanup, None).with_shield(true);
        if let Some(timeout) = core.cleanup_timeout {
            scope = scope.with_timeout(timeout);
        }
        CleanupRunner {
            run: Some(Box::pin(scope.run(cleanup))),
            core: Arc::clone(core),
        }
    }
}

impl<E> Future for CleanupRunner<E>
where
    E: std::fmt::Display + Send + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(run) = this.run.as_mut() else {
            return Poll::Ready(());
        };
        // The cleanup's scope hangs under the nursery node: shielded from its cancellation, but
        // visible in the tree and bounded by its own deadline only.
        let polled = panic::catch(|| context::enter(&this.core.nursery, || run.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Some(Ok(())))) => {}
            Ok(Poll::Ready(Some(Err(error)))) => this.core.fail_member(error, Source::Cleanup),
            Ok(Poll::Ready(None)) => this.core.record_cleanup_timeout(),
            Err(payload) => this.core.record_panic(payload, Source::Cleanup),
        }
        let run = this.run.take();
        if let Err(payload) = panic::catch(move || drop(run)) {
            this.core.record_panic(payload, Source::Cleanup);
        }
        Poll::Ready(())
    }
}

impl<E> std::fmt::Debug for CleanupRunner<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanupRunner")
            .field("done", &self.run.is_none())
            .finish()
    }
}
