//! Conformance L (C57–C61): foreign drops, deep nesting, auto traits and cross-thread races.

mod support;

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use support::*;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_nursery::{
    checkpoint, fail_after, move_on_after, nursery, nursery_all, shield, sleep, CancelHandle,
    CancelReason, CancelScope, Cancelled, Checkpoint, ChildHandle, CleanupTimedOut, Closed,
    Elapsed, Errors, FailAfter, Nursery, NurseryAll, NurseryBuilder, NurseryFuture, NurseryHandle,
    Run, Shield, Sleep,
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c57_foreign_drop_adopts_orphans() {
    let log = Log::new();
    let child = DropProbe::new();
    let cleanup_runs = Counter::new();
    let start = Instant::now();
    let (l, probe, runs) = (log.clone(), child.clone(), cleanup_runs.clone());

    let out = CancelScope::new()
        .run(async move {
            let l_after = l.clone();
            let timed_out = tokio::time::timeout(
                ms(10),
                nursery(|n| async move {
                    let l_cleanup = l.clone();
                    n.defer(async move {
                        l_cleanup.push("cleanup started");
                        tokio::time::sleep(ms(500)).await;
                        runs.hit();
                        l_cleanup.push("cleanup finished");
                        Ok(())
                    });
                    n.spawn(async move {
                        let _guard = probe.guard();
                        tokio::time::sleep(secs(1)).await;
                        Ok(())
                    });
                    pending::<Result<(), TestError>>().await
                }),
            )
            .await;
            assert!(timed_out.is_err(), "the foreign timeout fires");
            l_after.push("timeout fired");
            "after the timeout"
        })
        .await;

    assert_eq!(out, Some("after the timeout"));
    assert!(child.dropped());
    assert_eq!(cleanup_runs.get(), 1);
    assert_eq!(log.at("timeout fired"), Some(ms(10)));
    assert_eq!(log.at("cleanup started"), Some(ms(10)));
    assert_eq!(log.at("cleanup finished"), Some(ms(510)));
    // The scope waited for the adopted cleanup, not only for its own body.
    assert_eq!(start.elapsed(), ms(510));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c57_foreign_drop_adopts_orphans_multi_thread() {
    let child = DropProbe::new();
    let cleanup_runs = Counter::new();
    let (probe, runs) = (child.clone(), cleanup_runs.clone());
    let (started_tx, started_rx) = oneshot::channel::<()>();

    let out = tokio::time::timeout(
        secs(10),
        CancelScope::new().run(async move {
            let lost = tokio::select! {
                _ = nursery(|n| async move {
                    n.defer(async move {
                        tokio::task::yield_now().await;
                        runs.hit();
                        Ok(())
                    });
                    n.spawn(async move {
                        let _guard = probe.guard();
                        started_tx.send(()).unwrap();
                        tokio::time::sleep(secs(3600)).await;
                        Ok(())
                    });
                    pending::<Result<(), TestError>>().await
                }) => false,
                _ = started_rx => true,
            };
            assert!(lost, "the nursery is dropped once its child runs");
        }),
    )
    .await
    .expect("hang detector: the scope must finish the orphans");

    assert_eq!(out, Some(()));
    assert!(child.dropped());
    assert_eq!(cleanup_runs.get(), 1);
}

/// `depth` nested cancel scopes around a leaf that signals `ready` and then waits forever; each
/// scope's handle is collected so the test can check that none of them absorbed.
fn nested_scopes(
    depth: usize,
    handles: Arc<Mutex<Vec<CancelHandle>>>,
    ready: oneshot::Sender<()>,
    leaf: DropGuard,
) -> BoxFuture<()> {
    Box::pin(async move {
        if depth == 0 {
            let _leaf = leaf;
            ready.send(()).unwrap();
            pending::<()>().await;
        } else {
            let scope = CancelScope::new();
            handles.lock().unwrap().push(scope.handle());
            let inner = nested_scopes(depth - 1, handles, ready, leaf);
            let _ = scope.run(inner).await;
        }
    })
}

/// `depth` nested nurseries, each with a counted cleanup; the innermost spawns a child that
/// signals `ready` and waits forever.
fn nested_nurseries(
    depth: usize,
    cleanups: Counter,
    ready: oneshot::Sender<()>,
    leaf: DropGuard,
) -> BoxFuture<Result<(), TestError>> {
    Box::pin(async move {
        nursery(move |n| async move {
            let runs = cleanups.clone();
            n.defer(async move {
                runs.hit();
                Ok(())
            });
            if depth == 0 {
                n.spawn(async move {
                    let _leaf = leaf;
                    ready.send(()).unwrap();
                    pending::<Result<(), TestError>>().await
                });
                pending::<Result<(), TestError>>().await
            } else {
                nested_nurseries(depth - 1, cleanups, ready, leaf).await
            }
        })
        .await
    })
}

/// Runs `f` on a thread with a 64 MiB stack and its own current-thread runtime.
fn on_big_stack<F>(f: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f());
        })
        .unwrap()
        .join()
        .unwrap();
}

// O(depth) versus O(depth²) cancellation is a cost property: it belongs in a benchmark, not in a
// test, where timing assertions would be flaky. Here depth 5000 must simply complete.
#[test]
fn c58_deep_nesting_5000_scopes() {
    const DEPTH: usize = 5000;
    on_big_stack(|| async {
        let leaf = DropProbe::new();
        let handles = Arc::new(Mutex::new(Vec::with_capacity(DEPTH)));
        let (ready_tx, ready_rx) = oneshot::channel();
        let outer = CancelScope::new();
        let outer_handle = outer.handle();

        let canceller = tokio::spawn({
            let h = outer_handle.clone();
            async move {
                ready_rx.await.unwrap();
                h.cancel();
            }
        });
        let out = outer
            .run(nested_scopes(
                DEPTH,
                handles.clone(),
                ready_tx,
                leaf.guard(),
            ))
            .await;
        canceller.await.unwrap();

        assert_eq!(out, None);
        assert!(outer_handle.cancelled_caught());
        assert!(leaf.dropped());
        let handles = handles.lock().unwrap();
        assert_eq!(handles.len(), DEPTH);
        // Exactly one scope absorbs: the cancelled outermost; the nested ones never return.
        assert!(handles
            .iter()
            .all(|h| !h.cancel_called() && !h.cancelled_caught()));
    });
}

#[test]
fn c58_deep_nesting_5000_nurseries() {
    const DEPTH: usize = 5000;
    on_big_stack(|| async {
        let leaf = DropProbe::new();
        let cleanups = Counter::new();
        let (ready_tx, ready_rx) = oneshot::channel();
        let outer = CancelScope::new();
        let outer_handle = outer.handle();

        let canceller = tokio::spawn({
            let h = outer_handle.clone();
            async move {
                ready_rx.await.unwrap();
                h.cancel();
            }
        });
        let out = outer
            .run(nested_nurseries(
                DEPTH,
                cleanups.clone(),
                ready_tx,
                leaf.guard(),
            ))
            .await;
        canceller.await.unwrap();

        assert_eq!(out, None);
        assert!(outer_handle.cancelled_caught());
        assert!(leaf.dropped());
        assert_eq!(cleanups.get(), DEPTH + 1);
    });
}

fn assert_send<T: Send>(_: &T) {}
fn assert_send_val<T: Send>() {}
fn assert_send_sync<T: Send + Sync>() {}
fn assert_send_sync_clone_static<T: Send + Sync + Clone + 'static>() {}
fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}

/// Fails to compile if the method call resolves to both impls, that is, if the value is `Send`:
/// the usual trick for a negative auto-trait check, applied to a value of unnameable type.
trait AmbiguousIfSend<A> {
    fn not_send(&self) {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

// A runtime only because `sleep` registers with the timer when built; nothing is awaited.
#[tokio::test(flavor = "current_thread")]
async fn c59_auto_traits() {
    // Handles: usable from any task, thread or callback, and storable anywhere.
    assert_send_sync_clone_static::<CancelHandle>();
    assert_send_sync_clone_static::<NurseryHandle<TestError>>();
    assert_send_sync_clone_static::<NurseryHandle<String>>();
    assert_send_sync_clone_static::<ChildHandle<()>>();
    // `ChildHandle<T>` does not hold a `T`, so even a non-`Send` value type keeps it a handle.
    assert_send_sync_clone_static::<ChildHandle<std::rc::Rc<u8>>>();
    assert_send_sync_clone_static::<Nursery<'static, TestError>>();
    fn borrowed_env<'env>(n: &Nursery<'env, TestError>) {
        assert_send(n);
        assert_send_sync::<Nursery<'env, TestError>>();
        let _clone: Nursery<'env, TestError> = n.clone();
    }
    let _ = borrowed_env;

    // Plain values: errors and reasons travel across threads and into `Box<dyn Error>`.
    assert_send_sync_clone_static::<Elapsed>();
    assert_send_sync_clone_static::<Closed>();
    assert_send_sync_clone_static::<CleanupTimedOut>();
    assert_send_sync_clone_static::<CancelReason>();
    assert_send_sync::<Errors<TestError>>();
    assert_send_val::<Errors<TestError>>();
    assert_error::<Elapsed>();
    assert_error::<Closed>();
    assert_error::<CleanupTimedOut>();
    assert_error::<Errors<TestError>>();

    // Builders and scopes.
    assert_send_sync::<CancelScope>();
    assert_send_val::<CancelScope>();
    assert_send_sync_clone_static::<NurseryBuilder>();

    // Futures are `Send` when their bodies are.
    assert_send(&CancelScope::new().run(async { 1 }));
    let _: &Run<_> = &CancelScope::new().run(async { 1 });
    assert_send(&move_on_after(ms(1), async { 1 }));
    let fa: FailAfter<_> = fail_after(ms(1), async { 1 });
    assert_send(&fa);
    let sh: Shield<_> = shield(async { 1 });
    assert_send(&sh);
    let cp: Checkpoint = checkpoint();
    assert_send(&cp);
    let sl: Sleep = sleep(ms(1));
    assert_send(&sl);
    let scope = CancelScope::new();
    let handle = scope.handle();
    let waiter: Cancelled<'_> = handle.cancelled();
    assert_send(&waiter);
    drop(waiter);

    let nf: NurseryFuture<'_, _, TestError, _> = nursery(|n| async move {
        n.spawn(async { Ok(()) });
        n.defer(async { Ok(()) });
        sleep(ms(1)).await;
        Ok(n.handle())
    });
    assert_send(&nf);
    let na: NurseryAll<'_, _, TestError, _> = nursery_all(|n| async move {
        checkpoint().await;
        Ok(n.handle())
    });
    assert_send(&na);
    let local = String::from("borrowed");
    let borrowing = nursery(|_n| async {
        checkpoint().await;
        Ok::<_, TestError>(local.len())
    });
    assert_send(&borrowing);
    assert_send(&move_on_after(
        ms(1),
        nursery(|_n| async {
            checkpoint().await;
            Ok::<_, TestError>(1)
        }),
    ));

    // The converse: a body holding an `Rc` across an await makes the future non-`Send`.
    non_send_nursery().not_send();
    non_send_scope().not_send();
}

// Built in separate functions: an async block's auto traits are only known outside the
// function that defines it, and the negative check needs them at method resolution.
fn non_send_nursery() -> impl Future<Output = Result<i32, TestError>> {
    nursery(|_n| async {
        let rc = std::rc::Rc::new(1);
        checkpoint().await;
        Ok::<_, TestError>(*rc)
    })
}

fn non_send_scope() -> impl Future<Output = Option<i32>> {
    CancelScope::new().run(async {
        let rc = std::rc::Rc::new(1);
        checkpoint().await;
        *rc
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c59_send_nursery_future_runs_on_another_worker() {
    // `tokio::spawn` demands `Send`; the compile-time bound is exercised for real here.
    let task = tokio::spawn(nursery(|n| async move {
        let child = n.spawn(async { Ok::<_, TestError>(()) });
        checkpoint().await;
        let _ = child;
        Ok::<_, TestError>(n.handle())
    }));
    let handle = tokio::time::timeout(secs(10), task)
        .await
        .expect("hang detector")
        .unwrap()
        .unwrap();
    assert!(handle.is_closed());

    // A nursery awaited inside a scope inside a spawned task, written with the nursery in its
    // own async block: the form that compiles on stable (see the note in stress_threads.rs).
    let task = tokio::spawn(async {
        move_on_after(secs(10), async {
            nursery(|n| async move {
                n.spawn(async { Ok::<_, TestError>(()) });
                checkpoint().await;
                Ok::<_, TestError>(3)
            })
            .await
        })
        .await
    });
    let out = tokio::time::timeout(secs(10), task)
        .await
        .expect("hang detector")
        .unwrap();
    assert_eq!(out, Some(Ok(3)));
}

/// OS threads that cancel every handle they receive, as soon as they receive it.
struct CancelPool {
    senders: Vec<mpsc::Sender<CancelHandle>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl CancelPool {
    fn new(size: usize) -> Self {
        let (senders, threads) = (0..size)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<CancelHandle>();
                let thread = thread::spawn(move || {
                    for handle in rx {
                        handle.cancel();
                    }
                });
                (tx, thread)
            })
            .unzip();
        CancelPool { senders, threads }
    }

    fn cancel(&self, i: usize, handle: CancelHandle) {
        self.senders[i % self.senders.len()].send(handle).unwrap();
    }

    fn join(self) {
        drop(self.senders);
        for thread in self.threads {
            thread.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c60_cross_thread_cancel_race() {
    const SCOPES: usize = 1000;
    let pool = CancelPool::new(4);
    let bodies = DropProbe::new();
    let mut runs = Vec::with_capacity(SCOPES);

    for i in 0..SCOPES {
        let scope = CancelScope::new();
        let handle = scope.handle();
        let completed = Arc::new(AtomicBool::new(false));
        let guard = bodies.guard();
        let done = completed.clone();
        // Handing the handle over before spawning lets some cancels land before the first poll
        // and others mid-body or after completion.
        pool.cancel(i, handle.clone());
        let task = tokio::spawn(scope.run(async move {
            let _guard = guard;
            for _ in 0..i % 4 {
                checkpoint().await;
            }
            tokio::task::yield_now().await;
            // Nothing awaits after this: the value is reached iff the flag is set.
            done.store(true, Ordering::SeqCst);
            i
        }));
        runs.push((i, handle, completed, task));
    }

    let (mut values, mut absorbed) = (0, 0);
    for (i, handle, completed, task) in runs {
        let out = tokio::time::timeout(secs(10), task)
            .await
            .expect("hang detector: every scope completes")
            .expect("no panic");
        match out {
            Some(v) => {
                assert_eq!(v, i);
                assert!(completed.load(Ordering::SeqCst), "scope {i}");
                assert!(
                    !handle.cancelled_caught(),
                    "scope {i}: value returned yet caught"
                );
                values += 1;
            }
            None => {
                assert!(
                    !completed.load(Ordering::SeqCst),
                    "scope {i}: completed body lost"
                );
                assert!(handle.cancel_called(), "scope {i}");
                assert!(handle.cancelled_caught(), "scope {i}: None but not caught");
                absorbed += 1;
            }
        }
    }
    pool.join();

    assert_eq!(values + absorbed, SCOPES);
    // Every body was dropped exactly once, whichever way its scope ended.
    assert_eq!(bodies.count(), SCOPES);
}

/// A driver's callback registry on a foreign OS thread: it calls whatever callback it was given.
fn callback_thread(
    callbacks: mpsc::Receiver<Box<dyn FnOnce() -> Result<(), Closed> + Send>>,
    results: mpsc::Sender<Result<(), Closed>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for callback in callbacks {
            results.send(callback()).unwrap();
        }
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c61_fail_from_a_callback() {
    let (cb_tx, cb_rx) = mpsc::channel::<Box<dyn FnOnce() -> Result<(), Closed> + Send>>();
    let (res_tx, res_rx) = mpsc::channel();
    let driver = callback_thread(cb_rx, res_tx);
    let child = DropProbe::new();
    let after_await = Counter::new();
    let start = Instant::now();

    let (probe, after, tx) = (child.clone(), after_await.clone(), cb_tx.clone());
    let (out, handle) = {
        let (handle_tx, handle_rx) = oneshot::channel();
        let out = nursery(|n| async move {
            let h = n.handle();
            handle_tx.send(h.clone()).unwrap();
            // No timers anywhere, so the paused clock has no reason to move while we wait.
            n.spawn(async move {
                let _guard = probe.guard();
                pending::<Result<(), TestError>>().await
            });
            tx.send(Box::new(move || h.fail(TestError("lost"))))
                .unwrap();
            pending::<()>().await;
            after.hit();
            Ok(())
        })
        .await;
        (out, handle_rx.await.unwrap())
    };

    assert_eq!(out, Err(TestError("lost")));
    assert_eq!(
        start.elapsed(),
        ms(0),
        "promptly: the clock did not advance"
    );
    assert!(child.dropped());
    assert_eq!(after_await.get(), 0);
    assert_eq!(res_rx.recv().unwrap(), Ok(()));

    // After the nursery finished: "closed", no panic, nothing happens.
    let h = handle.clone();
    cb_tx
        .send(Box::new(move || h.fail(TestError("late"))))
        .unwrap();
    assert!(res_rx.recv().unwrap().unwrap_err().is_closed());
    assert!(handle.is_closed());
    drop(cb_tx);
    driver.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c61_fail_from_a_callback_multi_thread() {
    let (cb_tx, cb_rx) = mpsc::channel::<Box<dyn FnOnce() -> Result<(), Closed> + Send>>();
    let (res_tx, res_rx) = mpsc::channel();
    let driver = callback_thread(cb_rx, res_tx);
    let child = DropProbe::new();
    let cleanup_runs = Counter::new();
    let (handle_tx, handle_rx) = oneshot::channel();

    let (probe, runs, tx) = (child.clone(), cleanup_runs.clone(), cb_tx.clone());
    let out = tokio::time::timeout(
        secs(10),
        nursery(|n| async move {
            let h = n.handle();
            handle_tx.send(h.clone()).unwrap();
            n.defer(async move {
                runs.hit();
                Ok(())
            });
            n.spawn(async move {
                let _guard = probe.guard();
                tokio::time::sleep(secs(3600)).await;
                Ok(())
            });
            tx.send(Box::new(move || h.fail(TestError("lost"))))
                .unwrap();
            tokio::time::sleep(secs(3600)).await;
            Ok(())
        }),
    )
    .await
    .expect("hang detector: the failed nursery completes");

    assert_eq!(out, Err(TestError("lost")));
    assert!(child.dropped());
    assert_eq!(cleanup_runs.get(), 1);
    assert_eq!(res_rx.recv().unwrap(), Ok(()));

    let handle = handle_rx.await.unwrap();
    let h = handle.clone();
    cb_tx
        .send(Box::new(move || h.fail(TestError("late"))))
        .unwrap();
    assert!(res_rx.recv().unwrap().unwrap_err().is_closed());
    assert!(handle.is_closed());
    drop(cb_tx);
    driver.join().unwrap();
}
