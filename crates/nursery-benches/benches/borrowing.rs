//! Overhead of a child that borrows from the caller's stack, polled in place (no task):
//!
//! - `nursery`: `nursery(|n| ...)` with N children spawned by `Nursery::spawn_borrowing`;
//! - `futures_unordered`: N futures pushed into one `FuturesUnordered`, drained;
//! - `moro`: `moro::async_scope!` with N jobs.
//!
//! Every child does the same work: it borrows a slice element and a counter from the caller's
//! stack, yields once, adds its element to the counter and completes; the sum is then checked.
//! N = 10 and 1 000, on the current-thread and the multi-thread runtime (the children are
//! polled in the `block_on` future either way).
//!
//! ```text
//! cargo bench -p nursery-benches --bench borrowing
//! ```

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_main, BenchmarkId, Criterion};
use futures_util::stream::{FuturesUnordered, StreamExt};
use support::BenchError;

const SIZES: [usize; 2] = [10, 1_000];

/// What one child does, for every implementation: read the borrowed element, yield once, add
/// it to the borrowed counter.
async fn child(data: &[u64], i: usize, sum: &AtomicU64) {
    let v = data[i];
    tokio::task::yield_now().await;
    sum.fetch_add(v, Ordering::Relaxed);
}

/// The sum every round must find: 0 + 1 + ... + (n - 1).
fn expected(n: usize) -> u64 {
    let n = n as u64;
    n * (n - 1) / 2
}

fn borrowing(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        let mut group = c.benchmark_group(format!("borrowing/{rt_name}"));
        for n in SIZES {
            let data: Vec<u64> = (0..n as u64).collect();
            let data = data.as_slice();
            let want = expected(n);

            group.bench_with_input(BenchmarkId::new("nursery", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    let sum = AtomicU64::new(0);
                    let sum_ref = &sum;
                    tokio_nursery::nursery(|nursery| async move {
                        for i in 0..black_box(n) {
                            nursery.spawn_borrowing(async move {
                                child(data, i, sum_ref).await;
                                Ok::<_, BenchError>(())
                            });
                        }
                        Ok(())
                    })
                    .await
                    .expect("nursery");
                    let total = sum.into_inner();
                    assert_eq!(total, want);
                    black_box(total)
                });
            });

            group.bench_with_input(BenchmarkId::new("futures_unordered", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    let sum = AtomicU64::new(0);
                    let sum_ref = &sum;
                    let mut children = FuturesUnordered::new();
                    for i in 0..black_box(n) {
                        children.push(async move {
                            child(data, i, sum_ref).await;
                        });
                    }
                    while children.next().await.is_some() {}
                    drop(children);
                    let total = sum.into_inner();
                    assert_eq!(total, want);
                    black_box(total)
                });
            });

            group.bench_with_input(BenchmarkId::new("moro", n), &n, |b, &n| {
                b.to_async(&rt).iter(|| async move {
                    let sum = AtomicU64::new(0);
                    let sum_ref = &sum;
                    moro::async_scope!(|scope| {
                        for i in 0..black_box(n) {
                            // The result handle is not needed: the scope awaits every job.
                            drop(scope.spawn(async move {
                                child(data, i, sum_ref).await;
                            }));
                        }
                    })
                    .await;
                    let total = sum.into_inner();
                    assert_eq!(total, want);
                    black_box(total)
                });
            });
        }
        group.finish();
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::borrowing);
}

criterion_main!(group::benches);
