//! The spawns of a limited nursery that wait for a slot (`spawn_when_ready`) or refuse when
//! none is free (`try_spawn`): methods of the body's `Nursery`, on the limit of `policy.rs`.

use std::future::Future;
use std::panic::Location;

use crate::child::handle::{self as child, ChildHandle};
use crate::error::TrySpawnError;
use crate::location::LocationId;
use crate::nursery::handle::Nursery;

impl<'env, E: std::fmt::Display + Send + 'static> Nursery<'env, E> {
    /// Spawns a child once the nursery's [limit](crate::NurseryBuilder::limit) has a free slot:
    /// waits (in line with the children already waiting) before it spawns, so a producer slows
    /// down to the pace of the children (backpressure). In a nursery without a limit it spawns
    /// at once, as [`spawn`](Self::spawn).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped while it waits, nothing was spawned, and `fut` is dropped unpolled.
    /// It waits in the caller's scopes, so a cancelled caller stops waiting.
    ///
    /// # Drop behavior
    ///
    /// Dropping it gives up its place in line.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let start = tokio::time::Instant::now();
    /// tokio_nursery::NurseryBuilder::new()
    ///     .limit(NonZeroUsize::new(2).unwrap())
    ///     .run(|n| async move {
    ///         for _ in 0..4 {
    ///             n.spawn_when_ready(async {
    ///                 tokio::time::sleep(Duration::from_secs(1)).await;
    ///                 Ok::<_, std::io::Error>(())
    ///             })
    ///             .await;
    ///         }
    ///         // The last two had to wait for the first two.
    ///         assert_eq!(start.elapsed(), Duration::from_secs(1));
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn spawn_when_ready<'a, F>(
        &'a self,
        fut: F,
    ) -> impl Future<Output = ChildHandle> + use<'a, 'env, E, F>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        // Not an `async fn`, so that the caller's location is taken here, at the call.
        let site = LocationId::of(Location::caller());
        async move {
            let Some(limit) = self.core().limit() else {
                return self.spawn_inner(None, site, fut);
            };
            let permit = limit.permit().await;
            match child::spawn_holding(self.core(), None, site, permit, fut) {
                Ok(handle) => handle,
                Err(fut) => self.rejected(None, fut),
            }
        }
    }

    /// Spawns a child only if the nursery's [limit](crate::NurseryBuilder::limit) has a free
    /// slot and no child waits for one: [`TrySpawnError::Full`] otherwise, and
    /// [`TrySpawnError::Closed`] once the nursery has finished; both give the future back
    /// unpolled. Without a limit only `Closed` can happen.
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out = tokio_nursery::NurseryBuilder::new()
    ///     .limit(NonZeroUsize::new(1).unwrap())
    ///     .run(|n| async move {
    ///         let first = n.try_spawn(async { Ok(()) });
    ///         let second = n.try_spawn(async { Ok(()) });
    ///         Ok::<_, String>((first.is_ok(), second.map_err(|e| e.is_full()).unwrap_err()))
    ///     })
    ///     .await;
    /// assert_eq!(out, Ok((true, true)));
    /// # }
    /// ```
    #[track_caller]
    pub fn try_spawn<F>(&self, fut: F) -> Result<ChildHandle, TrySpawnError<F>>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let site = LocationId::of(Location::caller());
        let spawned = match self.core().limit() {
            None => child::spawn(self.core(), None, site, fut),
            Some(limit) => match limit.try_permit() {
                Some(permit) => child::spawn_holding(self.core(), None, site, permit, fut),
                None => return Err(TrySpawnError::Full(fut)),
            },
        };
        spawned.map_err(TrySpawnError::Closed)
    }
}
