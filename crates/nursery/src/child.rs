// A spawned child: its own tokio task, its own node under the nursery's children group.
//
// States of `ChildTask` (same shape as a scope's `Run`):
//   Running   - the child's future is polled under the child's node.
//   Unwinding - the node is cancelled; the future is polled only while live structure remains
//               inside it, then dropped.
//   Draining  - the future is gone; waiting for orphans adopted by the child's node.
//   Done      - the child left the nursery.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project::{pin_project, pinned_drop};

use crate::context;
use crate::core::{Core, Source};
use crate::join::{Join, ValueSlot};
use crate::panic;
use crate::reason::CancelReason;
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
    node: Arc<Node>,
    /// A `ValueSlot<T>` for `spawn_returning` children, type-erased so the handle is
    /// `Send + Sync + Clone` whatever `T` is.
    value: Option<Arc<dyn Any + Send + Sync>>,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for ChildHandle<T> {
    fn clone(&self) -> Self {
        ChildHandle {
            node: Arc::clone(&self.node),
            value: self.value.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ChildHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildHandle")
            .field("name", &self.node.name())
            .field("cancelled", &self.node.is_cancelled())
            .field("finished", &self.node.is_finished())
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
        Join::new(slot, self.node)
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
        self.node.cancel(CancelReason::explicit(None));
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
        self.node.public_reason()
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
        self.node.is_cancelled()
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
        self.node.is_finished()
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
        self.node.name().map(|n| &**n)
    }
}

impl<T> ChildHandle<T> {
    /// The same child, seen as returning `U`.
    pub(crate) fn retype<U>(self) -> ChildHandle<U> {
        ChildHandle {
            node: self.node,
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
        let node = Node::new(NodeKind::Child, name);
        node.detach();
        ChildHandle {
            node,
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
    let node = Node::new_attached(NodeKind::Child, name, &core.group);
    Ok(prepare_joined(core, node, fut, None))
}

/// `prepare` for a child that already joined the nursery and whose node is attached.
pub(crate) fn prepare_joined<E, T, F>(
    core: &Arc<Core<E>>,
    node: Arc<Node>,
    fut: F,
    pre_start: Option<Arc<dyn PreStart<E>>>,
) -> (ChildHandle<T>, Option<ChildTask<E, F>>)
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    let handle = ChildHandle {
        node: Arc::clone(&node),
        value: None,
        _value: PhantomData,
    };
    if node.is_cancelled() {
        drop_reporting(core, &node, fut);
        core.mark_cancelled_inside();
        node.detach();
        if let Some(pre_start) = pre_start {
            pre_start.ended(true);
        }
        core.leave();
        return (handle, None);
    }
    let span = tracing::debug_span!(
        "child",
        name = node.name().map_or("", |n| &**n),
        nursery = core.name.as_deref().unwrap_or(""),
    );
    let task = ChildTask {
        fut: Some(fut),
        node,
        core: Arc::clone(core),
        state: State::Running,
        pre_start,
        dropped_by_cancel: false,
        span,
    };
    (handle, Some(task))
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

fn reason_text(node: &Node) -> String {
    node.public_reason()
        .map_or_else(|| String::from("cancelled"), |r| r.to_string())
}

/// Drops a child's future, catching a panicking destructor.
fn drop_reporting<E, F>(core: &Core<E>, node: &Node, fut: F)
where
    E: std::fmt::Display + Send + 'static,
{
    if let Err(payload) = panic::catch(move || drop(fut)) {
        core.record_panic(payload, Source::Child(node.name().cloned()));
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
    node: Arc<Node>,
    core: Arc<Core<E>>,
    state: State,
    /// Set for a child of `start` until it signals: its failures go to the caller.
    pre_start: Option<Arc<dyn PreStart<E>>>,
    dropped_by_cancel: bool,
    /// Parented to the spawner's span, so logs show which code spawned the child.
    span: tracing::Span,
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
        let _entered = this.span.enter();
        loop {
            match *this.state {
                State::Running | State::Unwinding => {
                    // A running child registers after its poll (below), so a child that completes
                    // on its first poll never clones its waker; an unwinding one registers first,
                    // since it then waits on the node's live count.
                    if *this.state == State::Unwinding {
                        this.node.register_owner(cx.waker());
                    }
                    if this.node.is_cancelled() {
                        *this.state = State::Unwinding;
                    }
                    let unwinding = *this.state == State::Unwinding;
                    if unwinding && this.node.live() == 0 {
                        let mut fut = this.fut.as_mut();
                        if let Err(payload) = panic::catch(|| fut.set(None)) {
                            this.core
                                .record_panic(payload, Source::Child(this.node.name().cloned()));
                        }
                        this.core.mark_cancelled_inside();
                        *this.dropped_by_cancel = true;
                        tracing::debug!(reason = %reason_text(this.node), "child dropped by cancellation");
                        *this.state = State::Draining;
                        continue;
                    }
                    let fut = this
                        .fut
                        .as_mut()
                        .as_pin_mut()
                        .expect("running child has a future");
                    let polled = panic::catch(|| context::enter(this.node, || fut.poll(cx)));
                    let source = || Source::Child(this.node.name().cloned());
                    match polled {
                        Ok(Poll::Pending) => {
                            // Register, then re-check (invariant 5 of the tree): a cancel that
                            // landed during the poll is seen here or wakes us.
                            this.node.register_owner(cx.waker());
                            if this.node.is_cancelled() {
                                *this.state = State::Unwinding;
                                if this.node.live() == 0 {
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
                    this.node.register_owner(cx.waker());
                    if this.node.live() > 0 {
                        return Poll::Pending;
                    }
                    *this.state = State::Done;
                    this.node.detach();
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
                .record_panic(payload, Source::Child(this.node.name().cloned()));
        }
        this.core.mark_cancelled_inside();
        this.node.detach();
        if let Some(pre_start) = this.pre_start.take() {
            pre_start.ended(true);
        }
        this.core.leave();
    }
}
