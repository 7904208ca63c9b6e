//! Collecting what finished by a deadline (DESIGN §7, Java's `Joiner` with `onTimeout`):
//! `collect_at` and `collect_after` join value-children until a deadline, take the snapshot there,
//! cancel the rest and wait for them to unwind. They sit on `ChildHandle::join` (`crate::child`);
//! nothing here touches the nursery's own state, so not finishing in time is not a failure.

use std::future::{poll_fn, Future};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::cancel::reason::CancelReason;
use crate::child::handle::ChildHandle;
use crate::child::join::{Join, JoinError};

/// What [`collect_at`] found for one child, in the order the handles were given.
///
/// # Examples
///
/// ```
/// use tokio_nursery::Collected;
///
/// let done: Collected<u32> = Collected::Value(7);
/// assert_eq!(done.into_value(), Some(7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Collected<T> {
    /// The child finished with this value by the deadline.
    Value(T),
    /// The child ended without a value before the deadline: it failed (its error went to the
    /// nursery), panicked, or was cancelled by something else.
    Ended(JoinError),
    /// The child was still running at the deadline and was cancelled then.
    TimedOut {
        /// Why it is cancelled: [`CancelReason::Deadline`], or the reason it was already being
        /// cancelled for when the deadline came.
        reason: CancelReason,
        /// A value the child still returned while it unwound (it was shielded, say): not part
        /// of the snapshot, but not thrown away either.
        late: Option<T>,
    },
    /// The handle carries no value to wait for (it came from `spawn`, `spawn_named`,
    /// `spawn_blocking` or `spawn_borrowing`, not `spawn_returning`): the child was left alone.
    NotJoinable,
}

impl<T> Collected<T> {
    /// The value, if the child finished in time.
    ///
    /// ```
    /// use tokio_nursery::{CancelReason, Collected};
    ///
    /// let late: Collected<u32> = Collected::TimedOut { reason: CancelReason::Deadline, late: None };
    /// assert_eq!(late.into_value(), None);
    /// ```
    pub fn into_value(self) -> Option<T> {
        match self {
            Collected::Value(value) => Some(value),
            _ => None,
        }
    }

    /// A reference to the value, if the child finished in time.
    ///
    /// ```
    /// use tokio_nursery::Collected;
    ///
    /// assert_eq!(Collected::Value("done").value(), Some(&"done"));
    /// ```
    pub fn value(&self) -> Option<&T> {
        match self {
            Collected::Value(value) => Some(value),
            _ => None,
        }
    }

    /// Whether the child was still running at the deadline.
    ///
    /// ```
    /// use tokio_nursery::{CancelReason, Collected};
    ///
    /// let late: Collected<()> = Collected::TimedOut { reason: CancelReason::Deadline, late: None };
    /// assert!(late.is_timed_out());
    /// ```
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Collected::TimedOut { .. })
    }
}

/// Waits for value-children (from [`Nursery::spawn_returning`](crate::Nursery::spawn_returning))
/// until `deadline`, then takes the snapshot: the value of each child that finished, and for each
/// of the rest a reason. The rest are cancelled at the deadline, and this returns once they have
/// unwound (for plain children, at the deadline itself). Returns earlier when every child has
/// ended. Results come in the order of `children`, which is spawn order when the handles are
/// collected as they are spawned.
///
/// Not finishing in time is not a failure: the nursery is not cancelled, and a cancelled child's
/// failure to finish is not an error. A child's *error* still goes to its nursery as usual.
///
/// # Cancel safety
///
/// Not cancel safe: values already joined are dropped with the future. The children are not
/// affected by the drop; those cancelled at the deadline stay cancelled.
///
/// # Drop behavior
///
/// Dropping it drops its joins only; the children go on in their nursery.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use tokio_nursery::Collected;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::nursery(|n| async move {
///     let replicas: Vec<_> = [10u64, 30, 500]
///         .into_iter()
///         .map(|ms| n.spawn_returning(async move {
///             tokio::time::sleep(Duration::from_millis(ms)).await;
///             Ok::<_, std::io::Error>(ms)
///         }))
///         .collect();
///     let deadline = Instant::now() + Duration::from_millis(100);
///     let got = tokio_nursery::collect_at(replicas, deadline).await;
///     assert_eq!(got[0], Collected::Value(10));
///     assert_eq!(got[1], Collected::Value(30));
///     assert!(got[2].is_timed_out()); // cancelled at 100 ms
///     Ok(got.into_iter().filter_map(Collected::into_value).sum::<u64>())
/// })
/// .await;
/// assert_eq!(out.unwrap(), 40);
/// # }
/// ```
pub async fn collect_at<T, I>(children: I, deadline: Instant) -> Vec<Collected<T>>
where
    T: Send + 'static,
    I: IntoIterator<Item = ChildHandle<T>>,
{
    let mut entries: Vec<Entry<T>> = children.into_iter().map(Entry::new).collect();
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    let all_ended = poll_fn(|cx| {
        // The joins first: what ended by the time the timer fires is in the snapshot.
        if poll_entries(&mut entries, cx) {
            return Poll::Ready(true);
        }
        sleep.as_mut().poll(cx).map(|()| false)
    })
    .await;
    if !all_ended {
        for entry in entries
            .iter_mut()
            .filter(|e| e.out.is_none() && e.join.is_some())
        {
            entry.timed_out = true;
            entry.handle.cancel_with_reason(CancelReason::Deadline);
        }
        poll_fn(|cx| {
            if poll_entries(&mut entries, cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
    entries.into_iter().map(Entry::finish).collect()
}

/// [`collect_at`] with a deadline `timeout` from now.
///
/// # Cancel safety
///
/// As [`collect_at`].
///
/// # Drop behavior
///
/// As [`collect_at`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// tokio_nursery::nursery(|n| async move {
///     let slow = n.spawn_returning(std::future::pending::<Result<u8, String>>());
///     let got = tokio_nursery::collect_after([slow], Duration::from_secs(1)).await;
///     assert!(got[0].is_timed_out());
///     Ok::<_, String>(())
/// })
/// .await
/// .unwrap();
/// # }
/// ```
pub async fn collect_after<T, I>(children: I, timeout: Duration) -> Vec<Collected<T>>
where
    T: Send + 'static,
    I: IntoIterator<Item = ChildHandle<T>>,
{
    let deadline = Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(far_future);
    collect_at(children, deadline).await
}

/// About thirty years from now: what tokio itself uses for "never".
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

struct Entry<T> {
    handle: ChildHandle<T>,
    /// `None` for a handle without a value slot.
    join: Option<Join<T>>,
    out: Option<Result<T, JoinError>>,
    timed_out: bool,
}

impl<T: Send + 'static> Entry<T> {
    fn new(handle: ChildHandle<T>) -> Self {
        let join = handle.has_value().then(|| handle.clone().join());
        Entry {
            handle,
            join,
            out: None,
            timed_out: false,
        }
    }

    fn finish(self) -> Collected<T> {
        match (self.join.is_some(), self.out, self.timed_out) {
            (false, _, _) => Collected::NotJoinable,
            (true, Some(Ok(value)), false) => Collected::Value(value),
            (true, Some(Err(error)), false) => Collected::Ended(error),
            (true, out, true) => Collected::TimedOut {
                reason: self
                    .handle
                    .cancel_reason()
                    .unwrap_or(CancelReason::Deadline),
                late: out.and_then(Result::ok),
            },
            // `collect_at` waits for every join before finishing.
            (true, None, false) => Collected::Ended(JoinError::AlreadyJoined),
        }
    }
}

/// Polls every join not ended yet; `true` once all have.
fn poll_entries<T>(entries: &mut [Entry<T>], cx: &mut Context<'_>) -> bool {
    let mut all = true;
    for entry in entries {
        let (Some(join), None) = (entry.join.as_mut(), entry.out.as_ref()) else {
            continue;
        };
        match std::pin::Pin::new(join).poll(cx) {
            Poll::Ready(out) => entry.out = Some(out),
            Poll::Pending => all = false,
        }
    }
    all
}
