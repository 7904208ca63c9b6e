//! Spawn N children and wait for all of them, on this library and on what a tokio user would
//! write instead:
//!
//! - `nursery`: `nursery(|n| ...)` spawning N children with `Nursery::spawn`;
//! - `raw_spawn`: `tokio::spawn` N times, then await every `JoinHandle`;
//! - `joinset`: `JoinSet::spawn` N times, then `join_next` until empty;
//! - `tracker_token`: tokio-util's `TaskTracker` with a child `CancellationToken` per task (each
//!   task selects on its token), then `close` + `wait`;
//! - `futures_unordered`: N futures in one `FuturesUnordered` (no tasks: polled in place);
//! - `moro`: `moro::async_scope!` with N jobs (polled in place).
//!
//! Every child does the same trivial work (reads its index and completes). N = 1 000 and
//! 100 000, on the current-thread and the multi-thread runtime. The `spawn_join_typical` groups
//! repeat all of it with children that keep 256 bytes of state across an await, so the fixed
//! per-child costs are seen next to a realistic task size (tokio rounds task cells to
//! 128 bytes, which a tiny future makes matter most).
//!
//! ```text
//! cargo bench -p nursery-benches --bench spawn_join
//! ```

mod support;

use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion};
use futures_util::stream::{FuturesUnordered, StreamExt};
use support::BenchError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SIZES: [usize; 2] = [1_000, 100_000];

/// The work of one child, the same for every implementation.
async fn work(i: usize) -> usize {
    black_box(i)
}

/// The same work by a child that keeps 256 bytes of state across an await, like a small
/// protocol handler: its future is 256 bytes larger, for every implementation alike.
async fn work_typical(i: usize) -> usize {
    let state = black_box([7u8; 256]);
    std::future::ready(()).await;
    black_box(&state);
    black_box(i)
}

const IMPLEMENTATIONS: [&str; 6] = [
    "nursery",
    "raw_spawn",
    "joinset",
    "tracker_token",
    "futures_unordered",
    "moro",
];

/// Spawns `n` children doing `work` with `implementation` and waits for all of them.
async fn spawn_and_join<W, Fut>(implementation: &str, n: usize, work: W)
where
    W: Fn(usize) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    match implementation {
        "nursery" => nursery::nursery(|nursery| async move {
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

fn spawn_join(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        // Every implementation once at the largest size before anything is timed, so the first
        // one measured does not pay for growing the allocator's and the runtime's buffers.
        for implementation in IMPLEMENTATIONS {
            rt.block_on(spawn_and_join(implementation, SIZES[SIZES.len() - 1], work));
            rt.block_on(spawn_and_join(
                implementation,
                SIZES[SIZES.len() - 1],
                work_typical,
            ));
        }
        for (workload, typical) in [("spawn_join", false), ("spawn_join_typical", true)] {
            let mut group = c.benchmark_group(format!("{workload}/{rt_name}"));
            for n in SIZES {
                if n >= 100_000 {
                    group.sample_size(10);
                } else {
                    group.sample_size(50);
                }
                for implementation in IMPLEMENTATIONS {
                    group.bench_with_input(BenchmarkId::new(implementation, n), &n, |b, &n| {
                        if typical {
                            b.to_async(&rt)
                                .iter(|| spawn_and_join(implementation, n, work_typical));
                        } else {
                            b.to_async(&rt)
                                .iter(|| spawn_and_join(implementation, n, work));
                        }
                    });
                }
            }
            group.finish();
        }
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::spawn_join);
}

criterion_main!(group::benches);
