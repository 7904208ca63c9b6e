//! `with_resource`: acquire, use, always release, built on `Nursery::defer`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::nursery::builder::nursery;

/// Acquires a resource, runs `body` with it, and always releases it: the `async with` of this
/// library, built on [`Nursery::defer`](crate::Nursery::defer).
///
/// `release` runs on every exit path once `acquire` succeeded (body success, error, panic,
/// cancellation from an enclosing scope), shielded and bounded by the default cleanup timeout;
/// a release error is a failure like any other. If `acquire` fails, its error is returned and
/// nothing is released.
///
/// # Cancel safety
///
/// Dropping the future before completion runs `release` in a detached task (see
/// [`NurseryFuture`](crate::NurseryFuture)).
///
/// # Drop behavior
///
/// As for [`NurseryFuture`](crate::NurseryFuture).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let released = Arc::new(AtomicBool::new(false));
/// let flag = released.clone();
/// let out = tokio_nursery::with_resource(
///     async { Ok::<_, String>(String::from("connection")) },
///     |conn| async move { Err::<(), _>(format!("{conn} failed")) },
///     move |_conn| async move {
///         flag.store(true, Ordering::SeqCst);
///         Ok(())
///     },
/// )
/// .await;
/// assert_eq!(out.unwrap_err(), "connection failed");
/// assert!(released.load(Ordering::SeqCst));
/// # }
/// ```
pub async fn with_resource<R, T, E, Acquire, Body, BodyFut, Release, ReleaseFut>(
    acquire: Acquire,
    body: Body,
    release: Release,
) -> Result<T, E>
where
    Acquire: Future<Output = Result<R, E>>,
    R: Send + Sync + 'static,
    Body: FnOnce(Arc<R>) -> BodyFut,
    BodyFut: Future<Output = Result<T, E>>,
    Release: FnOnce(Arc<R>) -> ReleaseFut,
    ReleaseFut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    let resource = Arc::new(acquire.await?);
    nursery(|n| {
        n.defer(release(Arc::clone(&resource)));
        body(resource)
    })
    .await
}
