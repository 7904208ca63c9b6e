//! Overhead of a borrowing child: `Nursery::spawn_borrowing` against a plain
//! `FuturesUnordered` and against `moro::async_scope!`.
//!
//! Every variant runs the same N children on a current-thread runtime. Each child borrows a
//! slice element and a counter from the caller's stack, yields once, adds its element to the
//! counter and completes; the sum is then checked.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_main, BenchmarkId, Criterion};
use futures_util::stream::{FuturesUnordered, StreamExt};

const SIZES: [usize; 2] = [10, 1000];

/// What one child does, for every variant: read the borrowed element, yield once, add it to the
/// borrowed counter.
async fn child(data: &[u64], i: usize, sum: &AtomicU64) {
    let v = data[i];
    tokio::task::yield_now().await;
    sum.fetch_add(v, Ordering::Relaxed);
}

fn expected(n: usize) -> u64 {
    let n = n as u64;
    n * (n - 1) / 2
}

fn borrowing_children(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("borrowing_children");

    for n in SIZES {
        let data: Vec<u64> = (0..n as u64).collect();
        let data = data.as_slice();
        let want = expected(n);

        group.bench_with_input(BenchmarkId::new("nursery", n), &n, |b, &n| {
            b.to_async(&rt).iter(|| async move {
                let sum = AtomicU64::new(0);
                let sum_ref = &sum;
                nursery::nursery(|nursery| async move {
                    for i in 0..black_box(n) {
                        nursery.spawn_borrowing(async move {
                            child(data, i, sum_ref).await;
                            Ok::<_, std::io::Error>(())
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

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::borrowing_children);
}

criterion_main!(group::benches);
