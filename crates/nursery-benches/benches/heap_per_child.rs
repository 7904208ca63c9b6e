//! Heap bytes and allocations per live child, counted by a counting allocator (`dhat` in
//! testing mode; the crates forbid unsafe code, so no hand-written `GlobalAlloc`).
//!
//! For each implementation, N = 10 000 children are spawned; every child waits (they are all
//! polled once, so anything allocated on the first poll counts too). The live heap is read
//! before the first spawn and once all N are waiting; the difference divided by N is the cost
//! of one live child. The children are then cancelled and awaited, and the heap must return to
//! where it started (checked, so a leak cannot pass for a small child).
//!
//! Two child sizes: `small` (the child keeps only a counter handle, 16 bytes of state: any
//! per-child overhead shows in full, and tokio rounds task cells to 128 bytes) and `typical` (the
//! child keeps a 256-byte buffer across its wait, like a small protocol handler).
//!
//! - `nursery`: `Nursery::spawn` of a child awaiting a never-ready future;
//! - `joinset`: `JoinSet::spawn` of the same future;
//! - `tracker_token`: `TaskTracker::spawn` with a child `CancellationToken` per task, the task
//!   selecting on its token;
//! - `raw_spawn`: `tokio::spawn`, keeping the `JoinHandle`s in a vector reserved up front.
//!
//! ```text
//! cargo bench -p nursery-benches --bench heap_per_child
//! ```

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use nursery_benches::{Measurement, Row};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: usize = 10_000;

/// Live heap bytes and blocks now.
fn heap() -> (u64, u64) {
    let stats = dhat::HeapStats::get();
    (stats.curr_bytes as u64, stats.curr_blocks as u64)
}

/// Counts children that have been polled at least once.
#[derive(Clone, Default)]
struct Started(Arc<AtomicUsize>);

impl Started {
    /// A child future: marks itself started on its first poll, then waits forever.
    async fn child(self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        pending::<()>().await;
    }

    /// Yields until all `n` children have been polled.
    async fn all(&self, n: usize) {
        while self.0.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    }
}

/// Per-child figures: (bytes, blocks) while live, divided by N.
struct PerChild {
    bytes: f64,
    blocks: f64,
}

fn per_child(before: (u64, u64), live: (u64, u64)) -> PerChild {
    PerChild {
        bytes: live.0.saturating_sub(before.0) as f64 / N as f64,
        blocks: live.1.saturating_sub(before.1) as f64 / N as f64,
    }
}

/// Makes one child future from its start counter.
trait MakeChild: Fn(Started) -> Self::Fut + Copy + Send + 'static {
    type Fut: std::future::Future<Output = ()> + Send + 'static;
}

impl<F, Fut> MakeChild for F
where
    F: Fn(Started) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    type Fut = Fut;
}

async fn small(started: Started) {
    started.child().await;
}

async fn typical(started: Started) {
    let buffer = std::hint::black_box([7u8; 256]);
    started.child().await;
    std::hint::black_box(&buffer);
}

async fn nursery_children(make: impl MakeChild) -> PerChild {
    let started = Started::default();
    let before = heap();
    let mut live = before;
    let live_ref = &mut live;
    let started_ref = &started;
    tokio_nursery::nursery(|n| async move {
        for _ in 0..N {
            let started = started_ref.clone();
            n.spawn(async move {
                make(started).await;
                Ok::<_, std::io::Error>(())
            });
        }
        started_ref.all(N).await;
        *live_ref = heap();
        n.cancel();
        Ok(())
    })
    .await
    .expect("nursery");
    per_child(before, live)
}

async fn joinset_children(make: impl MakeChild) -> PerChild {
    let started = Started::default();
    let before = heap();
    let mut set = JoinSet::new();
    for _ in 0..N {
        set.spawn(make(started.clone()));
    }
    started.all(N).await;
    let live = heap();
    set.abort_all();
    while set.join_next().await.is_some() {}
    per_child(before, live)
}

async fn tracker_token_children(make: impl MakeChild) -> PerChild {
    let started = Started::default();
    let before = heap();
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    for _ in 0..N {
        let child = token.child_token();
        let started = started.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = child.cancelled() => {}
                _ = make(started) => {}
            }
        });
    }
    started.all(N).await;
    let live = heap();
    token.cancel();
    tracker.close();
    tracker.wait().await;
    per_child(before, live)
}

async fn raw_spawn_children(make: impl MakeChild) -> PerChild {
    let started = Started::default();
    let mut handles = Vec::with_capacity(N);
    let before = heap();
    for _ in 0..N {
        handles.push(tokio::spawn(make(started.clone())));
    }
    started.all(N).await;
    let live = heap();
    for handle in &handles {
        handle.abort();
    }
    for handle in handles {
        let _ = handle.await;
    }
    per_child(before, live)
}

/// One warm-up round, then one counted round of every implementation.
fn measure(rt: &tokio::runtime::Runtime, case: &str, make: impl MakeChild, rows: &mut Vec<Row>) {
    for round in 0..2 {
        let results = [
            ("nursery", rt.block_on(nursery_children(make))),
            ("joinset", rt.block_on(joinset_children(make))),
            ("tracker_token", rt.block_on(tracker_token_children(make))),
            ("raw_spawn", rt.block_on(raw_spawn_children(make))),
        ];
        if round == 0 {
            continue;
        }
        for (name, figures) in results {
            rows.push(Row::new(case, name, figures.bytes).with("allocs_per_child", figures.blocks));
        }
    }
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut rows = Vec::new();
    for flavor in ["current_thread", "multi_thread"] {
        let rt = match flavor {
            "current_thread" => tokio::runtime::Builder::new_current_thread().build(),
            _ => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build(),
        }
        .expect("runtime");
        measure(
            &rt,
            &format!("{flavor}, small child, N={N}"),
            small,
            &mut rows,
        );
        measure(
            &rt,
            &format!("{flavor}, typical child, N={N}"),
            typical,
            &mut rows,
        );
    }
    let measurement = Measurement {
        workload: "heap_per_child".into(),
        title: "Heap per live child".into(),
        metric: "bytes per child".into(),
        rows,
        notes: vec![
            format!(
                "{N} children per implementation, all polled once and waiting; live heap from a \
                 counting allocator (dhat), difference divided by N, after one warm-up round."
            ),
            "Includes the task allocation itself (tokio rounds task cells to 128-byte \
             alignment), any per-child bookkeeping and amortized growth of shared containers."
                .into(),
        ],
    };
    measurement.write().expect("write measurement");
}
