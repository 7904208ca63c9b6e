//! State shared by a nursery's future, its handles, its children and its detached finisher.
//!
//! Fields and when they change:
//!   members   - 1 for the body while it runs, +1 per child from `spawn` until the child's task
//!               ends. 0 means closed: the body and every child are done. Once 0 it never rises
//!               again (`try_join` refuses), so "closed" is final.
//!   state     - failures in order, the first panic, pending cleanups, cleanup timeouts.
//!               `finalized` is set once, when the outcome is taken; after it, `fail` and `defer`
//!               are refused so nothing recorded can be lost.
//!   cancelled_inside - set when a child or the body was dropped by cancellation (rule 2).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{OnceLock, PoisonError};
use std::task::Waker;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::cancel::context;
use crate::cancel::reason::CancelReason;
use crate::cancel::tree::{Node, NodeKind};
use crate::child::roster::Roster;
use crate::error::{CleanupTimedOut, Closed};
use crate::local::frame::{self, Link};
use crate::nursery::policy::{Limit, Policy};
use crate::panic::{self, Payload};
use crate::sync::{Arc, AtomicBool, AtomicUsize, AtomicWaker, Mutex, MutexGuard};

pub(crate) type CleanupFuture<E> = Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'static>>;

/// Where a failure came from; decides the cancel reason.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Body,
    Child(Option<Arc<str>>),
    Cleanup,
    Handle,
}

pub(crate) struct Core<E> {
    pub(super) name: Option<Arc<str>>,
    /// Grace nurseries only: the scope node that receives outside cancellation (and drains)...
    pub(super) grace_scope: Option<Arc<Node>>,
    /// ...and the gate under it, above `nursery`, that cancels hard when the drain ends.
    pub(super) gate: Option<Arc<Node>>,
    /// Cancelled on failure, `fail`, or foreign drop; parent of `body` and `group`.
    pub(super) nursery: Arc<Node>,
    /// The body runs under this node.
    pub(super) body: Arc<Node>,
    /// Spawned children hang under this node; `Nursery::cancel` cancels it.
    pub(super) group: Arc<Node>,
    /// The slots of spawned and borrowing children (see `roster.rs`).
    pub(super) roster: Arc<Roster>,
    /// The runtime children and the finisher are spawned on: captured when the nursery is built
    /// inside a runtime, or at its first poll.
    runtime: OnceLock<Handle>,
    /// The `Local` bindings in effect at the first poll, for handles used from outside the tree.
    opened_locals: OnceLock<Option<Link>>,
    pub(super) cleanup_timeout: Option<Duration>,
    /// Supervisor nurseries: a child's or cleanup's failure is collected without cancelling.
    supervisor: bool,
    /// Limited nurseries: the bound on running children (`policy.rs`).
    limit: Option<Limit>,
    members: AtomicUsize,
    waker: AtomicWaker,
    cancelled_inside: AtomicBool,
    state: Mutex<State<E>>,
}

struct State<E> {
    errors: Vec<E>,
    panic: Option<Payload>,
    cleanups: Vec<CleanupFuture<E>>,
    cleanup_timeouts: Vec<CleanupTimedOut>,
    /// Supervisor nurseries: a failure that cancels (the body's, or `fail`) was recorded.
    cancelling: bool,
    finalized: bool,
}

/// What a finished nursery collected.
pub(crate) struct Outcome<E> {
    pub(crate) errors: Vec<E>,
    pub(crate) panic: Option<Payload>,
    pub(crate) cleanup_timeouts: Vec<CleanupTimedOut>,
}

impl<E> Core<E>
where
    E: fmt::Display + Send + 'static,
{
    /// Builds the nursery's nodes, linked to each other but not yet to an enclosing scope: that
    /// happens at the first poll (`attach`), where the enclosing scope becomes known.
    #[cfg(all(test, loom))]
    pub(crate) fn new(
        name: Option<Arc<str>>,
        cleanup_timeout: Option<Duration>,
        grace: Option<Duration>,
    ) -> Arc<Self> {
        Self::with_policy(name, cleanup_timeout, grace, &Policy::default())
    }

    /// `new`, with the builder's completion policy and limit.
    pub(crate) fn with_policy(
        name: Option<Arc<str>>,
        cleanup_timeout: Option<Duration>,
        grace: Option<Duration>,
        policy: &Policy,
    ) -> Arc<Self> {
        let (grace_scope, gate) = match grace {
            Some(grace) => {
                let scope = Node::new(NodeKind::Scope, name.clone());
                let gate = Node::new(NodeKind::Gate, None);
                gate.attach(Some(&scope));
                scope.set_grace(grace, Arc::clone(&gate));
                (Some(scope), Some(gate))
            }
            None => (None, None),
        };
        let nursery = Node::new(NodeKind::Nursery, name.clone());
        nursery.attach(gate.as_ref());
        let body = Node::new(NodeKind::Body, None);
        body.attach(Some(&nursery));
        let group = Node::new(NodeKind::Children, None);
        group.attach(Some(&nursery));
        let runtime = OnceLock::new();
        if let Ok(handle) = Handle::try_current() {
            let _ = runtime.set(handle);
        }
        Arc::new(Core {
            name,
            grace_scope,
            gate,
            nursery,
            body,
            roster: Roster::new(Arc::clone(&group)),
            group,
            runtime,
            opened_locals: OnceLock::new(),
            cleanup_timeout,
            supervisor: policy.supervisor,
            limit: policy.limit.map(Limit::new),
            members: AtomicUsize::new(1),
            waker: AtomicWaker::new(),
            cancelled_inside: AtomicBool::new(false),
            state: Mutex::new(State {
                errors: Vec::new(),
                panic: None,
                cleanups: Vec::new(),
                cleanup_timeouts: Vec::new(),
                cancelling: false,
                finalized: false,
            }),
        })
    }

    pub(crate) fn name(&self) -> &Option<Arc<str>> {
        &self.name
    }

    /// The node spawned children hang under.
    pub(crate) fn group(&self) -> &Arc<Node> {
        &self.group
    }

    pub(crate) fn roster(&self) -> &Arc<Roster> {
        &self.roster
    }

    /// The bound on running children, for limited nurseries.
    pub(crate) fn limit(&self) -> Option<&Limit> {
        self.limit.as_ref()
    }

    /// `Nursery::cancel` and `NurseryHandle::cancel`: cancels the children, not the body.
    pub(super) fn cancel_children(&self) {
        self.group.cancel(CancelReason::explicit(None));
    }

    /// Whether `cancel()` was called on the children or the whole nursery was cancelled.
    pub(super) fn cancel_called(&self) -> bool {
        self.group.cancel_called() || self.nursery.cancel_called()
    }

    /// The outermost node: the grace scope, or the nursery node.
    pub(crate) fn top(&self) -> &Arc<Node> {
        self.grace_scope.as_ref().unwrap_or(&self.nursery)
    }

    /// Links the nursery under the enclosing scope (first poll) and recomputes the cancellation
    /// of everything already inside it.
    pub(crate) fn attach(&self, parent: Option<&Arc<Node>>) {
        self.top().reattach(parent);
        let _ = self.opened_locals.set(frame::current());
        if let Ok(handle) = Handle::try_current() {
            let _ = self.runtime.set(handle);
        }
    }

    /// The `Local` bindings a child, start or cleanup registered through a `NurseryHandle`
    /// carries (DESIGN §7): the spawner's, when it runs inside this nursery's tree (`caller`
    /// gives the node it runs under); else those in effect where the nursery was opened.
    pub(crate) fn handle_locals(&self, caller: impl FnOnce() -> Option<Arc<Node>>) -> Option<Link> {
        let current = frame::current();
        let opened = self.opened_locals.get().cloned().flatten();
        if frame::same(current.as_ref(), opened.as_ref()) {
            return current;
        }
        match caller() {
            Some(node) if self.contains(&node) => current,
            _ => opened,
        }
    }

    /// `handle_locals` for a spawn from the current context.
    pub(crate) fn handle_locals_here(&self) -> Option<Link> {
        self.handle_locals(context::current)
    }

    /// Whether `node` is inside this nursery (its top node or below).
    fn contains(&self, node: &Arc<Node>) -> bool {
        let top = self.top();
        let mut next = Some(Arc::clone(node));
        while let Some(node) = next {
            if Arc::ptr_eq(&node, top) {
                return true;
            }
            next = node.parent();
        }
        false
    }

    /// The runtime to spawn on: the one captured, else the current one.
    pub(crate) fn runtime(&self) -> Option<Handle> {
        self.runtime_ref().cloned()
    }

    /// `runtime`, borrowed: spawning a child needs no handle clone.
    pub(crate) fn runtime_ref(&self) -> Option<&Handle> {
        if self.runtime.get().is_none() {
            let handle = Handle::try_current().ok()?;
            let _ = self.runtime.set(handle);
        }
        self.runtime.get()
    }

    fn state(&self) -> MutexGuard<'_, State<E>> {
        // No user code runs under this lock (errors are rendered before it is taken, futures are
        // moved in and out but never polled or dropped under it).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a member (a child) unless the nursery is closed.
    pub(crate) fn try_join(&self) -> bool {
        let mut members = self.members.load(SeqCst);
        loop {
            if members == 0 {
                return false;
            }
            match self
                .members
                .compare_exchange_weak(members, members + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => members = now,
            }
        }
    }

    /// A member (the body or a child) is done.
    pub(crate) fn leave(&self) {
        if self.members.fetch_sub(1, SeqCst) == 1 {
            self.waker.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.members.load(SeqCst) == 0
    }

    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    pub(crate) fn mark_cancelled_inside(&self) {
        self.cancelled_inside.store(true, SeqCst);
    }

    pub(crate) fn cancelled_inside(&self) -> bool {
        self.cancelled_inside.load(SeqCst)
    }

    /// Records a failure; the first one cancels the nursery with a reason naming it. `Err(error)`
    /// once the outcome was taken (the caller reports it): an accepted failure is never lost.
    pub(crate) fn fail(&self, error: E, source: Source) -> Result<(), E> {
        // Render outside the lock: `Display` is user code, and may even panic.
        let message = panic::catch(|| error.to_string())
            .unwrap_or_else(|_| String::from("(the error's Display implementation panicked)"));
        let first = {
            let mut state = self.state();
            if state.finalized {
                return Err(error);
            }
            // Decided under the lock, so the reason always names the first failure that cancels:
            // `errors[0]`, except in a supervisor, where children's failures do not cancel.
            let first = if self.supervisor {
                let cancels = matches!(source, Source::Body | Source::Handle);
                let first = cancels && !state.cancelling && state.panic.is_none();
                state.cancelling |= cancels;
                first
            } else {
                state.errors.is_empty() && state.panic.is_none()
            };
            state.errors.push(error);
            first
        };
        if first {
            let reason = reason(source, message);
            tracing::debug!(nursery = ?self.name, %reason, "nursery failing");
            self.nursery.cancel(reason);
        }
        Ok(())
    }

    /// `fail` for failures of the nursery's own members, which always happen before the outcome
    /// is taken; reported rather than dropped should that ever not hold.
    pub(crate) fn fail_member(&self, error: E, source: Source) {
        if let Err(error) = self.fail(error, source) {
            report_suppressed(&self.name, &[error], "failure after the nursery finished");
        }
    }

    /// `NurseryHandle::fail`: accepted until the outcome is taken, so a failure reported while
    /// cleanups still run (a driver callback firing during `disconnect()`) is not lost.
    pub(crate) fn fail_from_handle(&self, error: E) -> Result<(), Closed> {
        self.fail(error, Source::Handle).map_err(|error| {
            report_suppressed(&self.name, &[error], "fail() on a finished nursery");
            Closed
        })
    }

    /// Records a panic; the first one is re-raised when the nursery completes.
    pub(crate) fn record_panic(&self, payload: Payload, source: Source) {
        let message = panic::message(&payload);
        let later = {
            let mut state = self.state();
            if state.panic.is_none() && !state.finalized {
                state.panic = Some(payload);
                None
            } else {
                Some(payload)
            }
        };
        if let Some(payload) = later {
            tracing::error!(
                nursery = ?self.name,
                panic = %panic::message(&payload),
                "panic suppressed by an earlier panic"
            );
            drop(panic::catch(move || drop(payload)));
        }
        let reason = match source {
            Source::Child(child) => CancelReason::ChildPanicked { child, message },
            Source::Body => CancelReason::BodyPanicked { message },
            Source::Cleanup => CancelReason::CleanupFailed {
                message: format!("panicked: {message}"),
            },
            Source::Handle => CancelReason::Failed { message },
        };
        self.nursery.cancel(reason);
    }

    pub(crate) fn push_cleanup(&self, cleanup: CleanupFuture<E>) -> Result<(), CleanupFuture<E>> {
        let mut state = self.state();
        if state.finalized {
            return Err(cleanup);
        }
        state.cleanups.push(cleanup);
        Ok(())
    }

    pub(crate) fn has_cleanups(&self) -> bool {
        !self.state().cleanups.is_empty()
    }

    /// The most recently registered cleanup not run yet.
    pub(crate) fn pop_cleanup(&self) -> Option<CleanupFuture<E>> {
        self.state().cleanups.pop()
    }

    pub(crate) fn record_cleanup_timeout(&self) {
        let timeout = self.cleanup_timeout.unwrap_or(Duration::MAX);
        let report = CleanupTimedOut::new(self.name.clone(), timeout);
        tracing::warn!(nursery = ?self.name, ?timeout, "{report}");
        self.state().cleanup_timeouts.push(report);
    }

    pub(crate) fn cleanup_timeouts(&self) -> Vec<CleanupTimedOut> {
        self.state().cleanup_timeouts.clone()
    }

    /// Takes everything collected; afterwards `fail` and `defer` are refused.
    pub(crate) fn finalize(&self) -> Outcome<E> {
        let mut state = self.state();
        state.finalized = true;
        Outcome {
            errors: std::mem::take(&mut state.errors),
            panic: state.panic.take(),
            cleanup_timeouts: state.cleanup_timeouts.clone(),
        }
    }

    /// Unlinks the three nodes once everything inside has ended.
    pub(crate) fn detach_nodes(&self) {
        self.group.detach();
        self.body.detach();
        self.nursery.detach();
        if let (Some(gate), Some(scope)) = (&self.gate, &self.grace_scope) {
            gate.detach();
            scope.detach();
        }
    }

    /// The node whose cancellation `cancelled()` reports: the grace scope (which fires when the
    /// drain starts) or the nursery itself.
    pub(crate) fn watched(&self) -> &Node {
        self.top()
    }
}

fn reason(source: Source, message: String) -> CancelReason {
    match source {
        Source::Body => CancelReason::BodyFailed { message },
        Source::Child(child) => CancelReason::ChildFailed { child, message },
        Source::Cleanup => CancelReason::CleanupFailed { message },
        Source::Handle => CancelReason::Failed { message },
    }
}

impl<E> fmt::Debug for Core<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("members", &self.members.load(SeqCst))
            .field("nursery", &self.nursery)
            .finish_non_exhaustive()
    }
}

impl<E: fmt::Display + Send + 'static> Core<E> {
    /// Takes the outcome of a nursery that will never return one (dropped before its first
    /// poll, or its finisher could not run) and reports it: afterwards `fail` and `defer` are
    /// refused, so nothing is accepted and then lost.
    pub(crate) fn finalize_and_report(&self, why: &str) {
        let outcome = self.finalize();
        report_suppressed(&self.name, &outcome.errors, why);
        if let Some(payload) = outcome.panic {
            tracing::error!(nursery = ?self.name, panic = %panic::message(&payload), "{why}");
            drop(panic::catch(move || drop(payload)));
        }
        let pending = std::mem::take(&mut self.state().cleanups);
        if !pending.is_empty() {
            tracing::error!(nursery = ?self.name, count = pending.len(), "cleanups not run: {why}");
        }
        drop(panic::catch(move || drop(pending)));
    }
}

/// Reports errors that lost to an earlier failure or to a panic.
pub(crate) fn report_suppressed<E: fmt::Display>(name: &Option<Arc<str>>, errors: &[E], why: &str) {
    for error in errors {
        let error = panic::catch(|| error.to_string())
            .unwrap_or_else(|_| String::from("(the error's Display implementation panicked)"));
        tracing::error!(nursery = ?name, %error, "nursery error suppressed: {why}");
    }
}
