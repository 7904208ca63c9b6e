//! The timeout helpers built on `CancelScope`: `move_on_after`/`move_on_at` (return `None`),
//! `fail_after`/`fail_at` (return `Err(Elapsed)`) and `shield`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use tokio::time::Instant;

use crate::cancel::context::NodeSpec;
use crate::cancel::run::Run;
use crate::cancel::scope::CancelScope;
use crate::error::Elapsed;

/// Runs `body` with a timeout; `None` if the timeout expired first (trio's `move_on_after`).
///
/// The timeout starts at the first poll. `Duration::MAX` means no deadline; `Duration::ZERO`
/// returns `None` without polling the body. Unlike `tokio::time::timeout`, nested structure
/// unwinds before this returns, and a deadline and a wake-up at the same instant resolve in
/// favour of the deadline.
///
/// # Cancel safety
///
/// As for [`Run`]: dropping it drops the body.
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::move_on_after(Duration::from_millis(100), tokio::time::sleep(Duration::from_secs(1))).await;
/// assert_eq!(out, None);
/// # }
/// ```
#[track_caller]
pub fn move_on_after<F: IntoFuture>(timeout: Duration, body: F) -> Run<F::IntoFuture> {
    // Built directly (not through `CancelScope`'s builder): this is the hot path of timeouts.
    Run::new(
        None,
        NodeSpec {
            location: Some(std::panic::Location::caller()),
            ..NodeSpec::EMPTY
        },
        Some(timeout),
        None,
        None,
        body.into_future(),
    )
}

/// Runs `body` until `deadline`; `None` if it passed first (trio's `move_on_at`).
///
/// # Cancel safety
///
/// As for [`Run`].
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let past = Instant::now();
/// tokio::time::advance(Duration::from_secs(1)).await;
/// assert_eq!(tokio_nursery::move_on_at(past, async { 1 }).await, None);
/// # }
/// ```
#[track_caller]
pub fn move_on_at<F: IntoFuture>(deadline: Instant, body: F) -> Run<F::IntoFuture> {
    let spec = NodeSpec {
        deadline: Some(deadline),
        location: Some(std::panic::Location::caller()),
        ..NodeSpec::EMPTY
    };
    Run::new(None, spec, None, None, None, body.into_future())
}

/// Runs `body` with a timeout; `Err(Elapsed)` if the timeout expired first (trio's
/// `fail_after`).
///
/// If the body completes while the scope is cancelled (an error found while unwinding), its
/// value is returned: a real outcome beats the timeout.
///
/// # Cancel safety
///
/// As for [`Run`].
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::fail_after(Duration::from_secs(1), async { 7 }).await;
/// assert_eq!(out, Ok(7));
/// # }
/// ```
#[track_caller]
pub fn fail_after<F: IntoFuture>(timeout: Duration, body: F) -> FailAfter<F::IntoFuture> {
    FailAfter {
        run: move_on_after(timeout, body),
    }
}

/// Runs `body` until `deadline`; `Err(Elapsed)` if it passed first (trio's `fail_at`).
///
/// # Cancel safety
///
/// As for [`Run`].
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let deadline = Instant::now() + Duration::from_millis(5);
/// let out = tokio_nursery::fail_at(deadline, std::future::pending::<()>()).await;
/// assert!(out.unwrap_err().is_timeout());
/// # }
/// ```
#[track_caller]
pub fn fail_at<F: IntoFuture>(deadline: Instant, body: F) -> FailAfter<F::IntoFuture> {
    FailAfter {
        run: move_on_at(deadline, body),
    }
}

/// The future returned by [`fail_after`] and [`fail_at`].
///
/// # Cancel safety
///
/// As for [`Run`].
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let fut: tokio_nursery::FailAfter<_> = tokio_nursery::fail_after(Duration::ZERO, async { 1 });
/// assert!(fut.await.is_err());
/// # }
/// ```
#[pin_project]
#[must_use = "a timeout does nothing unless awaited"]
#[derive(Debug)]
pub struct FailAfter<F: Future> {
    #[pin]
    run: Run<F>,
}

impl<F: Future> Future for FailAfter<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().run.poll(cx).map(|out| out.ok_or(Elapsed))
    }
}

/// Runs `body` shielded from enclosing cancellation (trio's `CancelScope(shield=True)`).
///
/// Scopes inside the shield still work: a timeout inside it still expires.
///
/// # Cancel safety
///
/// Dropping it drops the body; the shield only blocks cancellation from enclosing scopes.
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// use tokio_nursery::CancelScope;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let scope = CancelScope::new();
/// let h = scope.handle();
/// let out = scope
///     .run(async move {
///         h.cancel();
///         tokio_nursery::shield(async {
///             tokio::task::yield_now().await; // not interrupted
///             "flushed"
///         })
///         .await
///     })
///     .await;
/// assert_eq!(out, Some("flushed"));
/// # }
/// ```
#[track_caller]
pub fn shield<F: IntoFuture>(body: F) -> Shield<F::IntoFuture> {
    Shield {
        run: CancelScope::new().with_shield(true).run(body),
    }
}

/// The future returned by [`shield`].
///
/// # Cancel safety
///
/// As for [`Run`].
///
/// # Drop behavior
///
/// As for [`Run`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let fut: tokio_nursery::Shield<_> = tokio_nursery::shield(async { 2 });
/// assert_eq!(fut.await, 2);
/// # }
/// ```
#[pin_project]
#[must_use = "a shield does nothing unless awaited"]
#[derive(Debug)]
pub struct Shield<F: Future> {
    #[pin]
    run: Run<F>,
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().run.poll(cx).map(|out| {
            // Only a scope's own cancellation can make it absorb, and nobody holds this one's
            // handle: its body always completes.
            out.expect("a shield scope has no handle and no deadline, so it cannot be cancelled")
        })
    }
}
