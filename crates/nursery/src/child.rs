// A spawned child: its own tokio task, and a slot in the nursery's roster (`roster.rs`). It gets
// a node in the cancel tree only when it needs one (a structure inside it, a cancel of its own);
// `start` children have a node from the beginning (it moves from the caller's scope).
//
// States of `ChildTask` (same shape as a scope's `Run`):
//   Running   - the child's future is polled under the child's node (or lazily, as its slot).
//   Unwinding - the child is cancelled; the future is polled only while live structure remains
//               inside it, then dropped.
//   Draining  - the future is gone; waiting for orphans adopted by the child's node.
//   Done      - the child left the nursery.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pin_project::{pin_project, pinned_drop};

use crate::context;
use crate::core::{Core, Source};
use crate::join::{Join, ValueSlot};
use crate::panic;
use crate::reason::CancelReason;
use crate::roster::{Roster, SlotRef};
use crate::tree::{Node, NodeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Unwinding,
    Draining,
    Done,
}

/// A handle to one child of a nursery: cancel it alone, read why it was cancelled.
///
/// Dropping the handle does nothing to the child: it keeps running in its nursery.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = nursery::nursery(|n| async move {
///     let child = n.spawn(async {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///         Ok::<_, std::io::Error>(())
///     });
///     child.cancel(); // only this child ends
///     Ok("body went on")
/// })
/// .await;
/// assert_eq!(out.unwrap(), "body went on");
/// # }
/// ```
pub struct ChildHandle<T = ()> {
    link: HandleLink,
    /// A `ValueSlot<T>` for `spawn_returning` children, type-erased so the handle is
    /// `Send + Sync + Clone` whatever `T` is.
    value: Option<Arc<dyn Any + Send + Sync>>,
    _value: PhantomData<fn() -> T>,
}

/// What a handle refers to: a roster slot (spawned and borrowing children), or a node (a child
/// refused by a closed nursery).
#[derive(Clone)]
pub(crate) enum HandleLink {
    Slot(SlotHandle),
    Node(Arc<Node>, Option<Arc<str>>),
}

/// A counted reference to a roster slot (the slot stays while handles refer to it).
pub(crate) struct SlotHandle {
    slot: SlotRef,
    name: Option<Arc<str>>,
}

impl Clone for SlotHandle {
    fn clone(&self) -> Self {
        self.slot.roster.retain(self.slot.key);
        SlotHandle {
            slot: self.slot.clone(),
            name: self.name.clone(),
        }
    }
}

impl Drop for SlotHandle {
    fn drop(&mut self) {
        self.slot.roster.release(self.slot.key);
    }
}

impl HandleLink {
    /// (cancelled, public reason, finished).
    pub(crate) fn status(&self) -> (bool, Option<CancelReason>, bool) {
        match self {
            HandleLink::Slot(h) => h.slot.roster.status(h.slot.key),
            HandleLink::Node(node, _) => (
                node.is_cancelled(),
                node.public_reason(),
                node.is_finished(),
            ),
        }
    }

    fn name(&self) -> Option<&Arc<str>> {
        match self {
            HandleLink::Slot(h) => h.name.as_ref(),
            HandleLink::Node(_, name) => name.as_ref(),
        }
    }
}

impl<T> Clone for ChildHandle<T> {
    fn clone(&self) -> Self {
        ChildHandle {
            link: self.link.clone(),
            value: self.value.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ChildHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (cancelled, _, finished) = self.link.status();
        f.debug_struct("ChildHandle")
            .field("name", &self.link.name())
            .field("cancelled", &cancelled)
            .field("finished", &finished)
            .finish()
    }
}

impl<T> ChildHandle<T> {
    /// Waits for the child and returns its `Ok` value (children from
    /// [`Nursery::spawn_returning`](crate::Nursery::spawn_returning)); a [`JoinError`](crate::JoinError) says why
    /// there is none. The child's error itself goes to the nursery, which returns or reports it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::nursery(|n| async move {
    ///     let sum = n.spawn_returning(async { Ok::<_, String>((1..=10).sum::<u32>()) });
    ///     assert_eq!(sum.join().await, Ok(55));
    ///     Ok::<_, String>(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn join(self) -> Join<T>
    where
        T: Send + 'static,
    {
        let slot = self
            .value
            .and_then(|slot| slot.downcast::<ValueSlot<T>>().ok());
        Join::new(slot, self.link)
    }

    /// Cancels this child only; siblings and the body go on. No effect once it finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::nursery(|n| async move {
    ///     let child = n.spawn(std::future::pending::<Result<(), std::io::Error>>());
    ///     child.cancel();
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancel(&self) {
        match &self.link {
            HandleLink::Slot(h) => h
                .slot
                .roster
                .cancel(h.slot.key, CancelReason::explicit(None)),
            HandleLink::Node(node, _) => {
                node.cancel(CancelReason::explicit(None));
            }
        }
    }

    /// Why the child was cancelled: its own reason (from [`cancel`](Self::cancel)), or
    /// [`CancelReason::ParentCancelled`] with the nursery's reason (for example the sibling that
    /// failed). `None` if it was not cancelled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::nursery(|n| async move {
    ///     let child = n.spawn(std::future::pending::<Result<(), std::io::Error>>());
    ///     assert!(child.cancel_reason().is_none());
    ///     child.cancel();
    ///     assert!(child.cancel_reason().unwrap().is_explicit());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.link.status().1
    }

    /// Whether the child is effectively cancelled now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::nursery(|n| async move {
    ///     let child = n.spawn(std::future::pending::<Result<(), std::io::Error>>());
    ///     n.cancel();
    ///     assert!(child.is_cancelled());
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.link.status().0
    }

    /// Whether the child has left its nursery (completed, failed, or was dropped).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let child = nursery::nursery(|n| async move {
    ///     Ok::<_, std::io::Error>(n.spawn(async { Ok(()) }))
    /// })
    /// .await
    /// .unwrap();
    /// assert!(child.is_finished());
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.link.status().2
    }

    /// The child's name, if it was spawned with one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// nursery::nursery(|n| async move {
    ///     let child = n.spawn_named("worker", async { Ok::<_, std::io::Error>(()) });
    ///     assert_eq!(child.name(), Some("worker"));
    ///     Ok(())
    /// })
    /// .await
    /// .unwrap();
    /// # }
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.link.name().map(|n| &**n)
    }
}

impl<T> ChildHandle<T> {
    /// The same child, seen as returning `U`.
    pub(crate) fn retype<U>(self) -> ChildHandle<U> {
        ChildHandle {
            link: self.link,
            value: None,
            _value: PhantomData,
        }
    }

    /// Attaches the slot a `spawn_returning` child fills.
    pub(crate) fn with_value(mut self, slot: Arc<ValueSlot<T>>) -> Self
    where
        T: Send + 'static,
    {
        self.value = Some(slot);
        self
    }

    /// A handle for a child refused by a closed nursery: already finished.
    pub(crate) fn rejected(name: Option<Arc<str>>) -> Self {
        let node = Node::new(NodeKind::Child, name.clone());
        node.detach();
        ChildHandle {
            link: HandleLink::Node(node, name),
            value: None,
            _value: PhantomData,
        }
    }
}

/// Registers `fut` as a child of the nursery and wraps it in its runner. `Err(fut)` if the
/// nursery is closed (the caller drops it unpolled). `Ok((handle, None))` if the nursery's
/// children are already cancelled: the future was dropped without being polled (rule 3).
#[allow(clippy::type_complexity)]
pub(crate) fn prepare<E, T, F>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    fut: F,
) -> Result<(ChildHandle<T>, Option<ChildTask<E, F>>), F>
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    if !core.try_join() {
        return Err(fut);
    }
    let key = core.roster.enroll(name.clone());
    let slot = SlotRef {
        roster: Arc::clone(&core.roster),
        key,
    };
    let handle = ChildHandle {
        link: HandleLink::Slot(SlotHandle {
            slot: slot.clone(),
            name: name.clone(),
        }),
        value: None,
        _value: PhantomData,
    };
    let link = TaskLink::Slot {
        key,
        node: None,
        registered: false,
    };
    Ok((handle, ready_task(core, link, name, fut, None)))
}

/// `prepare` for a `start` child: it already joined the nursery, and its node is attached
/// under the caller's scope.
pub(crate) fn prepare_joined<E, T, F>(
    core: &Arc<Core<E>>,
    node: Arc<Node>,
    fut: F,
    pre_start: Option<Arc<dyn PreStart<E>>>,
) -> Option<ChildTask<E, F>>
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    let name = node.name().cloned();
    ready_task(core, TaskLink::Node(node), name, fut, pre_start)
}

fn ready_task<E, T, F>(
    core: &Arc<Core<E>>,
    mut link: TaskLink,
    name: Option<Arc<str>>,
    fut: F,
    pre_start: Option<Arc<dyn PreStart<E>>>,
) -> Option<ChildTask<E, F>>
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    if link.is_cancelled(&core.roster) {
        drop_reporting(core, name.as_ref(), fut);
        core.mark_cancelled_inside();
        link.leave(&core.roster);
        if let Some(pre_start) = pre_start {
            pre_start.ended(true);
        }
        core.leave();
        return None;
    }
    let span = tracing::debug_span!(
        "child",
        name = name.as_deref().unwrap_or(""),
        nursery = core.name.as_deref().unwrap_or(""),
    );
    let span = (!span.is_none()).then(|| Box::new(span));
    Some(ChildTask {
        fut: Some(fut),
        link,
        core: Arc::clone(core),
        state: State::Running,
        pre_start,
        dropped_by_cancel: false,
        span,
    })
}

/// Spawns `fut` as a child of the nursery on its own tokio task.
pub(crate) fn spawn<E, T, F>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    fut: F,
) -> Result<ChildHandle<T>, F>
where
    E: std::fmt::Display + Send + 'static,
    T: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    let (handle, task) = prepare(core, name, fut)?;
    if let Some(task) = task {
        match core.runtime_ref() {
            Some(runtime) => drop(runtime.spawn(task)),
            // Outside any runtime: the task cannot run; dropping it leaves the nursery.
            None => {
                tracing::error!(nursery = ?core.name, "spawn outside a Tokio runtime: child dropped");
                drop(task);
            }
        }
    }
    Ok(handle)
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
    fn is_cancelled(&mut self, roster: &Roster) -> bool {
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
#[pin_project(PinnedDrop)]
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
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        loop {
            match *this.state {
                State::Running | State::Unwinding => {
                    // A running child registers after its poll (below), so a child that completes
                    // on its first poll never clones its waker; an unwinding one registers first,
                    // since it then waits on the node's live count.
                    if *this.state == State::Unwinding {
                        this.link.register(&this.core.roster, cx.waker());
                    }
                    if this.link.is_cancelled(&this.core.roster) {
                        *this.state = State::Unwinding;
                    }
                    let unwinding = *this.state == State::Unwinding;
                    if unwinding && this.link.live() == 0 {
                        let mut fut = this.fut.as_mut();
                        if let Err(payload) = panic::catch(|| fut.set(None)) {
                            this.core.record_panic(
                                payload,
                                Source::Child(this.link.name(&this.core.roster)),
                            );
                        }
                        this.core.mark_cancelled_inside();
                        *this.dropped_by_cancel = true;
                        tracing::debug!(reason = %reason_text(this.link, &this.core.roster), "child dropped by cancellation");
                        *this.state = State::Draining;
                        continue;
                    }
                    let fut = this
                        .fut
                        .as_mut()
                        .as_pin_mut()
                        .expect("running child has a future");
                    let link = &mut *this.link;
                    let roster = &this.core.roster;
                    let polled = panic::catch(|| link.enter(roster, || fut.poll(cx)));
                    let source = || Source::Child(this.link.name(&this.core.roster));
                    match polled {
                        Ok(Poll::Pending) => {
                            // Register, then re-check (invariant 5 of the tree): a cancel that
                            // landed during the poll is seen here or wakes us.
                            this.link.register(&this.core.roster, cx.waker());
                            if this.link.is_cancelled(&this.core.roster) {
                                *this.state = State::Unwinding;
                                if this.link.live() == 0 {
                                    continue;
                                }
                            }
                            return Poll::Pending;
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
                }
                State::Draining => {
                    // Only a child with a node can have orphans to wait for.
                    if this.link.node().is_some() {
                        this.link.register(&this.core.roster, cx.waker());
                        if this.link.live() > 0 {
                            return Poll::Pending;
                        }
                    }
                    *this.state = State::Done;
                    this.link.leave(&this.core.roster);
                    if let Some(pre_start) = this.pre_start.take() {
                        pre_start.ended(*this.dropped_by_cancel);
                    }
                    this.core.leave();
                    return Poll::Ready(());
                }
                State::Done => return Poll::Ready(()),
            }
        }
    }
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
        let mut fut = this.fut.as_mut();
        if let Err(payload) = panic::catch(|| fut.set(None)) {
            this.core
                .record_panic(payload, Source::Child(this.link.name(&this.core.roster)));
        }
        this.core.mark_cancelled_inside();
        this.link.leave(&this.core.roster);
        if let Some(pre_start) = this.pre_start.take() {
            pre_start.ended(true);
        }
        this.core.leave();
    }
}
