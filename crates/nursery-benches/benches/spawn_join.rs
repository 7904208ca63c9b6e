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
//! 100 000, on the current-thread and the multi-thread runtime.
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

fn spawn_join(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        let mut group = c.benchmark_group(format!("spawn_join/{rt_name}"));
        for n in SIZES {
            if n >= 100_000 {
                group.sample_size(10);
            } else {
                group.sample_size(50);
            }
            group.bench_with_input(BenchmarkId::new("nursery", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    nursery::nursery(|nursery| async move {
                        for i in 0..n {
                            nursery.spawn(async move {
                                work(i).await;
                                Ok::<_, BenchError>(())
                            });
                        }
                        Ok(())
                    })
                    .await
                    .expect("nursery");
                });
            });
            group.bench_with_input(BenchmarkId::new("raw_spawn", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    let mut handles = Vec::with_capacity(n);
                    for i in 0..n {
                        handles.push(tokio::spawn(work(i)));
                    }
                    for handle in handles {
                        handle.await.expect("join");
                    }
                });
            });
            group.bench_with_input(BenchmarkId::new("joinset", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    let mut set = JoinSet::new();
                    for i in 0..n {
                        set.spawn(work(i));
                    }
                    while let Some(done) = set.join_next().await {
                        done.expect("join");
                    }
                });
            });
            group.bench_with_input(BenchmarkId::new("tracker_token", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
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
                });
            });
            group.bench_with_input(BenchmarkId::new("futures_unordered", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    let mut children: FuturesUnordered<_> = (0..n).map(work).collect();
                    while children.next().await.is_some() {}
                });
            });
            group.bench_with_input(BenchmarkId::new("moro", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    moro::async_scope!(|scope| {
                        for i in 0..n {
                            drop(scope.spawn(work(i)));
                        }
                    })
                    .await;
                });
            });
        }
        group.finish();
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::spawn_join);
}

criterion_main!(group::benches);
