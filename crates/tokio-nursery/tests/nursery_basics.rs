//! Conformance section A (C01–C08): joining, spawning, closed nurseries, cancelling children.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use support::*;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};
use tokio_nursery::{nursery, CancelScope, ChildHandle, NurseryHandle};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c01_join() {
    let start = Instant::now();
    let log = Log::new();
    let records = Arc::new(Mutex::new(Vec::new()));
    let (l, r) = (log.clone(), records.clone());
    let out = nursery(move |n| async move {
        for (delay, value) in [(ms(100), 42), (ms(200), 11)] {
            let (l, r) = (l.clone(), r.clone());
            n.spawn(async move {
                sleep(delay).await;
                r.lock().unwrap().push(value);
                l.push(format!("recorded {value}"));
                Ok::<_, TestError>(())
            });
        }
        Ok::<_, TestError>(7)
    })
    .await;
    assert_eq!(out, Ok(7));
    assert_eq!(start.elapsed(), ms(200));
    assert_eq!(*records.lock().unwrap(), [42, 11]);
    assert_eq!(log.at("recorded 42"), Some(ms(100)));
    assert_eq!(log.at("recorded 11"), Some(ms(200)));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c02_return_does_not_cancel() {
    let start = Instant::now();
    let log = Log::new();
    let l = log.clone();
    let (value, child) = nursery(move |n| async move {
        let child = n.spawn(async move {
            sleep(secs(5)).await;
            l.push("child ran to its end");
            Ok::<_, TestError>(())
        });
        Ok::<_, TestError>(("body value", child))
    })
    .await
    .unwrap();
    assert_eq!(value, "body value");
    assert_eq!(start.elapsed(), secs(5));
    assert_eq!(log.at("child ran to its end"), Some(secs(5)));
    assert!(child.is_finished());
    assert!(!child.is_cancelled());
    assert_eq!(child.cancel_reason(), None);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c03_spawn_into_cancelled_nursery() {
    let start = Instant::now();
    let probe = DropProbe::new();
    let side_effect = Counter::new();
    let (p, c) = (probe.clone(), side_effect.clone());
    let out = nursery(move |n| async move {
        n.cancel();
        let (guard, c2) = (p.guard(), c.clone());
        n.spawn(async move {
            let _guard = guard;
            c2.hit();
            Ok::<_, TestError>(())
        });
        // Dropped by `spawn` itself, before any poll could have happened.
        assert_eq!(p.count(), 1, "the refused child was not dropped at once");
        assert_eq!(c.get(), 0, "the refused child was polled");
        Ok::<_, TestError>("completed")
    })
    .await;
    assert_eq!(out, Ok("completed"));
    assert_eq!(start.elapsed(), ms(0));
    assert_eq!(side_effect.get(), 0);
    assert_eq!(probe.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c03_spawn_into_cancelled_nursery_through_handle() {
    let probe = DropProbe::new();
    let side_effect = Counter::new();
    let (p, c) = (probe.clone(), side_effect.clone());
    let out = nursery(move |n| async move {
        let handle = n.handle();
        handle.cancel().expect("the nursery is open");
        let guard = p.guard();
        // The nursery is cancelled, not closed: the spawn is accepted and the future dropped.
        let spawned = handle.spawn(async move {
            let _guard = guard;
            c.hit();
            Ok::<_, TestError>(())
        });
        assert!(spawned.is_ok());
        assert_eq!(p.count(), 1, "the refused child was not dropped at once");
        Ok::<_, TestError>("completed")
    })
    .await;
    assert_eq!(out, Ok("completed"));
    assert_eq!(side_effect.get(), 0);
    assert_eq!(probe.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c04_late_spawn_after_body_returned() {
    let start = Instant::now();
    let log = Log::new();
    let l = log.clone();
    let out = nursery(move |n| async move {
        let handle = n.handle();
        let l2 = l.clone();
        n.spawn(async move {
            sleep(secs(1)).await;
            l2.push("sibling spawned");
            let l3 = l2.clone();
            handle
                .spawn(async move {
                    sleep(secs(1)).await;
                    l3.push("late sibling ran");
                    Ok(())
                })
                .expect("the nursery is still open while a child runs");
            Ok::<_, TestError>(())
        });
        l.push("body returned");
        Ok::<_, TestError>(5)
    })
    .await;
    assert_eq!(out, Ok(5));
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(
        log.names(),
        ["body returned", "sibling spawned", "late sibling ran"]
    );
    assert_eq!(log.at("late sibling ran"), Some(secs(2)));
}

type Level = Pin<Box<dyn Future<Output = Result<(), TestError>> + Send>>;

/// One child of the spawn tree: waits 100 ms, spawns two children of the next level (up to
/// `depth == 3`), then records that it ran.
fn level(handle: NurseryHandle<TestError>, depth: u32, ran: Counter, log: Log) -> Level {
    Box::pin(async move {
        sleep(ms(100)).await;
        if depth < 3 {
            for _ in 0..2 {
                let next = level(handle.clone(), depth + 1, ran.clone(), log.clone());
                handle.spawn(next).expect("the nursery is open");
            }
        }
        ran.hit();
        log.push(format!("level {depth}"));
        Ok(())
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c04_recursive_spawns_three_levels_deep() {
    let start = Instant::now();
    let log = Log::new();
    let ran = Counter::new();
    let (l, r) = (log.clone(), ran.clone());
    let out = nursery(move |n| async move {
        for _ in 0..2 {
            n.spawn(level(n.handle(), 1, r.clone(), l.clone()));
        }
        Ok::<_, TestError>(())
    })
    .await;
    assert_eq!(out, Ok(()));
    // 2 children, 4 grandchildren, 8 great-grandchildren.
    assert_eq!(ran.get(), 14);
    let names = log.names();
    assert_eq!(names.iter().filter(|e| *e == "level 1").count(), 2);
    assert_eq!(names.iter().filter(|e| *e == "level 2").count(), 4);
    assert_eq!(names.iter().filter(|e| *e == "level 3").count(), 8);
    assert_eq!(log.at("level 3"), Some(ms(300)));
    assert_eq!(start.elapsed(), ms(300));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c05_closed_nursery_handle() {
    let handle = nursery(|n| async move { Ok::<_, TestError>(n.handle()) })
        .await
        .unwrap();
    assert!(handle.is_closed());

    let probe = DropProbe::new();
    let polled = Counter::new();
    let (guard, c) = (probe.guard(), polled.clone());
    let spawned = handle.spawn(async move {
        let _guard = guard;
        c.hit();
        Ok(())
    });
    let closed = spawned.expect_err("spawn into a closed nursery must be refused");
    assert!(closed.is_closed());
    assert!(closed.to_string().contains("closed"));
    assert_eq!(probe.count(), 1, "the refused future was not dropped");

    let (guard, c) = (probe.guard(), polled.clone());
    let named = handle.spawn_named("late", async move {
        let _guard = guard;
        c.hit();
        Ok(())
    });
    assert!(named.expect_err("spawn_named must be refused").is_closed());
    assert_eq!(probe.count(), 2, "the refused named future was not dropped");

    assert!(handle
        .cancel()
        .expect_err("cancel must be refused")
        .is_closed());
    assert!(handle
        .fail(TestError("late"))
        .expect_err("fail must be refused")
        .is_closed());

    // Give a wrongly accepted future every chance to run.
    tokio::task::yield_now().await;
    sleep(secs(1)).await;
    assert_eq!(polled.get(), 0, "a refused future was polled");
    assert!(handle.is_closed());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c05_closed_nursery_escaped_body_handle() {
    // A clone of the body's own `Nursery` that outlived the body (possible with `'env = 'static`).
    let n = nursery(|n| async move { Ok::<_, TestError>(n.clone()) })
        .await
        .unwrap();
    let probe = DropProbe::new();
    let polled = Counter::new();
    let (guard, c) = (probe.guard(), polled.clone());
    let child: ChildHandle = n.spawn(async move {
        let _guard = guard;
        c.hit();
        Ok(())
    });
    assert!(child.is_finished(), "a refused child must report finished");
    assert_eq!(probe.count(), 1, "the refused future was not dropped");
    n.cancel();
    tokio::task::yield_now().await;
    sleep(secs(1)).await;
    assert_eq!(polled.get(), 0, "a refused future was polled");
    assert!(n.handle().is_closed());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c06_cancel_children_not_body() {
    let start = Instant::now();
    let log = Log::new();
    let after_sleep = Counter::new();
    let (l, a) = (log.clone(), after_sleep.clone());
    let out = nursery(move |n| async move {
        for event in ["child 1 dropped", "child 2 dropped"] {
            let (guard, a) = (LogOnDrop::new(&l, event), a.clone());
            n.spawn(async move {
                let _guard = guard;
                sleep(secs(60)).await;
                a.hit();
                Ok::<_, TestError>(())
            });
        }
        n.cancel();
        sleep(secs(1)).await;
        l.push("body woke");
        Ok::<_, TestError>("v")
    })
    .await;
    assert_eq!(out, Ok("v"));
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(log.at("child 1 dropped"), Some(ms(0)));
    assert_eq!(log.at("child 2 dropped"), Some(ms(0)));
    assert_eq!(log.at("body woke"), Some(secs(1)));
    assert_eq!(after_sleep.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c07_cascade() {
    let start = Instant::now();
    let probe = DropProbe::new();
    let after_sleep = Counter::new();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let canceller = tokio::spawn(async move {
        for _ in 0..4 {
            started_rx.recv().await.expect("a leaf started");
        }
        handle.cancel();
    });
    let (p, a) = (probe.clone(), after_sleep.clone());
    let out = scope
        .run(nursery(move |n| async move {
            for _ in 0..2 {
                let (p, a, tx) = (p.clone(), a.clone(), started_tx.clone());
                n.spawn(nursery(move |inner| async move {
                    for _ in 0..2 {
                        let (guard, a, tx) = (p.guard(), a.clone(), tx.clone());
                        inner.spawn(async move {
                            let _guard = guard;
                            tx.send(()).expect("the canceller listens");
                            sleep(secs(3600)).await;
                            a.hit();
                            Ok::<_, TestError>(())
                        });
                    }
                    Ok::<_, TestError>(())
                }));
            }
            std::future::pending::<()>().await;
            Ok::<_, TestError>(())
        }))
        .await;
    // Checked right after `run` returned: every leaf was dropped before.
    assert_eq!(probe.count(), 4);
    assert!(out.is_none());
    assert_eq!(after_sleep.get(), 0);
    assert_eq!(start.elapsed(), ms(0));
    canceller.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07_cascade_multi_thread() {
    let probe = DropProbe::new();
    let after_wait = Counter::new();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let scope = CancelScope::new();
    let handle = scope.handle();
    let caught = scope.handle();
    let canceller = tokio::spawn(async move {
        for _ in 0..4 {
            started_rx.recv().await.expect("a leaf started");
        }
        handle.cancel();
    });
    let (p, a) = (probe.clone(), after_wait.clone());
    let out = scope
        .run(nursery(move |n| async move {
            for _ in 0..2 {
                let (p, a, tx) = (p.clone(), a.clone(), started_tx.clone());
                n.spawn(nursery(move |inner| async move {
                    for _ in 0..2 {
                        let (guard, a, tx) = (p.guard(), a.clone(), tx.clone());
                        inner.spawn(async move {
                            let _guard = guard;
                            tx.send(()).expect("the canceller listens");
                            std::future::pending::<()>().await;
                            a.hit();
                            Ok::<_, TestError>(())
                        });
                    }
                    Ok::<_, TestError>(())
                }));
            }
            std::future::pending::<()>().await;
            Ok::<_, TestError>(())
        }))
        .await;
    assert_eq!(probe.count(), 4);
    assert!(out.is_none());
    assert!(caught.cancelled_caught());
    assert_eq!(after_wait.get(), 0);
    canceller.await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c08_cancel_one_child() {
    let start = Instant::now();
    let log = Log::new();
    let after_sleep = Counter::new();
    let (l, a) = (log.clone(), after_sleep.clone());
    let out = nursery(move |n| async move {
        let (guard, a) = (LogOnDrop::new(&l, "cancelled child dropped"), a.clone());
        let cancelled = n.spawn(async move {
            let _guard = guard;
            sleep(secs(60)).await;
            a.hit();
            Ok::<_, TestError>(())
        });
        let l2 = l.clone();
        let sibling = n.spawn(async move {
            sleep(secs(1)).await;
            l2.push("sibling finished");
            Ok::<_, TestError>(())
        });
        cancelled.cancel();
        sleep(ms(500)).await;
        l.push("body finished");
        assert!(!n.cancel_called());
        Ok::<_, TestError>((n.handle(), cancelled, sibling))
    })
    .await;
    let (handle, cancelled, sibling) = out.expect("the nursery returns Ok");
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(log.at("cancelled child dropped"), Some(ms(0)));
    assert_eq!(log.at("body finished"), Some(ms(500)));
    assert_eq!(log.at("sibling finished"), Some(secs(1)));
    assert_eq!(after_sleep.get(), 0);
    assert!(!handle.cancel_called());
    let reason = cancelled
        .cancel_reason()
        .expect("the cancelled child has a reason");
    assert!(reason.is_explicit());
    assert!(!reason.is_inherited());
    assert!(!sibling.is_cancelled());
    assert_eq!(sibling.cancel_reason(), None);
}
