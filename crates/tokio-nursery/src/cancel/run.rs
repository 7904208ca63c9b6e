//! The future that drives one cancel scope: `CancelScope::run`.
//!
//! States, when each is entered, and where it can go next (`poll` runs one step function per
//! state, each returning a `Step`):
//!   Unpolled  - built, never polled; the node is not attached yet. Next: `Done` (a lazy first
//!               poll completed without a node), `Running` or `Draining` (a lazy poll that made
//!               a node), `Parked` (first polled inside a cancelled scope), `Unwinding`
//!               (cancelled before it started), or `Running`.
//!   Running   - attached; the body is polled under this scope's node (under its gate node for
//!               a grace scope: once the scope is cancelled the gate drains until the grace
//!               period or an enclosing bound ends, then cancels hard). Next: `Unwinding` once
//!               the body's node is cancelled, `Draining` once the body completes.
//!   Unwinding - the node is effectively cancelled; the body is still polled, but only while live
//!               structure (nurseries, running scopes, adopted orphans) remains inside it. Next:
//!               `Draining` (the body completed anyway, Rule 1), `Done` (nothing live is left
//!               and this scope absorbs), `Parked` (an enclosing scope absorbs).
//!   Draining  - the body completed; waiting for adopted orphans. Next: `Done` with the value.
//!   Parked    - cancelled by an enclosing scope (or first polled inside one): the body is gone,
//!               and the absorbing scope will drop this future. Final: it never completes.
//!   Done      - returned its output. Final.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::{pin_project, pinned_drop};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cancel::context::{self, NodeSpec};
use crate::cancel::reason::CancelReason;
use crate::cancel::timer::Timer;
use crate::cancel::tree::{LiveToken, Node, NodeKind};
use cold::{gate_of, park, Cold};

mod cold;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unpolled,
    Running,
    Unwinding,
    Draining,
    Parked,
    Done,
}

/// The future returned by [`CancelScope::run`](crate::CancelScope::run),
/// [`move_on_after`](crate::move_on_after) and [`move_on_at`](crate::move_on_at).
///
/// Completes with `Some(value)` if the body completed (even while cancelled: a value is never
/// discarded), or `None` if this scope absorbed a cancellation. A scope cancelled only because
/// an enclosing scope was never completes: the enclosing scope drops it.
///
/// # Cancel safety
///
/// Dropping a `Run` drops its body. Structure inside the body that cannot stop synchronously
/// (spawned children, pending cleanups of a nursery) finishes in the background, and the nearest
/// enclosing scope of this library waits for it.
///
/// # Drop behavior
///
/// The scope's node is detached; live structure inside it is adopted by the enclosing scope.
///
/// # Panics
///
/// Polling after completion panics, as does polling a scope again after the scope that absorbed
/// its cancellation has ended (e.g. re-awaiting a `&mut` future after a `select!`).
///
/// # Examples
///
/// ```
/// use tokio_nursery::CancelScope;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = CancelScope::new().run(async { 5 }).await;
/// assert_eq!(out, Some(5));
/// # }
/// ```
#[pin_project(PinnedDrop, project = RunProj)]
#[must_use = "a cancel scope does nothing unless awaited"]
pub struct Run<F: Future> {
    #[pin]
    body: Option<F>,
    timer: Timer,
    value: Option<F::Output>,
    /// The scope's node: made at the first poll, or later (see `context`) if the first poll
    /// ran the body lazily; `None` for a scope whose body completed without needing one.
    node: Option<Arc<Node>>,
    /// The recipe for the node while there is none.
    spec: NodeSpec,
    /// The body was just polled (lazily, by the first poll): the `Running` step that follows
    /// registers and arms timers but does not poll it again.
    just_polled: bool,
    timeout: Option<Duration>,
    state: State,
    /// Held while running: this scope is live structure of its parent.
    parent_token: Option<LiveToken>,
    /// Grace, token, parking and span state, boxed and made only when used, so that a plain
    /// scope stays small to build, move and drop.
    cold: Option<Box<Cold>>,
    /// The span was made: the first time the body suspends (scopes that complete at once cost
    /// nothing). It is kept in `cold`, if a subscriber wants it.
    spanned: bool,
}

impl<F: Future> Run<F> {
    #[inline]
    pub(crate) fn new(
        node: Option<Arc<Node>>,
        spec: NodeSpec,
        timeout: Option<Duration>,
        grace: Option<Duration>,
        token: Option<CancellationToken>,
        body: F,
    ) -> Self {
        let cold = if grace.is_some() || token.is_some() {
            Cold::boxed(grace, token)
        } else {
            None
        };
        Run {
            body: Some(body),
            timer: Timer::default(),
            value: None,
            node,
            spec,
            just_polled: false,
            timeout,
            state: State::Unpolled,
            parent_token: None,
            cold,
            spanned: false,
        }
    }
}

impl<F: Future> std::fmt::Debug for Run<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("state", &self.state)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Applies a relative timeout at first poll: the earlier of the existing deadline and
/// `now + timeout`; a timeout too large to represent means "no deadline".
pub(crate) fn fix_timeout(node: &Node, timeout: Option<Duration>, now: Instant) {
    if let Some(deadline) = timeout.and_then(|t| now.checked_add(t)) {
        node.tighten_deadline(deadline);
    }
}

/// Whether a node that finished unwinding absorbs its cancellation: it was cancelled itself and
/// nothing above it (up to a shield) is cancelled. Otherwise the absorbing scope is further up.
pub(crate) fn absorbs(node: &Node) -> bool {
    node.cancel_called() && (node.shield() || node.parent().is_none_or(|p| !p.is_cancelled()))
}

/// Panics if a parked structured future is polled after the scope that should have dropped it
/// has ended (DESIGN rule 4).
pub(crate) fn check_parked(parked_under: Option<&Arc<Node>>) {
    if parked_under.is_some_and(|p| p.is_finished()) {
        panic!(
            "nursery: a cancelled scope or nursery was polled again after the scope that absorbed \
             its cancellation had ended (for example, a `&mut` future re-awaited after a \
             `select!` or `timeout`); it can never complete"
        );
    }
}

/// What one state's step of [`Run::poll`] decided.
#[must_use = "a step says whether `poll` goes on, suspends or returns"]
enum Step<T> {
    /// The state changed: run the new state's step.
    Next,
    /// Suspend; a waker is registered.
    Pending,
    /// Return this output; the state is `Done` (or `Parked`, which never returns).
    Ready(T),
}

/// The projection of `Run` every state step works on.
type This<'a, F> = RunProj<'a, F>;

/// What every step needs to look at: the scope's node, and the node its body runs under (the
/// gate of a grace scope, else the same node).
macro_rules! nodes {
    ($this:ident) => {{
        let node: &Arc<Node> = $this.node.as_ref().expect("a started scope has a node");
        (node, gate_of($this.cold).unwrap_or(node))
    }};
}

impl<F: Future> Future for Run<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let step = match *this.state {
                State::Unpolled => transition_from_unpolled(&mut this, cx),
                State::Running => poll_running(&mut this, cx),
                State::Unwinding => poll_unwinding(&mut this, cx),
                State::Draining => poll_draining(&mut this, cx),
                State::Parked => {
                    check_parked(this.cold.as_ref().and_then(|c| c.parked_under.as_ref()));
                    Step::Pending
                }
                State::Done => panic!("`Run` polled after completion"),
            };
            match step {
                Step::Next => {}
                Step::Pending => return Poll::Pending,
                Step::Ready(out) => return Poll::Ready(out),
            }
        }
    }
}

/// `Unpolled` -> `Done`, `Draining` or `Running` through a lazy first poll (`poll_lazily`), or
/// -> `Parked`, `Unwinding` or `Running` once attached (`transition_to_attached`).
///
/// Lazy first poll: a plain scope (no handle taken, no grace, no token) whose deadline has not
/// passed and whose parent is not cancelled polls its body without a node. A body that completes
/// at once never costs one; otherwise the node is made (inside the body, by whatever needed it,
/// or right after) and the scope goes on as if it had had it from the start. (Cleanups always
/// get their node: they show in the tree while they run.)
fn transition_from_unpolled<F: Future>(
    this: &mut This<'_, F>,
    cx: &mut Context<'_>,
) -> Step<Option<F::Output>> {
    let lazy = this.node.is_none()
        && this.spec.kind == NodeKind::Scope
        && this
            .cold
            .as_ref()
            .is_none_or(|c| c.grace.is_none() && c.token.is_none());
    if lazy && fix_lazy_deadline(this.spec, this.timeout) {
        if let Some(step) = poll_lazily(this, cx) {
            return step;
        }
    }
    transition_to_attached(this)
}

/// Fixes a lazy scope's deadline at its first poll: the earlier of its own deadline and
/// `now + timeout` goes into `spec`, where the node is made from (the timeout is used up).
/// `false` if that deadline has already passed: the scope is cancelled before it starts. The
/// clock is read only for a scope with a deadline.
#[inline]
fn fix_lazy_deadline(spec: &mut NodeSpec, timeout: &mut Option<Duration>) -> bool {
    if spec.deadline.is_none() && timeout.is_none() {
        return true;
    }
    let now = Instant::now();
    if let Some(relative) = timeout.take().and_then(|t| now.checked_add(t)) {
        if spec.deadline.is_none_or(|d| d > relative) {
            spec.deadline = Some(relative);
        }
    }
    spec.deadline.is_none_or(|d| d > now)
}

/// The lazy first poll: -> `Done` (completed without a node), `Draining` (completed, but made a
/// node on the way) or `Running` (suspended; the node is made now if the body made none).
/// `None` (nothing polled) if the enclosing structure is cancelled: the scope attaches and parks.
fn poll_lazily<F: Future>(
    this: &mut This<'_, F>,
    cx: &mut Context<'_>,
) -> Option<Step<Option<F::Output>>> {
    let body = this
        .body
        .as_mut()
        .as_pin_mut()
        .expect("unpolled scope has a body");
    // Asked without making the enclosing node: a lazy child or scope around this one stays
    // without a node too if this body completes at once.
    let (polled, made) = context::enter_lazy(this.spec, || body.poll(cx))?;
    if made.is_none() {
        if let Poll::Ready(value) = polled {
            this.body.set(None);
            *this.state = State::Done;
            return Some(Step::Ready(Some(value)));
        }
    }
    // From here on the scope has a node, under its parent's (made with it if that one had none
    // yet either).
    let node = made.expect("a lazy scope that did not complete has a node");
    let parent = context::current();
    *this.node = Some(node);
    *this.parent_token = LiveToken::on(parent.as_ref());
    match polled {
        Poll::Ready(value) => {
            *this.value = Some(value);
            this.body.set(None);
            *this.state = State::Draining;
        }
        Poll::Pending => {
            *this.just_polled = true;
            *this.state = State::Running;
        }
    }
    Some(Step::Next)
}

/// Attaches the node under the enclosing one: -> `Parked` (first polled inside a cancelled
/// scope), `Unwinding` (cancelled before it started) or `Running`.
fn transition_to_attached<F: Future>(this: &mut This<'_, F>) -> Step<Option<F::Output>> {
    let parent = context::current();
    let now = Instant::now();
    let node: &Arc<Node> = this.node.get_or_insert_with(|| this.spec.make());
    fix_timeout(node, this.timeout.take(), now);
    node.attach(parent.as_ref());
    if parent.as_ref().is_some_and(|p| p.is_cancelled()) && !node.shield() {
        // Rule 3: first polled inside a cancelled scope: never polls its body, never completes.
        if let Some(parent) = &parent {
            parent.commit_unwinding();
        }
        this.body.set(None);
        node.detach();
        park(this.cold, parent);
        *this.state = State::Parked;
        return Step::Next;
    }
    if node.deadline().is_some_and(|d| d <= now) {
        node.cancel(CancelReason::Deadline);
    }
    if let Some(cold) = this.cold.as_deref_mut() {
        if let Some(token) = cold.token.take() {
            if token.is_cancelled() {
                node.cancel(token_reason());
            } else {
                cold.token_wait = Some(Box::pin(token.cancelled_owned()));
            }
        }
    }
    if node.cancel_called() {
        // Rule 3: cancelled before it started: the body is never polled. It is dropped under
        // this scope's node, so work it had registered while it was built (a nursery's
        // children, cleanups) is adopted here and awaited before the scope returns.
        let mut body = this.body.as_mut();
        context::enter(node, || body.set(None));
        *this.parent_token = LiveToken::on(parent.as_ref());
        *this.state = State::Unwinding;
        return Step::Next;
    }
    if let Some(cold) = this.cold.as_deref_mut() {
        if let Some(grace) = cold.grace {
            let gate = Node::new(NodeKind::Gate, None);
            gate.attach(Some(node));
            node.set_grace(grace, Arc::clone(&gate));
            cold.gate = Some(gate);
        }
    }
    *this.parent_token = LiveToken::on(parent.as_ref());
    *this.state = State::Running;
    Step::Next
}

/// Registers the owner's waker and serves the token and the deadlines (the scope's own, or,
/// once a grace scope drains, its gate's).
fn watch_cancellation(
    cold: Option<&mut Cold>,
    timer: &mut Timer,
    node: &Arc<Node>,
    cx: &mut Context<'_>,
) {
    node.register_owner(cx.waker());
    let Some(cold) = cold else {
        return timer.check_deadline(node, cx);
    };
    if let Some(wait) = cold.token_wait.as_mut() {
        if wait.as_mut().poll(cx).is_ready() {
            cold.token_wait = None;
            node.cancel(token_reason());
        }
    }
    let gate = cold.gate.as_ref();
    match gate {
        Some(gate) => {
            gate.register_owner(cx.waker());
            // The drain starts in the tree, the moment the scope is cancelled.
            if gate.deadline().is_none() {
                timer.check_deadline(node, cx);
            }
            if gate.deadline().is_some() {
                timer.drain_deadline(node, gate, cx);
            }
        }
        None => timer.check_deadline(node, cx),
    }
}

/// `Running` -> `Unwinding` (cancelled, before or during this poll) or `Draining` (the body
/// completed); otherwise stays `Running`.
fn poll_running<F: Future>(
    this: &mut This<'_, F>,
    cx: &mut Context<'_>,
) -> Step<Option<F::Output>> {
    let node: &Arc<Node> = this.node.as_ref().expect("a started scope has a node");
    watch_cancellation(this.cold.as_deref_mut(), this.timer, node, cx);
    let body_node = gate_of(this.cold).unwrap_or(node);
    if body_node.is_cancelled() {
        body_node.commit_unwinding();
        *this.just_polled = false;
        *this.state = State::Unwinding;
        return Step::Next;
    }
    if std::mem::take(this.just_polled) {
        make_span(this.cold, this.spanned, node);
        return Step::Pending;
    }
    let body = this
        .body
        .as_mut()
        .as_pin_mut()
        .expect("running scope has a body");
    let entered = enter_span(this.cold);
    let polled = context::enter(body_node, || body.poll(cx));
    drop(entered);
    let pending = polled.is_pending();
    let step = match polled {
        Poll::Ready(value) => {
            *this.value = Some(value);
            this.body.set(None);
            *this.state = State::Draining;
            Step::Next
        }
        // `cancel()` called synchronously inside the body takes effect at the body's next
        // suspension, which is now (for a grace scope: its drain starts now).
        Poll::Pending if body_node.is_cancelled() => {
            body_node.commit_unwinding();
            *this.state = State::Unwinding;
            Step::Next
        }
        // A grace scope cancelled by its body: arm the drain's timer now.
        Poll::Pending if gate_of(this.cold).is_some() && node.is_cancelled() => {
            if this
                .timer
                .is_armed_for(gate_of(this.cold).and_then(|g| g.deadline()))
            {
                Step::Pending
            } else {
                Step::Next
            }
        }
        Poll::Pending => Step::Pending,
    };
    if pending && !*this.spanned {
        make_span(this.cold, this.spanned, node);
    }
    step
}

/// `Unwinding` -> `Draining` (the body completed while cancelled: Rule 1), `Done` (no live
/// structure left and this scope absorbs) or `Parked` (an enclosing scope absorbs); otherwise
/// stays `Unwinding`.
fn poll_unwinding<F: Future>(
    this: &mut This<'_, F>,
    cx: &mut Context<'_>,
) -> Step<Option<F::Output>> {
    let (node, body_node) = nodes!(this);
    node.register_owner(cx.waker());
    body_node.register_owner(cx.waker());
    if body_node.live() == 0 {
        return transition_from_unwound(this);
    }
    let Some(body) = this.body.as_mut().as_pin_mut() else {
        // Only orphans are left; their release wakes us.
        return Step::Pending;
    };
    let _entered = enter_span(this.cold);
    match context::enter(body_node, || body.poll(cx)) {
        // Rule 1: a body that completes while cancelled is returned.
        Poll::Ready(value) => {
            *this.value = Some(value);
            this.body.set(None);
            *this.state = State::Draining;
            Step::Next
        }
        Poll::Pending if body_node.live() == 0 => Step::Next,
        Poll::Pending => Step::Pending,
    }
}

/// Nothing live is left inside an unwinding scope: -> `Done` with `None` if it absorbs its
/// cancellation, else -> `Parked` until the absorbing scope drops it.
fn transition_from_unwound<F: Future>(this: &mut This<'_, F>) -> Step<Option<F::Output>> {
    let node: &Arc<Node> = this.node.as_ref().expect("a started scope has a node");
    this.body.set(None);
    this.timer.disarm();
    if absorbs(node) {
        let _entered = enter_span(this.cold);
        tracing::debug!(
            reason = %node.public_reason().map_or_else(String::new, |r| r.to_string()),
            "scope absorbed its cancellation"
        );
        node.set_caught();
        finish(node, gate_of(this.cold), this.parent_token, this.state);
        return Step::Ready(None);
    }
    let parent = node.parent();
    finish(node, gate_of(this.cold), this.parent_token, this.state);
    park(this.cold, parent);
    *this.state = State::Parked;
    Step::Pending
}

/// `Draining` -> `Done` with the body's value once no adopted orphan is left.
fn poll_draining<F: Future>(
    this: &mut This<'_, F>,
    cx: &mut Context<'_>,
) -> Step<Option<F::Output>> {
    let (node, body_node) = nodes!(this);
    body_node.register_owner(cx.waker());
    if body_node.live() > 0 {
        return Step::Pending;
    }
    this.timer.disarm();
    finish(node, gate_of(this.cold), this.parent_token, this.state);
    Step::Ready(this.value.take())
}

/// Enters the scope's span, if it has one.
fn enter_span(cold: &Option<Box<Cold>>) -> Option<tracing::span::Entered<'_>> {
    cold.as_ref()
        .and_then(|cold| cold.span.as_ref())
        .map(tracing::Span::enter)
}

/// A span worth keeping: boxed, and only if a subscriber is interested.
pub(crate) fn boxed_span(span: tracing::Span) -> Option<Box<tracing::Span>> {
    (!span.is_none()).then(|| Box::new(span))
}

/// Makes the span of a scope, the first time it suspends; kept only if a subscriber is
/// interested.
fn make_span(cold: &mut Option<Box<Cold>>, spanned: &mut bool, node: &Node) {
    *spanned = true;
    let span = tracing::debug_span!("scope", name = node.name().map_or("", |n| &**n));
    if !span.is_none() {
        cold.get_or_insert_with(Box::default).span = Some(span);
    }
}

fn token_reason() -> CancelReason {
    CancelReason::explicit(Some("its CancellationToken was cancelled".into()))
}

/// Detaches the scope (and its gate) and releases its parent: the scope is `Done`.
fn finish(
    node: &Node,
    gate: Option<&Arc<Node>>,
    parent_token: &mut Option<LiveToken>,
    state: &mut State,
) {
    if let Some(gate) = gate {
        gate.detach();
    }
    node.detach();
    *parent_token = None;
    *state = State::Done;
}

#[pinned_drop]
impl<F: Future> PinnedDrop for Run<F> {
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if let Some(token) = this.parent_token.take() {
            // Dropped by foreign code while running: nested structure that cannot stop
            // synchronously keeps our parent waiting (it adopts the orphans).
            this.body.set(None);
            match (gate_of(this.cold), this.node.as_ref()) {
                // Orphans register on the gate; the scope's node holds nothing itself.
                (Some(gate), _) => gate.stash_parent_token(token),
                (None, Some(node)) => node.stash_parent_token(token),
                (None, None) => drop(token),
            }
        }
        if let Some(gate) = gate_of(this.cold) {
            gate.detach();
        }
        if let Some(node) = this.node.as_ref() {
            node.detach();
        }
    }
}
