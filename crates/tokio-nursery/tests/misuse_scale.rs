//! Scale: 100 000 children, 5 000-deep nesting, eight OS threads cancelling at once, racing `start`.

mod support;

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use support::*;
use tokio::sync::oneshot;
use tokio_nursery::{nursery, CancelReason, CancelScope, Started};

const CHILDREN: usize = 100_000;
const DEPTH: usize = 5000;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hundred_thousand_children_finish() {
    let ran = Counter::new();
    let r = ran.clone();
    let out = nursery(|n| async move {
        for _ in 0..CHILDREN {
            let r = r.clone();
            n.spawn(async move {
                tokio::task::yield_now().await;
                r.hit();
                Ok::<_, TestError>(())
            });
        }
        Ok("all spawned")
    })
    .await;
    assert_eq!(out, Ok("all spawned"));
    assert_eq!(ran.get(), CHILDREN);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hundred_thousand_children_cancelled_by_one_failure() {
    let dropped = DropProbe::new();
    let cleanups = Counter::new();
    let (probe, c) = (dropped.clone(), cleanups.clone());
    let out = nursery(|n| async move {
        n.defer(async move {
            c.hit();
            Ok(())
        });
        for _ in 0..CHILDREN {
            let guard = probe.guard();
            n.spawn(async move {
                let _guard = guard;
                pending::<Result<(), TestError>>().await
            });
        }
        n.spawn(async {
            tokio::task::yield_now().await;
            Err(TestError("one of many"))
        });
        pending::<Result<(), TestError>>().await
    })
    .await;
    assert_eq!(out, Err(TestError("one of many")));
    assert_eq!(dropped.count(), CHILDREN, "every child was dropped");
    assert_eq!(cleanups.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn hundred_thousand_borrowing_children() {
    let total = AtomicUsize::new(0);
    let total_ref = &total;
    let out = nursery(|n| async move {
        for i in 0..CHILDREN {
            n.spawn_borrowing(async move {
                tokio::task::yield_now().await;
                total_ref.fetch_add(i % 2, Ordering::Relaxed);
                Ok::<_, TestError>(())
            });
        }
        Ok(())
    })
    .await;
    assert_eq!(out, Ok(()));
    assert_eq!(total.into_inner(), CHILDREN / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_children_on_the_multi_thread_runtime() {
    let ran = Counter::new();
    let r = ran.clone();
    let out = tokio::time::timeout(
        secs(60),
        nursery(|n| async move {
            for i in 0..CHILDREN {
                let r = r.clone();
                n.spawn(async move {
                    tokio::task::yield_now().await;
                    r.hit();
                    if i == CHILDREN - 1 {
                        Err(TestError("the last one"))
                    } else {
                        Ok(())
                    }
                });
            }
            Ok(())
        }),
    )
    .await
    .expect("hang detector");
    assert_eq!(out, Err(TestError("the last one")));
    // The last child may cancel some that had not run yet: each of those was dropped unpolled.
    assert!(ran.get() <= CHILDREN && ran.get() > 0);
}

/// Runs `f` on a thread with a 64 MiB stack and its own current-thread runtime (paused clock).
fn on_big_stack<F>(f: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap()
                .block_on(f());
        })
        .unwrap()
        .join()
        .unwrap();
}

/// `depth` + 1 nested nurseries, each with a counted cleanup; the innermost spawns `leaf`.
fn nested(
    depth: usize,
    cleanups: Counter,
    leaf: BoxFuture<Result<(), TestError>>,
) -> BoxFuture<Result<(), TestError>> {
    Box::pin(nursery(move |n| async move {
        let c = cleanups.clone();
        n.defer(async move {
            c.hit();
            Ok(())
        });
        if depth == 0 {
            n.spawn(leaf);
            pending().await
        } else {
            // Each level returns what the level below returned.
            nested(depth - 1, cleanups, leaf).await
        }
    }))
}

#[test]
fn deep_5000_nested_nurseries_failing_from_the_leaf() {
    on_big_stack(|| async {
        let cleanups = Counter::new();
        let leaf = Box::pin(async {
            tokio::time::sleep(secs(1)).await;
            Err(TestError("leaf"))
        });
        let out = nested(DEPTH, cleanups.clone(), leaf).await;
        assert_eq!(
            out,
            Err(TestError("leaf")),
            "the leaf's error reaches the top"
        );
        assert_eq!(cleanups.get(), DEPTH + 1, "every level's cleanup ran once");
    });
}

#[test]
fn deep_5000_nested_nurseries_dropped_by_foreign_code() {
    on_big_stack(|| async {
        let cleanups = Counter::new();
        let leaf_dropped = DropProbe::new();
        let guard = leaf_dropped.guard();
        let (ready_tx, ready_rx) = oneshot::channel();
        let leaf = Box::pin(async move {
            let _guard = guard;
            ready_tx.send(()).unwrap();
            pending::<Result<(), TestError>>().await
        });
        let c = cleanups.clone();
        let out = CancelScope::new()
            .run(async move {
                tokio::select! {
                    _ = nested(DEPTH, c, leaf) => unreachable!("the nurseries never finish"),
                    _ = ready_rx => "dropped",
                }
            })
            .await;
        assert_eq!(out, Some("dropped"));
        assert!(leaf_dropped.dropped());
        assert_eq!(
            cleanups.get(),
            DEPTH + 1,
            "the scope waited for every detached cleanup"
        );
    });
}

const THREADS: usize = 8;
const ROUNDS: usize = 1000;

type Job = Box<dyn FnOnce() + Send>;

/// Eight OS threads; each round, every thread waits at one barrier and then acts at once.
struct Threads {
    senders: Vec<mpsc::Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Threads {
    fn new() -> Self {
        let (senders, threads) = (0..THREADS)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Job>();
                let thread = thread::spawn(move || {
                    for job in rx {
                        job();
                    }
                });
                (tx, thread)
            })
            .unzip();
        Threads { senders, threads }
    }

    /// Runs `acts[i]` on thread `i`, all released together; `done` receives one message each.
    fn at_once(&self, acts: Vec<Job>, done: &mpsc::Sender<()>) {
        let barrier = Arc::new(Barrier::new(acts.len()));
        for (sender, act) in self.senders.iter().zip(acts) {
            let (barrier, done) = (barrier.clone(), done.clone());
            sender
                .send(Box::new(move || {
                    barrier.wait();
                    act();
                    done.send(()).unwrap();
                }))
                .unwrap();
        }
    }

    fn join(self) {
        drop(self.senders);
        for thread in self.threads {
            thread.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_from_eight_os_threads_at_once() {
    let threads = Threads::new();
    let children = DropProbe::new();
    let cleanups = Counter::new();
    for round in 0..ROUNDS {
        let token = tokio_util::sync::CancellationToken::new();
        let scope = CancelScope::new().with_cancellation_token(token.clone());
        let scope_handle = scope.handle();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (probe, c) = (children.clone(), cleanups.clone());
        let task = tokio::spawn(scope.run(nursery(move |n| async move {
            n.defer(async move {
                c.hit();
                Ok(())
            });
            let guard = probe.guard();
            let child = n.spawn(async move {
                let _guard = guard;
                pending::<Result<(), TestError>>().await
            });
            ready_tx.send((n.handle(), child)).unwrap();
            pending::<Result<(), TestError>>().await
        })));
        let (nursery_handle, child) = ready_rx.await.unwrap();

        let h = scope_handle.clone();
        let mut acts: Vec<Job> = (0..3)
            .map(|i| {
                let h = h.clone();
                Box::new(move || h.cancel_with(format!("thread {i}"))) as Job
            })
            .collect();
        let h2 = h.clone();
        acts.push(Box::new(move || {
            h2.set_deadline(Some(tokio::time::Instant::now()))
        }));
        acts.push(Box::new(move || {
            let _ = nursery_handle.cancel();
        }));
        acts.push(Box::new(move || child.cancel()));
        acts.push(Box::new(move || token.cancel()));
        acts.push(Box::new(move || h.cancel()));
        assert_eq!(acts.len(), THREADS);
        let (done_tx, done_rx) = mpsc::channel();
        threads.at_once(acts, &done_tx);

        let out = tokio::time::timeout(secs(10), task)
            .await
            .unwrap_or_else(|_| panic!("hang detector: round {round}"))
            .expect("no panic");
        for _ in 0..THREADS {
            done_rx.recv().unwrap();
        }
        assert_eq!(out, None, "round {round}: the scope absorbs");
        assert!(scope_handle.cancelled_caught(), "round {round}");
        let reason = scope_handle.cancel_reason().expect("a reason");
        assert!(
            !reason.is_inherited() && (reason.is_explicit() || reason.is_deadline()),
            "round {round}: {reason:?}"
        );
        assert_eq!(
            scope_handle.cancel_reason(),
            Some(reason.clone()),
            "round {round}: the first reason stays"
        );
        if let CancelReason::Explicit { message: Some(m) } = &reason {
            assert!(
                m.starts_with("thread ") || m.contains("CancellationToken"),
                "round {round}: {m}"
            );
        }
        assert_eq!(
            children.count(),
            round + 1,
            "round {round}: the child was dropped"
        );
        assert_eq!(
            cleanups.get(),
            round + 1,
            "round {round}: the cleanup ran once"
        );
    }
    threads.join();
}

const START_ROUNDS: usize = 2000;

// `start` must return the value of a child that signals from another worker thread while the
// caller's task is polling the `Start` future, however the two interleave. The caller polls it
// in a loop (as a `select!` beside a busy branch does) so that the child's signal often lands
// during a poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_polled_while_its_child_signals_from_another_worker() {
    for round in 0..START_ROUNDS {
        let out = tokio::time::timeout(
            secs(10),
            nursery(|n| async move {
                let start = n.start(move |s: Started<usize>| async move {
                    for _ in 0..round % 8 {
                        tokio::task::yield_now().await;
                    }
                    s.started(round);
                    if round % 2 == 0 {
                        pending::<()>().await;
                    }
                    Ok(())
                });
                tokio::pin!(start);
                let started = loop {
                    tokio::select! {
                        biased;
                        started = &mut start => break started,
                        _ = tokio::task::yield_now() => {}
                    }
                };
                n.cancel();
                Ok::<_, TestError>(started)
            }),
        )
        .await
        .unwrap_or_else(|_| {
            panic!("hang detector: round {round}: `start` never returned the signalled value")
        });
        match out {
            Ok(Ok(value)) => assert_eq!(value, round),
            other => panic!("round {round}: the child signalled {round}, `start` gave {other:?}"),
        }
    }
}
