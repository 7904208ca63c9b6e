//! Cost of a cancellation: only the unwind is timed, from the cancel call to the moment the
//! structure has fully stopped. Building the structure and spawning are outside the timed region
//! (`iter_custom`), and every implementation waits the same way, before its timer starts, until
//! every child (or the innermost level) has been polled and is waiting: a shared counter
//! incremented on each child's first poll, and a `Notify` fired by the last arrival.
//!
//! `cancel_fanout`: N = 100 000 children of one parent, each waiting forever.
//!
//! - `nursery`: `Nursery::spawn` N children awaiting `std::future::pending`, then
//!   `Nursery::cancel()` from the body; timed until `nursery(..)` returns;
//! - `tracker_token`: tokio-util's `TaskTracker` with a child `CancellationToken` per task, each
//!   task selecting on its token and the pending wait; timed: `token.cancel()`, `tracker.close()`,
//!   `tracker.wait()`;
//! - `joinset`: `JoinSet::spawn` N times; timed: `abort_all()`, then `join_next` until empty;
//! - `raw_spawn`: `tokio::spawn` N times; timed: `abort()` every `JoinHandle`, then await them.
//!
//! `cancel_nested`: D = 100, 1 000 and 5 000 nested levels, the innermost waiting forever. Each
//! level is a boxed future (async recursion needs boxing), built the same way for both
//! implementations; the whole structure runs in a `tokio::spawn`ed task so that the bench thread
//! only cancels and times. The timer starts once the task's first poll has returned `Pending`
//! (the innermost level has been polled by then).
//!
//! - `nursery`: D nested `CancelScope::new().run(..)`; timed from `CancelHandle::cancel()` on the
//!   outermost scope until the task (the outermost `run`) returns;
//! - `token_chain`: D chained child `CancellationToken`s, each level `select!`ing on its own token
//!   around the next level, the innermost awaiting its token; timed from the root's `cancel()`
//!   until the task returns.
//!
//! Polling (and dropping) D nested boxed futures recurses D levels deep, more than the default
//! 2 MiB thread stack holds at D = 5 000: `cancel_nested` runs on its own runtimes whose workers
//! have a 64 MiB stack, and the whole bench runs on a thread with a 64 MiB stack (the
//! current-thread runtime polls its tasks on the bench thread, inside `block_on`). Both runtimes
//! are otherwise built as in `support::runtimes()`.
//!
//! ```text
//! cargo bench -p nursery-benches --bench cancel
//! ```

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use support::BenchError;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_nursery::CancelScope;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Children in `cancel_fanout`.
const FANOUT: usize = 100_000;
/// Depths in `cancel_nested`.
const DEPTHS: [usize; 3] = [100, 1_000, 5_000];
/// Stack of the bench thread and of the `cancel_nested` workers.
const STACK: usize = 64 << 20;

/// A one-shot barrier: `target` arrivals fire it. The same for every implementation.
struct Ready {
    count: AtomicUsize,
    target: usize,
    notify: Notify,
}

impl Ready {
    fn new(target: usize) -> Arc<Self> {
        Arc::new(Ready {
            count: AtomicUsize::new(0),
            target,
            notify: Notify::new(),
        })
    }

    fn arrive(&self) {
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            // Stores a permit if nobody waits yet.
            self.notify.notify_one();
        }
    }

    async fn wait(&self) {
        self.notify.notified().await;
        assert_eq!(self.count.load(Ordering::Acquire), self.target);
    }
}

/// What every fan-out child does: arrive on its first poll, then wait forever.
async fn wait_forever(ready: Arc<Ready>) {
    ready.arrive();
    std::future::pending::<()>().await;
}

/// One `cancel_fanout` round of each implementation: build, wait until ready, then time the
/// cancellation.
mod fanout {
    use super::*;

    pub(super) async fn nursery(n: usize) -> Duration {
        let ready = Ready::new(n);
        let start = tokio_nursery::nursery(|nursery| async move {
            for _ in 0..n {
                let ready = Arc::clone(&ready);
                nursery.spawn(async move {
                    wait_forever(ready).await;
                    Ok::<_, BenchError>(())
                });
            }
            ready.wait().await;
            let start = Instant::now();
            nursery.cancel();
            Ok(start)
        })
        .await
        .expect("nursery");
        start.elapsed()
    }

    pub(super) async fn tracker_token(n: usize) -> Duration {
        let ready = Ready::new(n);
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        for _ in 0..n {
            let child = token.child_token();
            let ready = Arc::clone(&ready);
            tracker.spawn(async move {
                tokio::select! {
                    _ = child.cancelled() => {}
                    _ = wait_forever(ready) => {}
                }
            });
        }
        ready.wait().await;
        let start = Instant::now();
        token.cancel();
        tracker.close();
        tracker.wait().await;
        start.elapsed()
    }

    pub(super) async fn joinset(n: usize) -> Duration {
        let ready = Ready::new(n);
        let mut set = JoinSet::new();
        for _ in 0..n {
            set.spawn(wait_forever(Arc::clone(&ready)));
        }
        ready.wait().await;
        let start = Instant::now();
        set.abort_all();
        while let Some(done) = set.join_next().await {
            debug_assert!(done.is_err_and(|e| e.is_cancelled()));
        }
        start.elapsed()
    }

    pub(super) async fn raw_spawn(n: usize) -> Duration {
        let ready = Ready::new(n);
        let handles: Vec<_> = (0..n)
            .map(|_| tokio::spawn(wait_forever(Arc::clone(&ready))))
            .collect();
        ready.wait().await;
        let start = Instant::now();
        for handle in &handles {
            handle.abort();
        }
        for handle in handles {
            let done = handle.await;
            debug_assert!(done.is_err_and(|e| e.is_cancelled()));
        }
        start.elapsed()
    }
}

fn cancel_fanout(c: &mut Criterion) {
    for (rt_name, rt) in support::runtimes() {
        let mut group = c.benchmark_group(format!("cancel_fanout/{rt_name}"));
        group.sample_size(10);
        let n = FANOUT;
        group.bench_with_input(BenchmarkId::new("nursery", n), &n, |b, &n| {
            b.to_async(&rt)
                .iter_custom(|iters| sum_rounds(iters, move || fanout::nursery(n)));
        });
        group.bench_with_input(BenchmarkId::new("tracker_token", n), &n, |b, &n| {
            b.to_async(&rt)
                .iter_custom(|iters| sum_rounds(iters, move || fanout::tracker_token(n)));
        });
        group.bench_with_input(BenchmarkId::new("joinset", n), &n, |b, &n| {
            b.to_async(&rt)
                .iter_custom(|iters| sum_rounds(iters, move || fanout::joinset(n)));
        });
        group.bench_with_input(BenchmarkId::new("raw_spawn", n), &n, |b, &n| {
            b.to_async(&rt)
                .iter_custom(|iters| sum_rounds(iters, move || fanout::raw_spawn(n)));
        });
        group.finish();
    }
}

/// Runs `iters` rounds one after the other and adds up their timed parts.
async fn sum_rounds<R, Fut>(iters: u64, round: R) -> Duration
where
    R: Fn() -> Fut,
    Fut: Future<Output = Duration>,
{
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += round().await;
    }
    total
}

/// One level of a nested structure, boxed (async recursion).
type Level = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `fut` and arrives at `ready` once its first poll has returned `Pending`.
fn signal_after_first_poll(fut: Level, ready: Arc<Ready>) -> impl Future<Output = ()> + Send {
    let mut fut = Some(fut);
    let mut signalled = false;
    std::future::poll_fn(move |cx| {
        let inner = fut.as_mut().expect("polled after completion");
        let poll = inner.as_mut().poll(cx);
        if poll.is_ready() {
            fut = None;
        } else if !signalled {
            signalled = true;
            ready.arrive();
        }
        poll
    })
}

/// One `cancel_nested` round of each implementation: spawn the structure, wait until its first
/// poll is over, then time the cancellation.
mod nested {
    use super::*;

    /// `depth` nested scopes around a wait forever; `polled` is set by the innermost level.
    fn scopes(depth: usize, polled: Arc<AtomicBool>) -> Level {
        Box::pin(async move {
            if depth == 0 {
                polled.store(true, Ordering::Release);
                std::future::pending::<()>().await;
            } else {
                let _ = CancelScope::new().run(scopes(depth - 1, polled)).await;
            }
        })
    }

    /// Level `depth` (1 = innermost) of a token chain, selecting on `token`.
    fn tokens(depth: usize, token: CancellationToken, polled: Arc<AtomicBool>) -> Level {
        Box::pin(async move {
            if depth == 1 {
                polled.store(true, Ordering::Release);
                token.cancelled().await;
            } else {
                let next = tokens(depth - 1, token.child_token(), polled);
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = next => {}
                }
            }
        })
    }

    pub(super) async fn nursery(depth: usize) -> Duration {
        let ready = Ready::new(1);
        let polled = Arc::new(AtomicBool::new(false));
        let outer = CancelScope::new();
        let handle = outer.handle();
        let body = scopes(depth - 1, Arc::clone(&polled));
        let task = tokio::spawn(signal_after_first_poll(
            Box::pin(async move {
                assert_eq!(outer.run(body).await, None);
            }),
            Arc::clone(&ready),
        ));
        ready.wait().await;
        assert!(polled.load(Ordering::Acquire));
        let start = Instant::now();
        handle.cancel();
        task.await.expect("nested scopes");
        start.elapsed()
    }

    pub(super) async fn token_chain(depth: usize) -> Duration {
        let ready = Ready::new(1);
        let polled = Arc::new(AtomicBool::new(false));
        let root = CancellationToken::new();
        let task = tokio::spawn(signal_after_first_poll(
            tokens(depth, root.clone(), Arc::clone(&polled)),
            Arc::clone(&ready),
        ));
        ready.wait().await;
        assert!(polled.load(Ordering::Acquire));
        let start = Instant::now();
        root.cancel();
        task.await.expect("token chain");
        start.elapsed()
    }
}

/// `support::runtimes()`, with a 64 MiB stack for the multi-thread workers.
fn deep_runtimes() -> Vec<(&'static str, tokio::runtime::Runtime)> {
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("current-thread runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(STACK)
        .enable_time()
        .build()
        .expect("multi-thread runtime");
    vec![("current_thread", current), ("multi_thread", multi)]
}

fn cancel_nested(c: &mut Criterion) {
    for (rt_name, rt) in deep_runtimes() {
        let mut group = c.benchmark_group(format!("cancel_nested/{rt_name}"));
        for depth in DEPTHS {
            group.bench_with_input(BenchmarkId::new("nursery", depth), &depth, |b, &d| {
                b.to_async(&rt)
                    .iter_custom(|iters| sum_rounds(iters, move || nested::nursery(d)));
            });
            group.bench_with_input(BenchmarkId::new("token_chain", depth), &depth, |b, &d| {
                b.to_async(&rt)
                    .iter_custom(|iters| sum_rounds(iters, move || nested::token_chain(d)));
            });
        }
        group.finish();
    }
}

/// The criterion entry points.
#[allow(missing_docs)] // `criterion_group!` emits an undocumented `pub fn`.
mod group {
    criterion::criterion_group!(benches, super::cancel_fanout, super::cancel_nested);
}

/// `criterion_main!`, on a thread with a big stack (see the module docs).
fn main() {
    std::thread::Builder::new()
        .name("bench".into())
        .stack_size(STACK)
        .spawn(|| {
            group::benches();
            Criterion::default().configure_from_args().final_summary();
        })
        .expect("bench thread")
        .join()
        .expect("bench thread panicked");
}
