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

#[path = "support/spawn.rs"]
mod spawn;
#[allow(dead_code)] // Not every bench uses every shared item.
mod support;

use criterion::{criterion_main, BenchmarkId, Criterion};
use spawn::{spawn_and_join, work, work_typical, IMPLEMENTATIONS};

const SIZES: [usize; 2] = [1_000, 100_000];

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
