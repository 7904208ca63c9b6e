//! Spawning N children and waiting for them, written once for every implementation; used by the
//! timed `spawn_join` bench and the `instructions` count.

use std::hint::black_box;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The error type of the nursery's children here.
type BenchError = std::io::Error;

/// The work of one child, the same for every implementation.
pub(crate) async fn work(i: usize) -> usize {
    black_box(i)
}

/// The same work by a child that keeps 256 bytes of state across an await, like a small
/// protocol handler: its future is 256 bytes larger, for every implementation alike.
pub(crate) async fn work_typical(i: usize) -> usize {
    let state = black_box([7u8; 256]);
    std::future::ready(()).await;
    black_box(&state);
    black_box(i)
}

pub(crate) const IMPLEMENTATIONS: [&str; 6] = [
    "nursery",
    "raw_spawn",
    "joinset",
    "tracker_token",
    "futures_unordered",
    "moro",
];

/// Spawns `n` children doing `work` with `implementation` and waits for all of them.
pub(crate) async fn spawn_and_join<W, Fut>(implementation: &str, n: usize, work: W)
where
    W: Fn(usize) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    match implementation {
        "nursery" => tokio_nursery::nursery(|nursery| async move {
            for i in 0..n {
                nursery.spawn(async move {
                    work(i).await;
                    Ok::<_, BenchError>(())
                });
            }
            Ok(())
        })
        .await
        .expect("nursery"),
        "raw_spawn" => {
            let mut handles = Vec::with_capacity(n);
            for i in 0..n {
                handles.push(tokio::spawn(work(i)));
            }
            for handle in handles {
                handle.await.expect("join");
            }
        }
        "joinset" => {
            let mut set = JoinSet::new();
            for i in 0..n {
                set.spawn(work(i));
            }
            while let Some(done) = set.join_next().await {
                done.expect("join");
            }
        }
        "tracker_token" => {
            let tracker = TaskTracker::new();
            let token = CancellationToken::new();
            for i in 0..n {
                let child = token.child_token();
                tracker.spawn(async move {
                    tokio::select! {
                        _ = child.cancelled() => {}
                        _ = work(i) => {}
                    }
                });
            }
            tracker.close();
            tracker.wait().await;
        }
        "futures_unordered" => {
            let mut children: FuturesUnordered<_> = (0..n).map(work).collect();
            while children.next().await.is_some() {}
        }
        "moro" => {
            moro::async_scope!(|scope| {
                for i in 0..n {
                    drop(scope.spawn(work(i)));
                }
            })
            .await;
        }
        other => unreachable!("unknown implementation {other}"),
    }
}
