//! Per-child cost of the completion policies against a plain nursery:
//!
//! - `plain`: `nursery(|n| ...)`, N children spawned with `Nursery::spawn`;
//! - `supervisor`: the same children in `supervisor(|n| ...)`;
//! - `limit_unreached`: `NurseryBuilder::limit(N)`: every child takes a semaphore permit, none
//!   waits (the price of the limit's bookkeeping alone);
//! - `limit_16`: `NurseryBuilder::limit(16)`: children past the 16th wait in line and start as
//!   slots free (the price of queueing).
//!
//! Every child yields once and completes. N = 1 000, on the current-thread and the multi-thread
//! runtime.
//!
//! ```text
//! cargo bench -p nursery-benches --bench policy
//! ```

mod support;

use std::hint::black_box;
use std::num::NonZeroUsize;

use criterion::{criterion_main, BenchmarkId, Criterion};
use support::BenchError;
use tokio_nursery::{Nursery, NurseryBuilder};

const N: usize = 1_000;

async fn child() -> Result<(), BenchError> {
    tokio::task::yield_now().await;
    Ok(())
}

async fn spawn_all(n: Nursery<'_, BenchError>) -> Result<(), BenchError> {
    for _ in 0..black_box(N) {
        drop(n.spawn(child()));
    }
    Ok(())
}

fn limited(max: usize) -> NurseryBuilder {
    NurseryBuilder::new().limit(NonZeroUsize::new(max).expect("non-zero"))
}

fn policy(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        let mut group = c.benchmark_group(format!("policy/{rt_name}"));
        group.bench_with_input(BenchmarkId::new("plain", N), &N, |b, _| {
            b.to_async(&rt)
                .iter(|| async { tokio_nursery::nursery(spawn_all).await.expect("plain") });
        });
        group.bench_with_input(BenchmarkId::new("supervisor", N), &N, |b, _| {
            b.to_async(&rt).iter(|| async {
                tokio_nursery::supervisor(spawn_all)
                    .await
                    .expect("supervisor")
            });
        });
        group.bench_with_input(BenchmarkId::new("limit_unreached", N), &N, |b, _| {
            b.to_async(&rt)
                .iter(|| async { limited(N).run(spawn_all).await.expect("limit") });
        });
        group.bench_with_input(BenchmarkId::new("limit_16", N), &N, |b, _| {
            b.to_async(&rt)
                .iter(|| async { limited(16).run(spawn_all).await.expect("limit") });
        });
        group.finish();
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::policy);
}

criterion_main!(group::benches);
