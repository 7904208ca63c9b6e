//! The nursery future.
//!
//! Phases, in order (each entered once), and where each can go next:
//!   Init          - built (the body closure was called, its future not yet polled); the
//!                   nodes are not linked to an enclosing scope yet. Next: `Body`.
//!   Body          - the body is polled under the body node. Next: `BodyUnwinding` once the body
//!                   node is cancelled, `BodyDraining` once the body returned.
//!   BodyUnwinding - the body node is cancelled; the body is polled only while live structure
//!                   remains inside it, then dropped. Next: `BodyDraining`.
//!   BodyDraining  - the body is gone; waiting for orphans it left (foreign-dropped structure).
//!                   Next: `Children`.
//!   Children      - the body left; waiting until every child has left (the nursery is closed).
//!                   Next: `Cleanups`.
//!   Cleanups      - running deferred cleanups, last registered first, one at a time. Next:
//!                   `Finish`.
//!   Finish        - taking the outcome (transient, inside one poll). Next: `Done`, or `Parked`.
//!   Parked        - cancelled from outside with something cancelled inside (rule 2; this
//!                   includes being first polled inside a cancelled scope, rule 3: the body is
//!                   then dropped without being polled): never completes. Final.
//!   Done          - returned. Final.
//!
//! The live token on the parent is held from the first poll until Finish (or handed to the
//! detached finisher on a foreign drop), with no gap between the last child and the cleanups.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::{pin_project, pinned_drop};

use crate::cancel::context;
use crate::cancel::reason::CancelReason;
use crate::cancel::run::check_parked;
use crate::cancel::timer::Timer;
use crate::cancel::tree::{LiveToken, Node};
use crate::child::borrowed::{BorrowedSet, Incoming};
use crate::error::Errors;
use crate::nursery::cleanup::CleanupRunner;
use crate::nursery::core::{report_suppressed, Core, Source};
use crate::nursery::detach;
use crate::nursery::handle::Nursery;
use crate::nursery::policy::Policy;
use crate::panic;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    Body,
    BodyUnwinding,
    BodyDraining,
    Children,
    Cleanups,
    Finish,
    Parked,
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) cleanup_timeout: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) policy: Policy,
    /// Where the user's code opened the nursery.
    pub(crate) location: Option<&'static std::panic::Location<'static>>,
}

impl Config {
    /// The default configuration, for a nursery opened at `location`.
    pub(crate) fn at(location: &'static std::panic::Location<'static>) -> Self {
        Config::default().located(location)
    }

    pub(crate) fn located(mut self, location: &'static std::panic::Location<'static>) -> Self {
        self.location = Some(location);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            cleanup_timeout: Some(Duration::from_secs(5)),
            grace: None,
            policy: Policy::default(),
            location: None,
        }
    }
}

/// The future returned by [`nursery_all`](crate::nursery_all),
/// [`NurseryBuilder::run_all`](crate::NurseryBuilder::run_all), [`supervisor`](crate::supervisor)
/// and [`NurseryBuilder::run_supervisor`](crate::NurseryBuilder::run_supervisor): like
/// [`NurseryFuture`], but failures come back as [`Errors`], all of them.
///
/// # Cancel safety
///
/// See [`NurseryFuture`].
///
/// # Drop behavior
///
/// See [`NurseryFuture`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = tokio_nursery::nursery_all(|n| async move {
///     n.spawn(async { Err("one") });
///     Ok::<_, &str>(())
/// })
/// .await;
/// assert_eq!(out.unwrap_err().all(), &["one"]);
/// # }
/// ```
#[pin_project(PinnedDrop, project = NurseryProj)]
#[must_use = "a nursery does nothing unless awaited"]
pub struct NurseryAll<'env, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    config: Config,
    #[pin]
    body: Option<Fut>,
    /// Grace nurseries: the timer that ends the drain.
    timer: Timer,
    core: Option<Arc<Core<E>>>,
    token: Option<LiveToken>,
    value: Option<T>,
    cleanup: Option<CleanupRunner<E>>,
    borrowed: Option<BorrowedSet<'env>>,
    phase: Phase,
    parked_under: Option<Arc<Node>>,
    /// Entered whenever the nursery is polled; children spawned from the body inherit it.
    span: tracing::Span,
    _env: PhantomData<fn(&'env ()) -> &'env ()>,
}

impl<'env, T, E, Fut> NurseryAll<'env, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    /// Calls the body closure now, so the future's type holds only the body's future: a
    /// `FnOnce(Nursery<'env, E>)` bound on the `Future` impl would make rustc fail to prove
    /// `Send` for futures that contain this one ("FnOnce is not general enough").
    pub(crate) fn new<F>(config: Config, init: F) -> Self
    where
        F: FnOnce(Nursery<'env, E>) -> Fut,
    {
        let core = Core::with_policy(
            config.name.clone(),
            config.cleanup_timeout,
            config.grace,
            &config.policy,
        );
        if let Some(location) = config.location {
            core.top().set_location(location);
        }
        let incoming = Incoming::new();
        let body = init(Nursery::new(Arc::clone(&core), Arc::clone(&incoming)));
        NurseryAll {
            config,
            body: Some(body),
            timer: Timer::default(),
            core: Some(core),
            token: None,
            value: None,
            cleanup: None,
            borrowed: Some(BorrowedSet::new(incoming)),
            phase: Phase::Init,
            parked_under: None,
            span: tracing::Span::none(),
            _env: PhantomData,
        }
    }
}

impl<T, E, Fut> fmt::Debug for NurseryAll<'_, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryAll")
            .field("name", &self.config.name)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl<T, E, Fut> Future for NurseryAll<'_, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Errors<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if *this.phase == Phase::Init {
            *this.span =
                tracing::debug_span!("nursery", name = this.config.name.as_deref().unwrap_or(""));
        }
        // A handle on the span (not a borrow of `this`): the phase steps take `this` mutably.
        let span = this.span.clone();
        let _entered = span.enter();
        if let Some(core) = this.core.as_ref() {
            if let (Some(scope), Some(gate)) = (&core.grace_scope, &core.gate) {
                gate.register_owner(cx.waker());
                if gate.deadline().is_some() {
                    this.timer.drain_deadline(scope, gate, cx);
                }
            }
        }
        loop {
            let step = match *this.phase {
                Phase::Init => transition_to_attached(&mut this),
                Phase::Body | Phase::BodyUnwinding => poll_body(&mut this, cx),
                Phase::BodyDraining => {
                    let core = this.core.as_ref().expect("core exists until finished");
                    poll_borrowed(this.borrowed, cx);
                    core.body.register_owner(cx.waker());
                    if core.body.live() > 0 {
                        return Poll::Pending;
                    }
                    core.leave();
                    *this.phase = Phase::Children;
                    Step::Next
                }
                Phase::Children => {
                    let core = this.core.as_ref().expect("core exists until finished");
                    core.register(cx.waker());
                    poll_borrowed(this.borrowed, cx);
                    if !core.is_closed() {
                        return Poll::Pending;
                    }
                    *this.phase = Phase::Cleanups;
                    Step::Next
                }
                Phase::Cleanups => poll_cleanups(&mut this, cx),
                Phase::Finish => transition_to_finished(&mut this),
                Phase::Parked => {
                    check_parked(this.parked_under.as_ref());
                    Step::Pending
                }
                Phase::Done => panic!("nursery polled after completion"),
            };
            match step {
                Step::Next => {}
                Step::Pending => return Poll::Pending,
                Step::Ready(out) => return Poll::Ready(out),
            }
        }
    }
}

/// What one phase's step of [`NurseryAll::poll`] decided.
#[must_use = "a step says whether `poll` goes on, suspends or returns"]
enum Step<T> {
    /// The phase changed: run the new phase's step.
    Next,
    /// Suspend; a waker is registered.
    Pending,
    /// Return this outcome; the phase is `Done`.
    Ready(T),
}

/// The projection every phase step works on, and what it returns.
type This<'a, 'env, T, E, Fut> = NurseryProj<'a, 'env, T, E, Fut>;
type Outcome<T, E> = Step<Result<T, Errors<E>>>;

/// `Init` -> `Body`: links the nodes under the enclosing scope and takes a live token on it.
///
/// Rule 3 falls out of the body phase: first polled inside a cancelled scope, the body node is
/// already cancelled, so the body is dropped unpolled (and anything spawned while it was built
/// unwinds before the nursery parks).
fn transition_to_attached<T, E, Fut>(this: &mut This<'_, '_, T, E, Fut>) -> Outcome<T, E>
where
    E: fmt::Display + Send + 'static,
{
    let parent = context::current();
    let core = this.core.as_ref().expect("core exists until finished");
    core.attach(parent.as_ref());
    // Rule 3 wins over a grace period: first polled inside a cancelled scope there is nothing
    // to drain, so the gate cancels hard at once.
    if let (Some(gate), Some(parent)) = (&core.gate, &parent) {
        if parent.is_cancelled() {
            let reason = parent
                .effective_reason()
                .unwrap_or_else(|| Arc::new(CancelReason::explicit(None)));
            gate.cancel_shared(reason);
        }
    }
    if core.runtime().is_none() {
        panic!("a nursery must be polled inside a Tokio runtime");
    }
    *this.token = LiveToken::on(parent.as_ref());
    *this.phase = Phase::Body;
    Step::Next
}

/// `Body` -> `BodyUnwinding` (the body node is cancelled) -> `BodyDraining` (the body returned,
/// or, unwinding, nothing live is left inside it and it is dropped).
fn poll_body<T, E, Fut>(this: &mut This<'_, '_, T, E, Fut>, cx: &mut Context<'_>) -> Outcome<T, E>
where
    E: fmt::Display + Send + 'static,
    Fut: Future<Output = Result<T, E>>,
{
    let core = this.core.as_ref().expect("core exists until finished");
    core.body.register_owner(cx.waker());
    if core.body.is_cancelled() {
        core.body.commit_unwinding();
        *this.phase = Phase::BodyUnwinding;
        if core.body.live() == 0 {
            drop_body(this.body.as_mut(), core);
            core.mark_cancelled_inside();
            *this.phase = Phase::BodyDraining;
            return Step::Next;
        }
    }
    let body = this.body.as_mut().as_pin_mut().expect("body is present");
    let polled = panic::catch(|| context::enter(&core.body, || body.poll(cx)));
    match polled {
        Ok(Poll::Pending) => {
            poll_borrowed(this.borrowed, cx);
            if core.body.is_cancelled() {
                core.body.commit_unwinding();
                *this.phase = Phase::BodyUnwinding;
                if core.body.live() == 0 {
                    return Step::Next;
                }
            }
            return Step::Pending;
        }
        // Rule 1: a value or error reached while unwinding is kept.
        Ok(Poll::Ready(Ok(value))) => *this.value = Some(value),
        Ok(Poll::Ready(Err(error))) => core.fail_member(error, Source::Body),
        Err(payload) => core.record_panic(payload, Source::Body),
    }
    drop_body(this.body.as_mut(), core);
    *this.phase = Phase::BodyDraining;
    Step::Next
}

/// `Cleanups` -> `Finish` once no cleanup is left; runs them one at a time, last first.
fn poll_cleanups<T, E, Fut>(
    this: &mut This<'_, '_, T, E, Fut>,
    cx: &mut Context<'_>,
) -> Outcome<T, E>
where
    E: fmt::Display + Send + 'static,
{
    let core = this.core.as_ref().expect("core exists until finished");
    if this.cleanup.is_none() {
        match core.pop_cleanup() {
            Some(cleanup) => *this.cleanup = Some(CleanupRunner::new(core, cleanup)),
            None => {
                *this.phase = Phase::Finish;
                return Step::Next;
            }
        }
    }
    let runner = this.cleanup.as_mut().expect("a cleanup is running");
    if Pin::new(runner).poll(cx).is_pending() {
        return Step::Pending;
    }
    *this.cleanup = None;
    Step::Next
}

/// `Finish` -> `Done` with the outcome (or a panic resumed), or -> `Parked` (Rule 2).
fn transition_to_finished<T, E, Fut>(this: &mut This<'_, '_, T, E, Fut>) -> Outcome<T, E>
where
    E: fmt::Display + Send + 'static,
{
    let core = this.core.take().expect("core exists until finished");
    let outcome = core.finalize();
    // The enclosing scope: above the grace scope, if there is one.
    let parent = core.grace_scope.as_ref().unwrap_or(&core.nursery).parent();
    let cancelled_from_outside = core.nursery.is_cancelled();
    *this.token = None;
    core.detach_nodes();
    *this.phase = Phase::Done;
    if let Some(payload) = outcome.panic {
        report_suppressed(&core.name, &outcome.errors, "a panic takes precedence");
        std::panic::resume_unwind(payload);
    }
    if let Some(errors) = Errors::new(outcome.errors, outcome.cleanup_timeouts) {
        return Step::Ready(Err(errors));
    }
    // Rule 2: cancelled from outside, something inside was actually cancelled: do not
    // complete; the absorbing scope drops this future.
    match this.value.take() {
        Some(value) if !(cancelled_from_outside && core.cancelled_inside()) => {
            Step::Ready(Ok(value))
        }
        _ => {
            *this.parked_under = parent;
            *this.phase = Phase::Parked;
            Step::Next
        }
    }
}

fn poll_borrowed(borrowed: &mut Option<BorrowedSet<'_>>, cx: &mut Context<'_>) {
    if let Some(set) = borrowed {
        set.poll(cx);
    }
}

fn drop_body<Fut, E>(mut body: Pin<&mut Option<Fut>>, core: &Core<E>)
where
    E: fmt::Display + Send + 'static,
{
    if let Err(payload) = panic::catch(|| body.set(None)) {
        core.record_panic(payload, Source::Body);
    }
}

#[pinned_drop]
impl<T, E, Fut> PinnedDrop for NurseryAll<'_, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    fn drop(self: Pin<&mut Self>) {
        let mut this = self.project();
        let body_member = match *this.phase {
            // Never polled: children spawned while the body was built must not be orphaned.
            Phase::Init | Phase::Body | Phase::BodyUnwinding | Phase::BodyDraining => true,
            Phase::Children | Phase::Cleanups => false,
            Phase::Finish | Phase::Parked | Phase::Done => return,
        };
        // Dropped by foreign code (a timeout, a losing select! branch, an aborted task).
        let Some(core) = this.core.take() else { return };
        core.nursery.cancel(CancelReason::NurseryDropped);
        if *this.phase == Phase::Init {
            drop_body(this.body.as_mut(), &core);
            if let Some(mut set) = this.borrowed.take() {
                set.clear();
            }
            core.leave();
            if core.is_closed() && !core.has_cleanups() {
                // Never polled and nothing was started: nothing to finish, and nothing may be
                // accepted from now on.
                core.finalize_and_report("the nursery was dropped before its first poll");
                core.detach_nodes();
                return;
            }
            // The enclosing scope being polled adopts whatever was started while the body was
            // built.
            let token = LiveToken::on(context::current().as_ref());
            detach::finish(core, false, None, token);
            return;
        }
        let mut body = this.body.as_mut();
        if let Err(payload) = panic::catch(|| body.set(None)) {
            tracing::error!(
                nursery = ?core.name,
                panic = %panic::message(&payload),
                "nursery body panicked while being dropped"
            );
        }
        // Borrowing children borrow the caller's stack: they go now, with the body.
        if let Some(mut set) = this.borrowed.take() {
            set.clear();
        }
        detach::finish(core, body_member, this.cleanup.take(), this.token.take());
    }
}

/// The future returned by [`nursery`](crate::nursery()) and
/// [`NurseryBuilder::run`](crate::NurseryBuilder::run).
///
/// Completes when the body and every child have completed and every deferred cleanup has run:
/// with the body's `Ok(T)`, or the first failure `Err(e)` (later ones are reported through
/// `tracing`; use [`nursery_all`](crate::nursery_all) to get them all). A panic in the body, a
/// child or a cleanup is re-raised from here, with its original payload, after everything
/// unwound. If an enclosing scope cancels the nursery and something inside was actually
/// cancelled, the nursery does not complete: the enclosing scope drops it.
///
/// # Cancel safety
///
/// Not cancel safe in the sense of "nothing happens": dropping it before completion cancels
/// everything inside. Spawned children and pending cleanups cannot be awaited in `Drop`, so a
/// detached task on the runtime captured at the first poll waits for the children, then runs the
/// cleanups (shielded and bounded); the nearest enclosing scope of this library waits for that
/// task. Code that continues right after the drop runs concurrently with it.
///
/// # Drop behavior
///
/// Cleanups still run exactly once, except when the future is leaked (`mem::forget`), the
/// process aborts on panic, or the drop happens outside a runtime or during its shutdown (then
/// the skipped cleanups are reported through `tracing`). A cleanup never runs twice.
///
/// # Panics
///
/// Re-raises panics from inside. Polling it after completion panics, as does polling it again
/// after the scope that absorbed its cancellation has ended. Must be polled inside a Tokio
/// runtime.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::nursery(|n| async move {
///     n.spawn(async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Err::<(), _>("lost")
///     });
///     std::future::pending::<()>().await; // cancelled when the child fails
///     Ok(())
/// })
/// .await;
/// assert_eq!(out, Err("lost"));
/// # }
/// ```
#[pin_project]
#[must_use = "a nursery does nothing unless awaited"]
pub struct NurseryFuture<'env, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    #[pin]
    inner: NurseryAll<'env, T, E, Fut>,
}

impl<'env, T, E, Fut> NurseryFuture<'env, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    pub(crate) fn new<F>(config: Config, init: F) -> Self
    where
        F: FnOnce(Nursery<'env, E>) -> Fut,
    {
        NurseryFuture {
            inner: NurseryAll::new(config, init),
        }
    }
}

impl<T, E, Fut> fmt::Debug for NurseryFuture<'_, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryFuture")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T, E, Fut> Future for NurseryFuture<'_, T, E, Fut>
where
    E: fmt::Display + Send + 'static,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        let name = inner.config.name.clone();
        inner.poll(cx).map(|out| {
            out.map_err(|errors| {
                report_suppressed(&name, &errors.all()[1..], "an earlier failure is returned");
                errors.into_first()
            })
        })
    }
}
