//! Cost of entering and leaving a scope with a deadline, against `tokio::time::timeout`.
//!
//! Every iteration enters and leaves the scope 1 000 times in a row (parameter `x1000`), to keep
//! the harness's per-iteration overhead out of the figure: divide by 1 000 for one scope.
//!
//! `scope_ready`: the body is ready at once (`async { black_box(1) }`), so no timer is armed.
//!
//! - `nursery`: `tokio_nursery::move_on_after(60 s, body)`;
//! - `nursery_plain`: `CancelScope::new().run(body)` (no deadline);
//! - `timeout`: `tokio::time::timeout(60 s, body)`.
//!
//! `scope_deadline`: the body suspends once (`tokio::task::yield_now()`) before returning, so the
//! deadline is armed as a timer and deregistered when the scope ends.
//!
//! - `nursery`: `tokio_nursery::move_on_after(60 s, body)`;
//! - `nursery_fail_after`: `tokio_nursery::fail_after(60 s, body)`;
//! - `timeout`: `tokio::time::timeout(60 s, body)`.
//!
//! Both on the current-thread and the multi-thread runtime (the scopes run in the `block_on`
//! future, as in `spawn_join`).
//!
//! ```text
//! cargo bench -p nursery-benches --bench scope
//! ```

#[allow(dead_code)] // only `runtimes()` is used here
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_main, BenchmarkId, Criterion};
use tokio_nursery::CancelScope;

/// Scopes entered and left per iteration.
const REPEAT: usize = 1_000;
/// The parameter every function is reported under.
const PARAM: &str = "x1000";
/// A deadline that never passes during the bench.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The body of `scope_ready`.
async fn ready() -> i32 {
    black_box(1)
}

/// The body of `scope_deadline`: suspends once.
async fn suspends_once() -> i32 {
    tokio::task::yield_now().await;
    black_box(1)
}

fn scope_ready(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        let mut group = c.benchmark_group(format!("scope_ready/{rt_name}"));
        group.bench_function(BenchmarkId::new("nursery", PARAM), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REPEAT {
                    let out = tokio_nursery::move_on_after(TIMEOUT, ready()).await;
                    black_box(out.expect("not timed out"));
                }
            });
        });
        group.bench_function(BenchmarkId::new("nursery_plain", PARAM), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REPEAT {
                    let out = CancelScope::new().run(ready()).await;
                    black_box(out.expect("not cancelled"));
                }
            });
        });
        group.bench_function(BenchmarkId::new("timeout", PARAM), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REPEAT {
                    let out = tokio::time::timeout(TIMEOUT, ready()).await;
                    black_box(out.expect("not timed out"));
                }
            });
        });
        group.finish();
    }
}

fn scope_deadline(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        let mut group = c.benchmark_group(format!("scope_deadline/{rt_name}"));
        group.bench_function(BenchmarkId::new("nursery", PARAM), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REPEAT {
                    let out = tokio_nursery::move_on_after(TIMEOUT, suspends_once()).await;
                    black_box(out.expect("not timed out"));
                }
            });
        });
        group.bench_function(BenchmarkId::new("nursery_fail_after", PARAM), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REPEAT {
                    let out = tokio_nursery::fail_after(TIMEOUT, suspends_once()).await;
                    black_box(out.expect("not timed out"));
                }
            });
        });
        group.bench_function(BenchmarkId::new("timeout", PARAM), |b| {
            b.to_async(&rt).iter(|| async {
                for _ in 0..REPEAT {
                    let out = tokio::time::timeout(TIMEOUT, suspends_once()).await;
                    black_box(out.expect("not timed out"));
                }
            });
        });
        group.finish();
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::scope_ready, super::scope_deadline);
}

criterion_main!(group::benches);
