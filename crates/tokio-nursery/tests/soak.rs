//! Soak: spawn / fail / cancel / cleanup cycles return the heap to its baseline and leave no task alive.

// `soak_short` runs `NURSERY_SOAK_CYCLES` cycles (default 5 000, a few seconds in debug mode);
// `soak_million` (ignored by default) runs a million. Both print their figures: run them with
// `--nocapture`.
//
// Live heap is read from a counting allocator (`dhat` in testing mode; the crate forbids the
// `unsafe` a hand-written `GlobalAlloc` needs). The baseline is taken after a warm-up that goes
// through every kind of cycle, once no task is alive, and compared with the live heap after the
// last cycle, again once no task is alive. A small fixed slack (`SLACK_BYTES`, `SLACK_BLOCKS`)
// covers buffers the runtime keeps at their high-water mark (the scheduler's list of deferred
// wakers, worker queues, the timer wheel, the I/O driver's event list): they may grow once more
// after the warm-up, but not with the number of cycles. A leak of one small block every 100 cycles
// already exceeds the slack in the short run.

use std::fmt;
use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_nursery::{
    fail_after, move_on_after, nursery, nursery_all, shield, CancelScope, NurseryBuilder,
    StartError,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Live bytes the runtime may add after the warm-up, independent of the number of cycles.
const SLACK_BYTES: usize = 16 * 1024;
/// Live blocks the runtime may add after the warm-up, independent of the number of cycles.
const SLACK_BLOCKS: usize = 32;

/// One profiler at a time per process: the two soak tests take turns.
static PROFILER: Mutex<()> = Mutex::new(());

/// The step the current cycle last reached, for the hang detector's message.
static STEP: Mutex<&str> = Mutex::new("");

fn step(name: &'static str) {
    *STEP.lock().unwrap_or_else(|e| e.into_inner()) = name;
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SoakError(usize);

impl fmt::Display for SoakError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "soak failure in cycle {}", self.0)
    }
}

/// What every cycle is expected to have done, checked at the end.
#[derive(Default)]
struct Tally {
    cleanups_registered: AtomicUsize,
    cleanups_run: AtomicUsize,
}

impl Tally {
    /// A cleanup that counts its run; registering it counts too.
    fn cleanup(self: &Arc<Self>) -> impl std::future::Future<Output = Result<(), SoakError>> {
        self.cleanups_registered.fetch_add(1, SeqCst);
        let tally = Arc::clone(self);
        async move {
            tokio::task::yield_now().await;
            tally.cleanups_run.fetch_add(1, SeqCst);
            Ok(())
        }
    }
}

/// Children that finish, a cleanup, a value.
async fn finishing(i: usize, tally: &Arc<Tally>) {
    let out = nursery(|n| async move {
        n.defer(tally.cleanup());
        for _ in 0..3 {
            n.spawn(async {
                tokio::task::yield_now().await;
                Ok(())
            });
        }
        let value = n.spawn_returning(async move { Ok(i) });
        Ok::<_, SoakError>(value.join().await.unwrap())
    })
    .await;
    assert_eq!(out, Ok(i));
}

/// A child fails: the pending sibling and the body are cancelled, the cleanup runs.
async fn failing(i: usize, tally: &Arc<Tally>) {
    let out = nursery(|n| async move {
        n.defer(tally.cleanup());
        n.spawn(pending());
        n.spawn_named("failing", async move {
            tokio::task::yield_now().await;
            Err(SoakError(i))
        });
        pending::<Result<(), SoakError>>().await
    })
    .await;
    assert_eq!(out, Err(SoakError(i)));
}

/// Children cancelled without any failure: `Nursery::cancel`, one `ChildHandle::cancel`, and a
/// child cancelled before it ran; a borrowing child; all errors collected.
async fn cancelling(i: usize, tally: &Arc<Tally>) {
    let local = [i; 4];
    let local = &local;
    let out = nursery_all(|n| async move {
        n.defer(tally.cleanup());
        let one = n.spawn(pending());
        n.spawn_borrowing(async move {
            tokio::task::yield_now().await;
            assert_eq!(local[3], i);
            Ok(())
        });
        one.cancel();
        tokio::task::yield_now().await;
        n.spawn(pending());
        n.cancel();
        n.spawn(pending());
        Ok::<_, SoakError>(i)
    })
    .await;
    assert_eq!(out.unwrap(), i);
}

/// A nursery dropped by foreign code (`tokio::time::timeout`) inside a scope that adopts its
/// child and cleanup; then a scope cancelled from another task around a nursery with a `start`
/// child.
async fn foreign_drop(i: usize, tally: &Arc<Tally>) {
    step("a nursery dropped by a zero timeout, inside an adopting scope");
    let adopted = CancelScope::new()
        .run(async {
            let dropped = tokio::time::timeout(
                Duration::ZERO,
                nursery(|n| async move {
                    n.defer(tally.cleanup());
                    n.spawn(pending());
                    pending::<Result<(), SoakError>>().await
                }),
            )
            .await;
            assert!(dropped.is_err(), "the zero timeout drops the nursery");
            i
        })
        .await;
    assert_eq!(adopted, Some(i));

    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            nursery(|n| async move {
                n.defer(tally.cleanup());
                step("`start` with a child that signals at once");
                let ready = n
                    .start(|started| async move {
                        started.started(i);
                        pending::<Result<(), SoakError>>().await
                    })
                    .await;
                assert_eq!(ready.map_err(|e| e.is_closed()), Ok(i));
                step("`start` with a child that drops its signal");
                let not_started: Result<(), StartError<SoakError>> =
                    n.start(|_started| async { Ok(()) }).await;
                assert!(not_started.unwrap_err().is_not_started());
                step("a scope cancelled from another task");
                tokio::spawn(async move { handle.cancel_with("soak") });
                pending::<Result<(), SoakError>>().await
            })
            .await
        })
        .await;
    assert!(out.is_none(), "the scope absorbs its cancellation");
}

/// Nested scopes and nurseries: a deadline that fires inside a nursery inside a nursery, a
/// failure reported through a handle from another task, a shielded cleanup with its own
/// deadline.
async fn nested(i: usize, tally: &Arc<Tally>) {
    let out = NurseryBuilder::new()
        .name("outer")
        .cleanup_timeout(Duration::from_secs(5))
        .run(|outer| async move {
            outer.defer(tally.cleanup());
            let inner = nursery(|n| async move {
                n.defer(tally.cleanup());
                let timed_out = move_on_after(Duration::ZERO, pending::<()>()).await;
                assert!(timed_out.is_none());
                let in_time = fail_after(Duration::from_secs(60), async { i }).await;
                assert_eq!(in_time, Ok(i));
                let h = n.handle();
                n.spawn(pending());
                tokio::spawn(async move { h.fail(SoakError(i)) });
                pending::<Result<(), SoakError>>().await
            })
            .await;
            assert_eq!(inner, Err(SoakError(i)));
            let shielded = shield(async { 2 * i }).await;
            Ok::<_, SoakError>(shielded)
        })
        .await;
    assert_eq!(out, Ok(2 * i));
}

/// Real-time bound on one cycle: every cycle finishes in well under a millisecond.
const HANG: Duration = Duration::from_secs(10);

const KINDS: [&str; 5] = [
    "finishing",
    "failing",
    "cancelling",
    "foreign drop",
    "nested",
];

/// One cycle of the kind chosen by `i`; a cycle that does not finish within [`HANG`] is a hang.
async fn cycle(i: usize, tally: &Arc<Tally>) {
    step(KINDS[i % KINDS.len()]);
    let kind = async {
        match i % KINDS.len() {
            0 => finishing(i, tally).await,
            1 => failing(i, tally).await,
            2 => cancelling(i, tally).await,
            3 => foreign_drop(i, tally).await,
            _ => nested(i, tally).await,
        }
    };
    if tokio::time::timeout(HANG, kind).await.is_err() {
        panic!(
            "hang detector: cycle {i} ({}) did not finish within {HANG:?}; last step: {}",
            KINDS[i % KINDS.len()],
            STEP.lock().unwrap_or_else(|e| e.into_inner())
        );
    }
}

/// Yields until the runtime has no task left alive (hang detector: ten seconds).
async fn idle(handle: &tokio::runtime::Handle) -> usize {
    let start = Instant::now();
    loop {
        let alive = handle.metrics().num_alive_tasks();
        if alive == 0 || start.elapsed() > Duration::from_secs(10) {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

struct Figures {
    cycles: usize,
    warm_up: usize,
    baseline: dhat::HeapStats,
    end: dhat::HeapStats,
    alive_tasks: usize,
    wall: Duration,
}

fn soak(cycles: usize) -> Figures {
    let _one_at_a_time = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let warm_up = (cycles / 10).clamp(100, 10_000);
    let handle = rt.handle().clone();

    let baseline = rt.block_on(async {
        for i in 0..warm_up {
            cycle(i, &tally).await;
        }
        assert_eq!(idle(&handle).await, 0, "tasks left alive after the warm-up");
        dhat::HeapStats::get()
    });
    let start = Instant::now();
    let (end, alive_tasks) = rt.block_on(async {
        let report_every = (cycles / 10).max(1);
        for done in 1..=cycles {
            cycle(warm_up + done - 1, &tally).await;
            if done % report_every == 0 && done < cycles {
                let now = dhat::HeapStats::get();
                println!(
                    "soak: {done}/{cycles} cycles in {:.2?}: live heap {} bytes in {} blocks \
                     (baseline {} in {}), {} tasks alive",
                    start.elapsed(),
                    now.curr_bytes,
                    now.curr_blocks,
                    baseline.curr_bytes,
                    baseline.curr_blocks,
                    handle.metrics().num_alive_tasks(),
                );
            }
        }
        let alive = idle(&handle).await;
        (dhat::HeapStats::get(), alive)
    });
    let wall = start.elapsed();
    drop(rt);

    let registered = tally.cleanups_registered.load(SeqCst);
    assert_eq!(
        tally.cleanups_run.load(SeqCst),
        registered,
        "every cleanup ran exactly once"
    );
    Figures {
        cycles,
        warm_up,
        baseline,
        end,
        alive_tasks,
        wall,
    }
}

fn check(figures: &Figures) {
    let Figures {
        cycles,
        warm_up,
        baseline,
        end,
        alive_tasks,
        wall,
    } = figures;
    println!(
        "soak: {cycles} cycles (after {warm_up} warm-up) in {wall:.2?}; live heap {} bytes in {} \
         blocks after the warm-up, {} bytes in {} blocks at the end ({:+} bytes, {:+} blocks); \
         peak {} bytes; {} allocations in all; {alive_tasks} tasks alive",
        baseline.curr_bytes,
        baseline.curr_blocks,
        end.curr_bytes,
        end.curr_blocks,
        end.curr_bytes as i64 - baseline.curr_bytes as i64,
        end.curr_blocks as i64 - baseline.curr_blocks as i64,
        end.max_bytes,
        end.total_blocks,
    );
    assert_eq!(*alive_tasks, 0, "tasks left alive");
    assert!(
        end.curr_bytes <= baseline.curr_bytes + SLACK_BYTES,
        "live heap grew by {} bytes over {cycles} cycles",
        end.curr_bytes - baseline.curr_bytes
    );
    assert!(
        end.curr_blocks <= baseline.curr_blocks + SLACK_BLOCKS,
        "live blocks grew by {} over {cycles} cycles",
        end.curr_blocks - baseline.curr_blocks
    );
}

#[test]
fn soak_short() {
    let cycles = std::env::var("NURSERY_SOAK_CYCLES")
        .ok()
        .map(|v| v.parse().expect("NURSERY_SOAK_CYCLES is a number"))
        .unwrap_or(5_000);
    check(&soak(cycles));
}

#[test]
#[ignore = "a million cycles: minutes in debug mode; run with --ignored --nocapture"]
fn soak_million() {
    check(&soak(1_000_000));
}
