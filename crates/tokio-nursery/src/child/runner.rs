//! The task that drives one child, spawned or borrowing: `ChildTask`.
//!
//! States (same shape as a scope's `Run`), when each is entered and where it can go next:
//!   Running   - the child's future is polled under the child's node (or lazily, as its slot).
//!               Next: `Unwinding` once the child is cancelled, `Draining` once it finished.
//!   Unwinding - the child is cancelled; the future is polled only while live structure remains
//!               inside it, then dropped. Next: `Draining` (finished, or dropped).
//!   Draining  - the future is gone; waiting for orphans adopted by the child's node. Next:
//!               `Done`.
//!   Done      - the child left the nursery. Final.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project::{pin_project, pinned_drop};

use crate::cancel::context;
use crate::cancel::reason::CancelReason;
use crate::cancel::run::boxed_span;
use crate::cancel::tree::Node;
use crate::child::roster::{Roster, SlotRef};
use crate::local::frame::{self, Installed, Link};
use crate::nursery::core::{Core, Source};
use crate::panic;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Unwinding,
    Draining,
    Done,
}

/// A child that joined a nursery whose children are already cancelled: its future is dropped
/// unpolled (rule 3) and it leaves at once. `link.is_cancelled` said so.
#[cold]
#[inline(never)]
pub(crate) fn refuse<E, F>(
    core: &Arc<Core<E>>,
    mut link: TaskLink,
    name: Option<Arc<str>>,
    fut: F,
    pre_start: Option<Arc<dyn PreStart<E>>>,
) where
    E: std::fmt::Display + Send + 'static,
{
    link.commit_unwinding(core.group());
    drop_reporting(core, name.as_ref(), fut);
    core.mark_cancelled_inside();
    link.leave(core.roster());
    if let Some(pre_start) = pre_start {
        pre_start.ended(true);
    }
    core.leave();
}

/// What a runner keeps beside the future, from where it was spawned. Not generic over the
/// future, so it is built out of line and only the future itself is moved into the runner.
struct Origin {
    span: Option<Box<tracing::Span>>,
    locals: Option<Link>,
}

#[inline(never)]
fn origin(name: Option<&str>, nursery: Option<&str>) -> Origin {
    Origin {
        span: boxed_span(tracing::debug_span!(
            "child",
            name = name.unwrap_or(""),
            nursery = nursery.unwrap_or(""),
        )),
        locals: frame::current(),
    }
}

/// How a running child is linked into the tree: its own node (`start` children, and others once
/// they needed one), or a roster slot without a node yet.
pub(crate) enum TaskLink {
    Node(Arc<Node>),
    Slot {
        key: usize,
        /// The node, once made (then it is used exactly like `Node`).
        node: Option<Arc<Node>>,
        /// The task's waker is in the slot. A child is always polled with wakers that wake the
        /// same task (a tokio task, or its entry in the nursery's `FuturesUnordered`), so once
        /// is enough.
        registered: bool,
    },
}

impl TaskLink {
    /// Commits the unwinding this child is about to act on (invariant 9 of the tree): from its
    /// node if it has one, else from the children group whose cancellation reached it.
    fn commit_unwinding(&self, group: &Arc<Node>) {
        self.node().unwrap_or(group).commit_unwinding();
    }

    fn node(&self) -> Option<&Arc<Node>> {
        match self {
            TaskLink::Node(node)
            | TaskLink::Slot {
                node: Some(node), ..
            } => Some(node),
            TaskLink::Slot { node: None, .. } => None,
        }
    }

    fn name(&self, roster: &Roster) -> Option<Arc<str>> {
        match self {
            TaskLink::Node(node) => node.name().cloned(),
            TaskLink::Slot { key, .. } => roster.name(*key),
        }
    }

    /// Effectively cancelled; picks up a node made for this child by its handle.
    pub(crate) fn is_cancelled(&mut self, roster: &Roster) -> bool {
        match self {
            TaskLink::Node(node)
            | TaskLink::Slot {
                node: Some(node), ..
            } => node.is_cancelled(),
            TaskLink::Slot {
                key, node: made, ..
            } => {
                let (cancelled, node) = roster.lazy_cancelled(*key);
                if node.is_some() {
                    *made = node;
                }
                cancelled
            }
        }
    }

    /// Live structure inside the child (only a node can have any).
    fn live(&self) -> usize {
        self.node().map_or(0, |node| node.live())
    }

    /// Registers the task's waker where a cancellation will look for it.
    fn register(&mut self, roster: &Roster, waker: &Waker) {
        match self {
            TaskLink::Node(node)
            | TaskLink::Slot {
                node: Some(node), ..
            } => node.register_owner(waker),
            TaskLink::Slot {
                key,
                node: None,
                registered,
            } => {
                if !*registered {
                    roster.register(*key, waker);
                    *registered = true;
                }
            }
        }
    }

    /// Polls `f` as this child: under its node, or lazily (making the node if needed).
    fn enter<R>(&mut self, roster: &Arc<Roster>, f: impl FnOnce() -> R) -> R {
        match self {
            TaskLink::Node(node)
            | TaskLink::Slot {
                node: Some(node), ..
            } => context::enter(node, f),
            TaskLink::Slot {
                key, node: made, ..
            } => {
                let slot = SlotRef {
                    roster: Arc::clone(roster),
                    key: *key,
                };
                let (out, node) = context::enter_child(slot, f);
                if node.is_some() {
                    *made = node;
                }
                out
            }
        }
    }

    /// The public reason of the child's cancellation (for diagnostics).
    fn reason(&self, roster: &Roster) -> Option<CancelReason> {
        match self {
            TaskLink::Node(node)
            | TaskLink::Slot {
                node: Some(node), ..
            } => node.public_reason(),
            TaskLink::Slot { key, .. } => roster.status(*key).1,
        }
    }

    /// The child left the nursery.
    fn leave(&mut self, roster: &Roster) {
        match self {
            TaskLink::Node(node) => node.detach(),
            TaskLink::Slot { key, node, .. } => {
                *node = None;
                roster.leave(*key);
            }
        }
    }
}

fn reason_text(link: &TaskLink, roster: &Roster) -> String {
    link.reason(roster)
        .map_or_else(|| String::from("cancelled"), |r| r.to_string())
}

/// Drops a child's future, catching a panicking destructor.
fn drop_reporting<E, F>(core: &Core<E>, name: Option<&Arc<str>>, fut: F)
where
    E: std::fmt::Display + Send + 'static,
{
    if let Err(payload) = panic::catch(move || drop(fut)) {
        core.record_panic(payload, Source::Child(name.cloned()));
    }
}

/// Drives one child: its state machine is shared by spawned and borrowing children.
#[pin_project(PinnedDrop, project = ChildTaskProj)]
pub(crate) struct ChildTask<E, F>
where
    E: std::fmt::Display + Send + 'static,
{
    #[pin]
    fut: Option<F>,
    link: TaskLink,
    core: Arc<Core<E>>,
    state: State,
    /// Set for a child of `start` until it signals: its failures go to the caller.
    pre_start: Option<Arc<dyn PreStart<E>>>,
    dropped_by_cancel: bool,
    /// Parented to the spawner's span, so logs show which code spawned the child. Boxed, and
    /// only when a subscriber wants it: the runner stays small to move into its task.
    span: Option<Box<tracing::Span>>,
    /// The `Local` bindings in effect where the child was spawned, installed while it is polled
    /// (DESIGN §7); out of the struct during a poll.
    locals: Option<Link>,
}

impl<E, F> ChildTask<E, F>
where
    E: std::fmt::Display + Send + 'static,
{
    /// The runner of a child that joined and is not cancelled (`ready_task` checked). Inlined
    /// into the spawn, so the future is written once, straight into the runner handed to tokio
    /// (each by-value hop of a large future is a copy).
    #[inline(always)]
    pub(crate) fn new(
        core: &Arc<Core<E>>,
        link: TaskLink,
        name: Option<Arc<str>>,
        fut: F,
        pre_start: Option<Arc<dyn PreStart<E>>>,
    ) -> Self {
        let Origin { span, locals } = origin(name.as_deref(), core.name().as_deref());
        ChildTask {
            fut: Some(fut),
            link,
            core: Arc::clone(core),
            state: State::Running,
            pre_start,
            dropped_by_cancel: false,
            span,
            locals,
        }
    }
}

/// Where a `start` child's outcome goes before it signals (see `start.rs`).
pub(crate) trait PreStart<E>: Send + Sync {
    /// Takes the failure if the child has not signalled yet; otherwise gives it back.
    fn failed(&self, error: E) -> Option<E>;
    /// Takes the panic if the child has not signalled yet; otherwise gives it back.
    fn panicked(&self, payload: panic::Payload) -> Option<panic::Payload>;
    /// The child left the nursery.
    fn ended(&self, cancelled: bool);
}

impl<E, T, F> Future for ChildTask<E, F>
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // Taken out for the poll (a move of the box, nothing more), so the steps can take
        // `this` mutably while the span is entered.
        let span = this.span.take();
        let entered = span.as_deref().map(tracing::Span::enter);
        let installed = frame::install(this.locals);
        let polled = loop {
            let step = match *this.state {
                State::Running | State::Unwinding => poll_child(&mut this, cx),
                State::Draining => transition_to_left(&mut this, cx),
                State::Done => Step::Ready,
            };
            match step {
                Step::Next => {}
                Step::Pending => break Poll::Pending,
                Step::Ready => break Poll::Ready(()),
            }
        };
        Installed::leave(installed, this.locals);
        drop(entered);
        *this.span = span;
        polled
    }
}

/// What one state's step of the runner's `poll` decided.
#[must_use = "a step says whether `poll` goes on, suspends or returns"]
enum Step {
    /// The state changed: run the new state's step.
    Next,
    /// Suspend; a waker is registered.
    Pending,
    /// The child left the nursery (`Done`).
    Ready,
}

type This<'a, E, F> = ChildTaskProj<'a, E, F>;

/// `Running` -> `Unwinding` (cancelled) -> `Draining` (the future finished, or, unwinding,
/// nothing live is left inside it and it is dropped: `transition_to_dropped`).
fn poll_child<E, T, F>(this: &mut This<'_, E, F>, cx: &mut Context<'_>) -> Step
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    // A running child registers after its poll (below), so a child that completes on its first
    // poll never clones its waker; an unwinding one registers first, since it then waits on the
    // node's live count.
    if *this.state == State::Unwinding {
        this.link.register(this.core.roster(), cx.waker());
    }
    if this.link.is_cancelled(this.core.roster()) {
        this.link.commit_unwinding(this.core.group());
        *this.state = State::Unwinding;
    }
    if *this.state == State::Unwinding && this.link.live() == 0 {
        return transition_to_dropped(this);
    }
    let fut = this
        .fut
        .as_mut()
        .as_pin_mut()
        .expect("running child has a future");
    let link = &mut *this.link;
    let roster = this.core.roster();
    let polled = panic::catch(|| link.enter(roster, || fut.poll(cx)));
    let source = || Source::Child(this.link.name(this.core.roster()));
    match polled {
        Ok(Poll::Pending) => {
            // Register, then re-check (invariant 5 of the tree): a cancel that landed during
            // the poll is seen here or wakes us.
            this.link.register(this.core.roster(), cx.waker());
            if this.link.is_cancelled(this.core.roster()) {
                this.link.commit_unwinding(this.core.group());
                *this.state = State::Unwinding;
                if this.link.live() == 0 {
                    return Step::Next;
                }
            }
            return Step::Pending;
        }
        Ok(Poll::Ready(Ok(_value))) => {}
        Ok(Poll::Ready(Err(error))) => {
            let error = match this.pre_start {
                Some(pre_start) => pre_start.failed(error),
                None => Some(error),
            };
            if let Some(error) = error {
                this.core.fail_member(error, source());
            }
        }
        Err(payload) => {
            let payload = match this.pre_start {
                Some(pre_start) => pre_start.panicked(payload),
                None => Some(payload),
            };
            if let Some(payload) = payload {
                this.core.record_panic(payload, source());
            }
        }
    }
    let mut fut = this.fut.as_mut();
    if let Err(payload) = panic::catch(|| fut.set(None)) {
        this.core.record_panic(payload, source());
    }
    *this.state = State::Draining;
    Step::Next
}

/// `Unwinding` -> `Draining`: nothing live is left inside the cancelled child; its future is
/// dropped.
fn transition_to_dropped<E, F>(this: &mut This<'_, E, F>) -> Step
where
    E: std::fmt::Display + Send + 'static,
{
    let mut fut = this.fut.as_mut();
    if let Err(payload) = panic::catch(|| fut.set(None)) {
        this.core
            .record_panic(payload, Source::Child(this.link.name(this.core.roster())));
    }
    this.core.mark_cancelled_inside();
    *this.dropped_by_cancel = true;
    tracing::debug!(reason = %reason_text(this.link, this.core.roster()), "child dropped by cancellation");
    *this.state = State::Draining;
    Step::Next
}

/// `Draining` -> `Done` once no orphan adopted by the child's node is left: the child leaves.
fn transition_to_left<E, F>(this: &mut This<'_, E, F>, cx: &mut Context<'_>) -> Step
where
    E: std::fmt::Display + Send + 'static,
{
    // Only a child with a node can have orphans to wait for.
    if this.link.node().is_some() {
        this.link.register(this.core.roster(), cx.waker());
        if this.link.live() > 0 {
            return Step::Pending;
        }
    }
    *this.state = State::Done;
    this.link.leave(this.core.roster());
    if let Some(pre_start) = this.pre_start.take() {
        pre_start.ended(*this.dropped_by_cancel);
    }
    this.core.leave();
    Step::Ready
}

#[pinned_drop]
impl<E, F> PinnedDrop for ChildTask<E, F>
where
    E: std::fmt::Display + Send + 'static,
{
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if *this.state == State::Done {
            return;
        }
        // The runtime dropped the task (shutdown): leave the nursery so it does not wait forever.
        // The future is dropped with its bindings in effect, as when it finishes.
        let mut fut = this.fut.as_mut();
        let installed = Installed::enter(this.locals.take());
        let dropped = panic::catch(|| fut.set(None));
        drop(installed.exit());
        if let Err(payload) = dropped {
            this.core
                .record_panic(payload, Source::Child(this.link.name(this.core.roster())));
        }
        this.core.mark_cancelled_inside();
        this.link.leave(this.core.roster());
        if let Some(pre_start) = this.pre_start.take() {
            pre_start.ended(true);
        }
        this.core.leave();
    }
}
