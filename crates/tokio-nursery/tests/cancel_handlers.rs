//! Cancellation handlers (DESIGN §7): when, where and how often `with_cancel_handler` runs its
//! callback, and what the guarded future sees.

mod support;

use std::future::pending;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{
    move_on_after, nursery, shield, with_cancel_handler, CancelScope, NurseryHandle,
};

/// Records the thread each run happened on.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<thread::ThreadId>>>);

impl Runs {
    fn handler(&self) -> impl FnOnce() + Send + 'static {
        let runs = self.clone();
        move || runs.0.lock().unwrap().push(thread::current().id())
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn thread(&self) -> Option<thread::ThreadId> {
        self.0.lock().unwrap().first().copied()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn explicit_cancel_runs_the_handler_on_the_cancelling_thread_before_cancel_returns() {
    let runs = Runs::default();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let canceller = {
        let runs = runs.clone();
        thread::spawn(move || {
            polled_rx.recv().unwrap();
            handle.cancel();
            // Before `cancel()` returned, the handler had run.
            (runs.count(), thread::current().id())
        })
    };
    let out = scope
        .run(with_cancel_handler(
            async move {
                polled_tx.send(()).unwrap();
                pending::<()>().await
            },
            runs.handler(),
        ))
        .await;
    let (seen_before_return, canceller_id) = canceller.join().unwrap();
    assert_eq!(out, None);
    assert_eq!(seen_before_return, 1);
    assert_eq!(runs.thread(), Some(canceller_id));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_deadline_runs_the_handler_in_the_task_that_observes_it() {
    let runs = Runs::default();
    let t0 = Instant::now();
    let out = move_on_after(
        secs(1),
        with_cancel_handler(pending::<()>(), runs.handler()),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(1));
    assert_eq!(runs.count(), 1);
    assert_eq!(runs.thread(), Some(thread::current().id()));
}

/// The guarded future keeps running under the usual rules: a leaf is dropped by its scope, but
/// the handler ran first, and a future that completes anyway keeps its value (Rule 1).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_guarded_future_keeps_running_after_the_handler() {
    let log = Log::new();
    let scope = CancelScope::new().with_name("outer");
    let handle = scope.handle();
    let out = scope
        .run(async {
            let guarded = with_cancel_handler(
                shield(async {
                    log.push("cancelling");
                    handle.cancel();
                    tokio::time::sleep(secs(1)).await;
                    log.push("shielded work finished");
                    5
                }),
                {
                    let log = log.clone();
                    move || log.push("handler")
                },
            );
            guarded.await
        })
        .await;
    assert_eq!(out, Some(5));
    assert_eq!(
        log.names(),
        vec!["cancelling", "handler", "shielded work finished"]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_inherited_cancellation_runs_handlers_at_any_depth() {
    let runs = Runs::default();
    let outer = CancelScope::new();
    let handle = outer.handle();
    let out = outer
        .run(async {
            let _: Result<(), TestError> = nursery(|n| {
                let runs = runs.clone();
                async move {
                    n.spawn(async move {
                        move_on_after(
                            secs(60),
                            with_cancel_handler(pending::<()>(), runs.handler()),
                        )
                        .await;
                        Ok(())
                    });
                    tokio::time::sleep(secs(1)).await;
                    handle.cancel();
                    pending::<()>().await;
                    Ok(())
                }
            })
            .await;
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(runs.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_shield_blocks_the_handler_and_the_shields_own_cancel_runs_it() {
    let runs = Runs::default();
    let outer = CancelScope::new();
    let outer_handle = outer.handle();
    let inner = CancelScope::new().with_shield(true);
    let inner_handle = inner.handle();
    let ran_while_shielded = Arc::new(Mutex::new(None));
    let out = outer
        .run({
            let (runs, ran) = (runs.clone(), Arc::clone(&ran_while_shielded));
            async move {
                inner
                    .run(async move {
                        let guarded = with_cancel_handler(pending::<()>(), runs.handler());
                        let check = async {
                            tokio::time::sleep(secs(1)).await;
                            outer_handle.cancel();
                            tokio::time::sleep(secs(1)).await;
                            *ran.lock().unwrap() = Some(runs.count());
                            inner_handle.cancel();
                            pending::<()>().await
                        };
                        tokio::join!(guarded, check);
                    })
                    .await
            }
        })
        .await;
    assert_eq!(*ran_while_shielded.lock().unwrap(), Some(0));
    assert_eq!(
        out,
        Some(None),
        "the shielded scope absorbed its own cancel"
    );
    assert_eq!(runs.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn under_a_grace_period_the_handler_runs_when_the_drain_begins() {
    let log = Log::new();
    let scope = CancelScope::new().with_grace(Duration::from_millis(100));
    let handle = scope.handle();
    let out = scope
        .run(async {
            let guarded = with_cancel_handler(
                async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    log.push("drained work finished");
                },
                {
                    let log = log.clone();
                    move || log.push("handler")
                },
            );
            handle.cancel();
            guarded.await;
            pending::<()>().await
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(log.at("handler"), Some(Duration::ZERO));
    assert_eq!(
        log.at("drained work finished"),
        Some(Duration::from_millis(50))
    );
}

/// Armed where the context is already cancelled (a body still polled while it unwinds, or a
/// grace scope draining): the handler runs at the first poll.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_handler_armed_in_an_already_cancelled_context_runs_at_its_first_poll() {
    let runs = Runs::default();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            handle.cancel();
            // The shielded branch is live structure, so the cancelled body is still polled.
            let (_, v) = tokio::join!(shield(tokio::time::sleep(secs(1))), async {
                let v = with_cancel_handler(async { 1 }, runs.handler()).await;
                (v, runs.count())
            });
            v
        })
        .await;
    assert_eq!(
        out,
        Some((1, 1)),
        "ran at the first poll; the body completed (Rule 1)"
    );

    let grace = CancelScope::new().with_grace(secs(1));
    let handle = grace.handle();
    let runs_in_drain = Runs::default();
    let out = grace
        .run(async {
            handle.cancel();
            let v = with_cancel_handler(async { 2 }, runs_in_drain.handler()).await;
            (v, runs_in_drain.count())
        })
        .await;
    assert_eq!(out, Some((2, 1)), "armed during a drain: runs at once");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn at_most_once_and_never_after_the_future_finished() {
    let runs = Runs::default();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            // Finished first: never runs, even when the scope is cancelled later.
            assert_eq!(with_cancel_handler(async { 3 }, runs.handler()).await, 3);
            handle.cancel();
            handle.cancel();
            shield(async {
                tokio::time::sleep(secs(1)).await;
            })
            .await;
        })
        .await;
    assert_eq!(out, Some(()));
    assert_eq!(runs.count(), 0);

    let twice = Runs::default();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let inner = CancelScope::new();
    let inner_handle = inner.handle();
    scope
        .run(inner.run(with_cancel_handler(
            async {
                inner_handle.set_shield(true);
                handle.cancel();
                inner_handle.set_shield(false);
                inner_handle.set_shield(true);
                inner_handle.set_shield(false);
                pending::<()>().await
            },
            twice.handler(),
        )))
        .await;
    assert_eq!(twice.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_handler_is_raised_where_the_future_is_awaited_not_in_the_canceller() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let task = tokio::spawn(scope.run(with_cancel_handler(
        async move {
            polled_tx.send(()).unwrap();
            pending::<()>().await
        },
        || panic!("handler failed"),
    )));
    let canceller = thread::spawn(move || {
        polled_rx.recv().unwrap();
        handle.cancel();
    });
    assert!(canceller.join().is_ok(), "the canceller did not panic");
    let err = task.await.expect_err("the awaiting task panicked");
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"handler failed"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_handler_may_cancel_spawn_and_fail_from_inside() {
    let spawned = Counter::new();
    let out: Result<(), TestError> = nursery(|n| {
        let handle: NurseryHandle<TestError> = n.handle();
        let spawned = spawned.clone();
        async move {
            let scope = CancelScope::new();
            let cancel = scope.handle();
            n.spawn(async move {
                tokio::time::sleep(secs(1)).await;
                cancel.cancel();
                Ok(())
            });
            scope
                .run(with_cancel_handler(pending::<()>(), move || {
                    let counted = spawned.clone();
                    handle
                        .spawn(async move {
                            counted.hit();
                            Ok(())
                        })
                        .expect("open");
                    handle.fail(TestError("from the handler")).expect("open");
                }))
                .await;
            pending::<Result<(), TestError>>().await
        }
    })
    .await;
    assert_eq!(out, Err(TestError("from the handler")));
    assert_eq!(
        spawned.get(),
        0,
        "spawned into a failing nursery: cancelled before its poll"
    );
}

/// A handler running on another thread when the future completes: the await waits for it, and
/// the scope returns the value (Rule 1) only after the handler has finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_the_future_waits_for_a_handler_already_running() {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let (polled_tx, polled_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let finished = Arc::new(Mutex::new(false));
    let canceller = thread::spawn(move || {
        polled_rx.recv().unwrap();
        handle.cancel();
    });
    let out = scope
        .run(with_cancel_handler(
            // Shielded work is live structure: the cancelled scope keeps polling it.
            shield(async move {
                polled_tx.send(()).unwrap();
                tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
                    .await
                    .unwrap();
                release_tx.send(()).unwrap();
                7
            }),
            {
                let finished = Arc::clone(&finished);
                move || {
                    entered_tx.send(()).unwrap();
                    // Held until the guarded work has completed.
                    release_rx.recv().unwrap();
                    thread::sleep(Duration::from_millis(20));
                    *finished.lock().unwrap() = true;
                }
            },
        ))
        .await;
    canceller.join().unwrap();
    assert_eq!(out, Some(7));
    assert!(
        *finished.lock().unwrap(),
        "the value came after the handler finished"
    );
}

/// The owners that wait for live structure all keep polling a guarded future until its handler
/// has run: a nursery body, and a cleanup cut short by its timeout.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nursery_bodies_and_cleanups_run_their_handlers_and_finish() {
    let runs = Runs::default();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let out = scope
        .run(async {
            let _: Result<(), TestError> = nursery(|n| {
                let runs = runs.clone();
                async move {
                    n.spawn(async move {
                        tokio::time::sleep(secs(1)).await;
                        handle.cancel();
                        Ok(())
                    });
                    with_cancel_handler(pending::<()>(), runs.handler()).await;
                    Ok(())
                }
            })
            .await;
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(runs.count(), 1);

    let in_cleanup = Runs::default();
    let t0 = Instant::now();
    let out: Result<(), _> = tokio_nursery::NurseryBuilder::new()
        .cleanup_timeout(secs(2))
        .run(|n| {
            let in_cleanup = in_cleanup.clone();
            async move {
                n.defer(async move {
                    with_cancel_handler(pending::<()>(), in_cleanup.handler()).await;
                    Ok::<(), TestError>(())
                });
                Ok(())
            }
        })
        .await;
    assert_eq!(
        out,
        Ok(()),
        "a cleanup timeout alone is not a failure (DESIGN §3)"
    );
    assert_eq!(t0.elapsed(), secs(2));
    assert_eq!(in_cleanup.count(), 1);
}

/// Threads racing a cancel against the guarded future's completion: the handler runs at most
/// once, never after the value was returned, and nothing hangs. Every third round the future
/// never completes (the handler must run), every third it completes before the cancel (it must
/// not), and the rest race.
#[test]
fn cancel_racing_completion_runs_the_handler_at_most_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..600usize {
        let runs = Runs::default();
        let scope = CancelScope::new();
        let handle = scope.handle();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        // Kind 1 keeps the sender out of the future and drops it once `run` has returned, so its
        // cancel comes strictly after completion (dropped inside the future, it would fire while
        // the completing poll is still running, which is a cancel racing completion: kind 2).
        let (go_tx, released_after_run) = if round % 3 == 1 {
            (None, Some(go_tx))
        } else {
            (Some(go_tx), None)
        };
        let canceller = thread::spawn(move || {
            let _ = go_rx.recv();
            for _ in 0..(round % 13) * 20 {
                std::hint::spin_loop();
            }
            handle.cancel();
        });
        let guarded = with_cancel_handler(
            async move {
                match round % 3 {
                    0 => {
                        go_tx.unwrap().send(()).unwrap();
                        pending::<()>().await;
                    }
                    1 => {}
                    _ => {
                        go_tx.unwrap().send(()).unwrap();
                        for _ in 0..round % 7 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                round
            },
            runs.handler(),
        );
        let out =
            runtime.block_on(async { tokio::time::timeout(secs(30), scope.run(guarded)).await });
        drop(released_after_run);
        canceller.join().unwrap();
        let out = out.expect("never hangs");
        match (round % 3, runs.count()) {
            (0, 1) => assert_eq!(out, None),
            (1, 0) => assert_eq!(out, Some(round)),
            (2, 0) => assert_eq!(out, Some(round), "no handler: the future finished first"),
            (2, 1) => {}
            (kind, count) => panic!("round {round} (kind {kind}): {count} handler runs, {out:?}"),
        }
    }
}
