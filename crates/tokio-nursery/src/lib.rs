//! Structured concurrency for tokio, after trio: nurseries, cancel scopes with nested deadlines
//! and shields, typed cancel reasons, and async cleanup that runs exactly once, bounded, on every
//! exit path.
//!
//! # The model: leaves are dropped, structure unwinds
//!
//! Rust cancels a future by dropping it. An ordinary future in a cancelled scope (a sleep, a
//! socket read, your code) is dropped at its current suspension point: you never check for
//! cancellation, and `Cancelled` never appears in your error types. Structure — a nursery with
//! children still running, a cleanup, a shielded scope — is not dropped while it is live: the
//! cancelled scope keeps polling its body until that structure has unwound, then drops it. So a
//! scope returns only after every nested child has finished and every cleanup has run.
//!
//! Exactly one scope absorbs a cancellation: the outermost cancelled scope below the nearest
//! shield. It returns `None` ([`CancelScope::run`], [`move_on_after`]) or `Err(Elapsed)`
//! ([`fail_after`]); inner scopes cancelled only because of it never return.
//!
//! # Example: force-exit on a background failure
//!
//! ```
//! use std::time::Duration;
//!
//! #[derive(Debug, PartialEq)]
//! enum AppError { ConnectionLost(&'static str) }
//! impl std::fmt::Display for AppError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         let AppError::ConnectionLost(why) = self;
//!         write!(f, "connection lost ({why})")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let out = tokio_nursery::nursery(|n| async move {
//!     n.defer(async { /* close the connection */ Ok(()) });
//!     n.spawn_named("watcher", async {
//!         tokio::time::sleep(Duration::from_secs(1)).await; // the peer goes away
//!         Err(AppError::ConnectionLost("peer closed"))
//!     });
//!     loop {
//!         // The body is dropped here the moment the watcher fails.
//!         tokio::time::sleep(Duration::from_millis(100)).await;
//!     }
//! })
//! .await;
//! assert_eq!(out, Err::<(), _>(AppError::ConnectionLost("peer closed")));
//! # }
//! ```
//!
//! # Coming from trio or asyncio
//!
//! | trio | asyncio | nursery |
//! |---|---|---|
//! | `async with open_nursery() as n` | `async with TaskGroup() as tg` | `nursery(\|n\| async move { … })` |
//! | `n.start_soon(f)` | `tg.create_task(f())` | `n.spawn(f)` |
//! | `n.cancel_scope.cancel()` | — | `CancelScope` around the nursery, or `n.cancel()` for the children |
//! | `with CancelScope() as s` | — | `CancelScope::new().run(fut)` |
//! | `move_on_after(d)` / `fail_after(d)` | `asyncio.timeout(d)` | [`move_on_after`] / [`fail_after`] |
//! | `CancelScope(shield=True)` | `asyncio.shield` | [`shield`] |
//! | `finally: await aclose()` | `finally:` | [`Nursery::defer`], [`with_resource`] |
//! | `trio.current_effective_deadline()` | — | [`current_deadline`] |
//! | `trio.lowlevel.checkpoint()` | `await asyncio.sleep(0)` | [`checkpoint`] |
//! | `await n.start(f)` / `task_status.started(v)` | — | `n.start(\|s\| …).await` / `s.started(v)` |
//! | `trio.open_tcp_stream` (happy eyeballs) | — | `race_staggered` |
//! | `task.result()` | `await task` | `n.spawn_returning(f).join().await` |
//! | `trio.to_thread.run_sync(f)` | `asyncio.to_thread(f)` | `n.spawn_blocking(f)` |
//! | — (Kotlin `supervisorScope`) | `gather(…, return_exceptions=True)` | [`supervisor`]: every failure in [`Errors`], nothing cancelled |
//! | `CapacityLimiter(n)` (Go errgroup `SetLimit`) | `asyncio.Semaphore(n)` | [`NurseryBuilder::limit`], [`Nursery::spawn_when_ready`], [`Nursery::try_spawn`] |
//! | — (Java `Joiner` with `onTimeout`) | `asyncio.wait(tasks, timeout=d)`, then cancel the pending | [`collect_after`] / [`collect_at`] |
//! | — (Swift `@TaskLocal`, Java `ScopedValue`) | `contextvars` (copied into each task) | [`Local`]: `ID.scope(v, fut)`, `ID.get()`, inherited by every child; [`with_locals`] for a plain `tokio::spawn` |
//!
//! All timing uses tokio's clock, so tests can run on the paused clock.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod cancel;
mod child;
mod error;
mod local;
mod location;
#[cfg(all(test, loom))]
mod loom_models;
mod nursery;
mod panic;
mod race;
mod render;
mod snapshot;
mod sync;
#[cfg(feature = "testing")]
pub mod testing;

pub use cancel::handler::{with_cancel_handler, WithCancelHandler};
pub use cancel::reason::CancelReason;
pub use cancel::run::Run;
pub use cancel::scope::{CancelHandle, CancelScope, Cancelled};
pub use cancel::time::{
    checkpoint, current_deadline, render_current_tree, sleep, sleep_until, Checkpoint, Sleep,
};
pub use cancel::timeout::{
    fail_after, fail_at, move_on_after, move_on_at, shield, FailAfter, Shield,
};
pub use child::handle::ChildHandle;
pub use child::join::{Join, JoinError};
pub use child::start::{Start, StartError, Started};
pub use error::{CleanupTimedOut, Closed, Elapsed, Errors, TrySpawnError};
pub use local::key::{Local, LocalUnbound};
pub use local::scope::{with_locals, LocalScope, Locals, WithLocals};
pub use nursery::builder::{nursery, nursery_all, supervisor, NurseryBuilder};
pub use nursery::collect::{collect_after, collect_at, Collected};
pub use nursery::future::{NurseryAll, NurseryFuture};
pub use nursery::handle::Nursery;
pub use nursery::remote::NurseryHandle;
pub use nursery::resource::with_resource;
pub use race::{race, race_staggered, RaceError};
pub use snapshot::{snapshot_current_tree, NodeKindView, NodeSnapshot, NodeState, SourceLocation};
