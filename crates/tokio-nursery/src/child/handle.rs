//! A child of a nursery as its spawner sees it: `ChildHandle`, and how a child joins
//! (`join_with`, `spawn`). A spawned child is its own tokio task with a slot in the nursery's
//! roster (`roster.rs`); it gets a node in the cancel tree only when it needs one. `start`
//! children have a node from the beginning (it moves from the caller's scope). The task itself
//! is in `runner.rs`.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::cancel::reason::CancelReason;
use crate::cancel::tree::Node;
use crate::child::join::{Join, ValueSlot};
use crate::child::link::{HandleLink, SlotHandle};
use crate::child::roster::SlotRef;
use crate::child::runner::{refuse, ChildTask, PreStart, TaskLink};
use crate::location::LocationId;
use crate::nursery::core::Core;
use crate::nursery::gate::Permit;
use crate::nursery::policy::Limited;

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
/// let out = tokio_nursery::nursery(|n| async move {
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
    /// tokio_nursery::nursery(|n| async move {
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
    /// tokio_nursery::nursery(|n| async move {
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
            // Refused children never ran: nothing to cancel.
            HandleLink::Rejected(_) => {}
        }
    }

    /// Why the child was cancelled: its own reason (from [`cancel`](Self::cancel)), or
    /// [`CancelReason::ParentCancelled`] with the nursery's reason (for example the sibling that
    /// failed). `None` if it was not cancelled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// tokio_nursery::nursery(|n| async move {
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
    /// tokio_nursery::nursery(|n| async move {
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
    /// let child = tokio_nursery::nursery(|n| async move {
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
    /// tokio_nursery::nursery(|n| async move {
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

    /// Whether the handle has a value to join (a `spawn_returning` child).
    pub(crate) fn has_value(&self) -> bool {
        self.value.is_some()
    }

    /// `cancel` with a reason (`collect_at` cancels with `Deadline`).
    pub(crate) fn cancel_with_reason(&self, reason: CancelReason) {
        if let HandleLink::Slot(h) = &self.link {
            h.slot.roster.cancel(h.slot.key, reason);
        }
    }

    /// A handle for a child refused by a closed nursery: already finished.
    pub(crate) fn rejected(name: Option<Arc<str>>) -> Self {
        ChildHandle {
            link: HandleLink::Rejected(name),
            value: None,
            _value: PhantomData,
        }
    }
}

/// Joins the nursery and takes a roster slot: the child's handle and its runner's link. `None`
/// if the nursery is closed. Not generic over the future, which stays where it is meanwhile.
fn enlist<E, T>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    site: LocationId,
) -> Option<(ChildHandle<T>, TaskLink)>
where
    E: std::fmt::Display + Send + 'static,
{
    if !core.try_join() {
        return None;
    }
    let key = core.roster().enroll(name.clone(), site);
    let handle = ChildHandle {
        link: HandleLink::Slot(SlotHandle {
            slot: SlotRef {
                roster: Arc::clone(core.roster()),
                key,
            },
            name,
        }),
        value: None,
        _value: PhantomData,
    };
    let link = TaskLink::Slot {
        key,
        node: None,
        registered: false,
    };
    Some((handle, link))
}

/// Spawns `fut` as a child of the nursery on its own tokio task; in a limited nursery it first
/// waits in line for a slot (`nursery/policy.rs`).
#[inline]
pub(crate) fn spawn<E, T, F>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    site: LocationId,
    fut: F,
) -> Result<ChildHandle<T>, F>
where
    E: std::fmt::Display + Send + 'static,
    T: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    if let Some(limit) = core.limit() {
        return spawn_task(core, name, site, limit.queue(fut)).map_err(Limited::into_inner);
    }
    spawn_task(core, name, site, fut)
}

/// `spawn` for a child that already holds its slot of a limited nursery.
pub(crate) fn spawn_holding<E, T, F>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    site: LocationId,
    permit: Permit,
    fut: F,
) -> Result<ChildHandle<T>, F>
where
    E: std::fmt::Display + Send + 'static,
    T: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    spawn_task(core, name, site, Limited::holding(permit, fut)).map_err(Limited::into_inner)
}

/// Spawns a `start` child, waiting in line first in a limited nursery. It already joined the
/// nursery, and its node is attached under the caller's scope.
pub(crate) fn spawn_joined<E, F>(
    core: &Arc<Core<E>>,
    node: Arc<Node>,
    fut: F,
    pre_start: Arc<dyn PreStart<E>>,
) where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<(), E>> + Send + 'static,
{
    match core.limit() {
        Some(limit) => run_joined(core, node, limit.queue(fut), pre_start),
        None => run_joined(core, node, fut, pre_start),
    }
}

fn run_joined<E, F>(core: &Arc<Core<E>>, node: Arc<Node>, fut: F, pre_start: Arc<dyn PreStart<E>>)
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<(), E>> + Send + 'static,
{
    let name = node.name().cloned();
    let mut link = TaskLink::Node(node);
    if link.is_cancelled(core.roster()) {
        refuse(core, link, name, fut, Some(pre_start));
        return;
    }
    run_on_runtime(core, ChildTask::new(core, link, name, fut, Some(pre_start)));
}

fn spawn_task<E, T, F>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    site: LocationId,
    fut: F,
) -> Result<ChildHandle<T>, F>
where
    E: std::fmt::Display + Send + 'static,
    T: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    let Some((handle, mut link)) = enlist(core, name.clone(), site) else {
        return Err(fut);
    };
    if link.is_cancelled(core.roster()) {
        refuse(core, link, name, fut, None);
        return Ok(handle);
    }
    // The runner is built as the argument of tokio's spawn, so nothing moves it in between.
    match core.runtime_ref() {
        Some(runtime) => drop(runtime.spawn(ChildTask::new(core, link, name, fut, None))),
        None => no_runtime(core, ChildTask::new(core, link, name, fut, None)),
    }
    Ok(handle)
}

/// Registers `fut` as a child of the nursery and hands its runner to `run`; `Err(fut)` if the
/// nursery is closed. A child of a nursery whose children are already cancelled is dropped
/// unpolled instead (rule 3). The check comes before the runner is built, and the runner is
/// built in the call to `run`, so the future is copied once on its way (each by-value hop of a
/// large future through a function that is not inlined is a `memcpy`).
#[inline(always)]
pub(crate) fn join_with<E, T, F>(
    core: &Arc<Core<E>>,
    name: Option<Arc<str>>,
    site: LocationId,
    fut: F,
    run: impl FnOnce(ChildTask<E, F>),
) -> Result<ChildHandle<T>, F>
where
    E: std::fmt::Display + Send + 'static,
    F: Future<Output = Result<T, E>>,
{
    let Some((handle, mut link)) = enlist(core, name.clone(), site) else {
        return Err(fut);
    };
    if link.is_cancelled(core.roster()) {
        refuse(core, link, name, fut, None);
    } else {
        run(ChildTask::new(core, link, name, fut, None));
    }
    Ok(handle)
}

#[inline(always)]
fn run_on_runtime<E, T, F>(core: &Arc<Core<E>>, task: ChildTask<E, F>)
where
    E: std::fmt::Display + Send + 'static,
    T: Send + 'static,
    F: Future<Output = Result<T, E>> + Send + 'static,
{
    match core.runtime_ref() {
        Some(runtime) => drop(runtime.spawn(task)),
        // Outside any runtime: the task cannot run; dropping it leaves the nursery.
        None => no_runtime(core, task),
    }
}

#[cold]
#[inline(never)]
fn no_runtime<E, F>(core: &Core<E>, task: ChildTask<E, F>)
where
    E: std::fmt::Display + Send + 'static,
{
    tracing::error!(nursery = ?core.name(), "spawn outside a Tokio runtime: child dropped");
    drop(task);
}
