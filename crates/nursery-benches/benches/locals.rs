//! Reading and binding a context value: `tokio_nursery::Local` against `tokio::task_local!`.
//!
//! Every iteration does the operation 1 000 times in a row (parameter `x1000`), to keep the
//! harness's per-iteration overhead out of the figure: divide by 1 000 for one operation. The
//! value is a `u64`, so the figures are the lookup and the bind themselves, not a clone.
//!
//! `local_get`: 1 000 reads inside one binding (the bind is paid once per iteration).
//!
//! - `nursery`: `Local::get` with the key the only one bound;
//! - `nursery_5_bound`: `Local::get` with four other keys bound inside it, so the lookup passes
//!   four bindings first (a `Local` read walks the bindings in effect, innermost first);
//! - `task_local`: `tokio::task_local!`'s `LocalKey::get`.
//!
//! `local_scope`: 1 000 binds around a ready future, each read once inside.
//!
//! - `nursery`: `Local::scope(v, fut)` (one allocation per bind: the binding children inherit);
//! - `task_local`: `LocalKey::scope(v, fut)` (no allocation; nothing is inherited).
//!
//! On the current-thread runtime only: both are thread-local operations of the polling thread.
//!
//! ```text
//! cargo bench -p nursery-benches --bench locals
//! ```

use std::hint::black_box;

use criterion::{criterion_main, BenchmarkId, Criterion};
use tokio_nursery::Local;

/// Operations per iteration.
const REPEAT: u64 = 1_000;
/// The parameter every function is reported under.
const PARAM: &str = "x1000";

static KEY: Local<u64> = Local::new();
static OTHER_1: Local<u64> = Local::new();
static OTHER_2: Local<u64> = Local::new();
static OTHER_3: Local<u64> = Local::new();
static OTHER_4: Local<u64> = Local::new();

tokio::task_local! {
    static TASK_KEY: u64;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("current-thread runtime")
}

async fn read_local() -> u64 {
    let mut sum = 0;
    for _ in 0..REPEAT {
        sum += black_box(KEY.get()).expect("bound");
    }
    sum
}

async fn read_task_local() -> u64 {
    let mut sum = 0;
    for _ in 0..REPEAT {
        sum += black_box(TASK_KEY.get());
    }
    sum
}

fn local_get(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("local_get/current_thread");
    group.bench_function(BenchmarkId::new("nursery", PARAM), |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(KEY.scope(1, read_local()).await) });
    });
    group.bench_function(BenchmarkId::new("nursery_5_bound", PARAM), |b| {
        b.to_async(&rt).iter(|| async {
            let inner = OTHER_1.scope(
                2,
                OTHER_2.scope(3, OTHER_3.scope(4, OTHER_4.scope(5, read_local()))),
            );
            black_box(KEY.scope(1, inner).await)
        });
    });
    group.bench_function(BenchmarkId::new("task_local", PARAM), |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(TASK_KEY.scope(1, read_task_local()).await) });
    });
    group.finish();
}

fn local_scope(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("local_scope/current_thread");
    group.bench_function(BenchmarkId::new("nursery", PARAM), |b| {
        b.to_async(&rt).iter(|| async {
            for i in 0..REPEAT {
                let read = KEY.scope(i, async { KEY.get() }).await;
                black_box(read);
            }
        });
    });
    group.bench_function(BenchmarkId::new("task_local", PARAM), |b| {
        b.to_async(&rt).iter(|| async {
            for i in 0..REPEAT {
                let read = TASK_KEY.scope(i, async { TASK_KEY.get() }).await;
                black_box(read);
            }
        });
    });
    group.finish();
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::local_get, super::local_scope);
}

criterion_main!(group::benches);
