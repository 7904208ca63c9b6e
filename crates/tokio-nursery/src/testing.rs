//! Helpers for tests of code built on this library (feature `testing`).

use std::future::IntoFuture;
use std::time::Duration;

use crate::cancel::scope::CancelScope;

/// Runs `fut` with a time limit; when the limit passes, panics with the live tree of `fut`
/// (what was still running, what was unwinding and why), like Kotlin's `CoroutinesTimeout`.
/// A hang in a test then says where it hangs instead of stopping the test suite.
///
/// `fut` runs inside a cancel scope named `testing::timeout`, so the tree shows everything it
/// started. On the paused clock the limit is paused time.
///
/// # Panics
///
/// When `limit` passes before `fut` completes, with the rendered tree in the message.
///
/// # Cancel safety
///
/// Dropping the future drops `fut` as a cancel scope would.
///
/// # Drop behavior
///
/// As for cancel safety.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let out = tokio_nursery::testing::timeout(Duration::from_secs(5), async { 7 }).await;
/// assert_eq!(out, 7);
///
/// let hung = tokio::spawn(tokio_nursery::testing::timeout(
///     Duration::from_secs(5),
///     tokio_nursery::nursery(|n| async move {
///         n.spawn_named("stuck", std::future::pending::<Result<(), String>>());
///         Ok(())
///     }),
/// ));
/// let message = hung.await.unwrap_err().into_panic();
/// let message = message.downcast_ref::<String>().unwrap();
/// assert!(message.contains("child \"stuck\" [running]"), "{message}");
/// # }
/// ```
pub async fn timeout<F: IntoFuture>(limit: Duration, fut: F) -> F::Output {
    let scope = CancelScope::new().with_name("testing::timeout");
    let handle = scope.handle();
    let mut run = std::pin::pin!(scope.run(fut));
    match tokio::time::timeout(limit, &mut run).await {
        Ok(out) => out.expect("the testing scope is never cancelled"),
        // Rendered while `fut` is still alive: the tree shows what it was waiting for.
        Err(_) => {
            let tree = handle.render_tree();
            panic!("testing::timeout: not finished after {limit:?}; the live tree:\n{tree}")
        }
    }
}
