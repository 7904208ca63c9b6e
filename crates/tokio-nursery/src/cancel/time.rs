//! What the calling code can ask of its enclosing scopes: the effective deadline, the rendered
//! tree, and the cancellation-aware `checkpoint`, `sleep` and `sleep_until`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use tokio::time::Instant;

use crate::cancel::context;

/// The effective deadline of the calling code: the earliest deadline of the enclosing scopes up
/// to the nearest shield. `None` if there is none; a time already passed if the code is
/// cancelled. Use it to propagate deadlines to RPC calls.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// assert_eq!(tokio_nursery::current_deadline(), None);
/// let start = tokio::time::Instant::now();
/// tokio_nursery::move_on_after(Duration::from_secs(5), async move {
///     assert_eq!(tokio_nursery::current_deadline(), Some(start + Duration::from_secs(5)));
/// })
/// .await;
/// # }
/// ```
pub fn current_deadline() -> Option<Instant> {
    context::current().and_then(|node| node.effective_deadline(Instant::now()))
}

/// Renders the whole live tree the calling code runs in (from its outermost scope): scopes,
/// nurseries, children and cleanups with their state and cancel reasons. For debugging.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// tokio_nursery::NurseryBuilder::new()
///     .name("server")
///     .run(|n| async move {
///         n.spawn_named("accept", std::future::pending::<Result<(), String>>());
///         println!("{}", tokio_nursery::render_current_tree());
///         // nursery "server" [running]
///         // └─ child "accept" [running]
///         n.cancel();
///         Ok::<_, String>(())
///     })
///     .await
///     .unwrap();
/// # }
/// ```
pub fn render_current_tree() -> String {
    crate::render::render_current()
}

/// Yields to the scheduler once; never resumes in a cancelled context (the enclosing scope drops
/// it instead). Use it in long computations to let cancellation in.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Nothing happens on drop.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut total = 0u64;
/// for i in 0..1000 {
///     total += i;
///     if i % 100 == 0 {
///         tokio_nursery::checkpoint().await;
///     }
/// }
/// assert_eq!(total, 499_500);
/// # }
/// ```
pub fn checkpoint() -> Checkpoint {
    Checkpoint { yielded: false }
}

/// The future returned by [`checkpoint`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Nothing happens on drop.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let c: tokio_nursery::Checkpoint = tokio_nursery::checkpoint();
/// c.await;
/// # }
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Checkpoint {
    yielded: bool,
}

impl Future for Checkpoint {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if context::current_is_cancelled() {
            context::commit_current_unwinding();
            return Poll::Pending;
        }
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Sleeps for `duration`, like `tokio::time::sleep`, but never resumes in a cancelled context.
///
/// `Duration::MAX` sleeps forever without overflow.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Dropping it deregisters the timer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let start = tokio::time::Instant::now();
/// tokio_nursery::sleep(Duration::from_secs(1)).await;
/// assert_eq!(start.elapsed(), Duration::from_secs(1));
/// # }
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        inner: tokio::time::sleep(duration),
    }
}

/// Sleeps until `deadline`; never resumes in a cancelled context.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Dropping it deregisters the timer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let at = Instant::now() + Duration::from_millis(10);
/// tokio_nursery::sleep_until(at).await;
/// assert!(Instant::now() >= at);
/// # }
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        inner: tokio::time::sleep_until(deadline),
    }
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Drop behavior
///
/// Dropping it deregisters the timer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let s: tokio_nursery::Sleep = tokio_nursery::sleep(Duration::from_millis(1));
/// s.await;
/// # }
/// ```
#[pin_project]
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    #[pin]
    inner: tokio::time::Sleep,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if context::current_is_cancelled() {
            context::commit_current_unwinding();
            return Poll::Pending;
        }
        self.project().inner.poll(cx)
    }
}
