//! Conformance sections B, C and D (C09–C20): child and body failures, and keeping every error.

mod support;

use std::sync::{Arc, Mutex};

use support::*;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, Instant};
use tokio_nursery::{
    fail_after, nursery, nursery_all, shield, CancelReason, CancelScope, ChildHandle,
};

/// Runs a closure when dropped: observes library state at the moment a future is dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

type Slot<T> = Arc<Mutex<Option<T>>>;

// ---------------------------------------------------------------------------------------------
// B. Child failure
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c09_first_failure_cancels_the_rest() {
    let start = Instant::now();
    let probe = DropProbe::new();
    let laps = Counter::new();
    let (p, l) = (probe.clone(), laps.clone());
    let out = nursery(move |n| async move {
        let guard = p.guard();
        n.spawn(async move {
            let _guard = guard;
            loop {
                sleep(ms(100)).await;
                l.hit();
            }
        });
        n.spawn(async {
            sleep(ms(250)).await;
            Err::<(), _>(TestError("c09"))
        });
        Ok(())
    })
    .await;
    // Checked right after the nursery returned: the sibling was dropped before.
    assert_eq!(probe.count(), 1);
    assert_eq!(out, Err(TestError("c09")));
    assert_eq!(start.elapsed(), ms(250));
    assert_eq!(laps.get(), 2, "the sibling kept running after the failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c09_first_failure_cancels_the_rest_multi_thread() {
    let probe = DropProbe::new();
    let p = probe.clone();
    let (looping_tx, looping_rx) = oneshot::channel::<()>();
    let out = nursery(move |n| async move {
        let guard = p.guard();
        n.spawn(async move {
            let _guard = guard;
            let mut looping = Some(looping_tx);
            loop {
                sleep(ms(1)).await;
                if let Some(tx) = looping.take() {
                    tx.send(()).expect("the failing child listens");
                }
            }
        });
        n.spawn(async move {
            looping_rx.await.expect("the sibling started looping");
            Err::<(), _>(TestError("c09"))
        });
        Ok(())
    })
    .await;
    assert_eq!(probe.count(), 1);
    assert_eq!(out, Err(TestError("c09")));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c10_body_is_woken() {
    let start = Instant::now();
    let probe = DropProbe::new();
    let after_await = Counter::new();
    let (p, a) = (probe.clone(), after_await.clone());
    let out = nursery(move |n| async move {
        let _guard = p.guard();
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("c10"))
        });
        std::future::pending::<()>().await;
        a.hit();
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("c10")));
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(after_await.get(), 0);
    assert_eq!(probe.count(), 1, "the body was not dropped");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c11_reason_seen_by_the_sibling() {
    let sibling_slot: Slot<ChildHandle> = Arc::default();
    let seen_at_drop: Slot<Option<CancelReason>> = Arc::default();
    let (slot, seen) = (sibling_slot.clone(), seen_at_drop.clone());
    let out = nursery(move |n| async move {
        let (slot_in_child, seen) = (slot.clone(), seen.clone());
        let probe = OnDrop(move || {
            let handle = slot_in_child.lock().unwrap().clone();
            let reason = handle.and_then(|h| h.cancel_reason());
            *seen.lock().unwrap() = Some(reason);
        });
        let sibling = n.spawn_named("worker-1", async move {
            let _probe = probe;
            std::future::pending::<()>().await;
            Ok(())
        });
        *slot.lock().unwrap() = Some(sibling);
        n.spawn_named("worker-2", async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("c11"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("c11")));

    let expected = "test error c11";
    let at_drop = seen_at_drop
        .lock()
        .unwrap()
        .clone()
        .expect("the sibling was dropped")
        .expect("the sibling had a cancel reason when it was dropped");
    let sibling = sibling_slot.lock().unwrap().clone().unwrap();
    let after = sibling
        .cancel_reason()
        .expect("the sibling has a cancel reason");
    for reason in [&at_drop, &after] {
        assert!(reason.is_failure(), "{reason:?}");
        assert_eq!(reason.child_name(), Some("worker-2"), "{reason:?}");
        assert_eq!(reason.message(), Some(expected), "{reason:?}");
        let shown = reason.to_string();
        assert!(shown.contains("worker-2"), "{shown}");
        assert!(shown.contains(expected), "{shown}");
    }
    assert_eq!(
        after.to_string(),
        "cancelled: child \"worker-2\" failed: test error c11"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c12_spawn_while_failing() {
    let probe = DropProbe::new();
    let polled = Counter::new();
    let (p, c) = (probe.clone(), polled.clone());
    let out = nursery_all(move |n| async move {
        // The sender lives in the failing child's future, which is dropped only after its
        // failure was recorded: the receiver then tells the body "the nursery is failing".
        let (failed_tx, failed_rx) = oneshot::channel::<()>();
        n.spawn(async move {
            let _failed_tx = failed_tx;
            sleep(secs(1)).await;
            Err::<(), _>(TestError("first"))
        });
        shield(async {
            let _ = failed_rx.await;
            assert!(n.cancel_called(), "the failure has cancelled the nursery");
            let (guard, c) = (p.guard(), c.clone());
            n.spawn(async move {
                let _guard = guard;
                c.hit();
                Err::<(), _>(TestError("late"))
            });
            assert_eq!(p.count(), 1, "the late child was not dropped at once");
        })
        .await;
        std::future::pending::<()>().await;
        Ok(())
    })
    .await;
    let errors = out.expect_err("the nursery fails");
    assert_eq!(errors.first(), &TestError("first"));
    assert_eq!(errors.all(), [TestError("first")]);
    assert_eq!(polled.get(), 0, "the late child was polled");
    assert_eq!(probe.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c12_spawn_from_a_sibling_dropped_by_the_failure() {
    let probe = DropProbe::new();
    let polled = Counter::new();
    let spawn_result: Slot<bool> = Arc::default();
    let (p, c, r) = (probe.clone(), polled.clone(), spawn_result.clone());
    let out = nursery(move |n| async move {
        let handle = n.handle();
        let on_drop = OnDrop(move || {
            let (guard, c) = (p.guard(), c.clone());
            let spawned = handle.spawn(async move {
                let _guard = guard;
                c.hit();
                Err::<(), _>(TestError("late"))
            });
            *r.lock().unwrap() = Some(spawned.is_ok());
        });
        n.spawn(async move {
            let _on_drop = on_drop;
            std::future::pending::<()>().await;
            Ok(())
        });
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("first"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("first")));
    assert!(
        spawn_result.lock().unwrap().is_some(),
        "the sibling was not dropped"
    );
    assert_eq!(polled.get(), 0, "the late child was polled");
    assert_eq!(probe.count(), 1, "the late child was not dropped");
}

// ---------------------------------------------------------------------------------------------
// C. Body failure
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c13_body_error_no_children() {
    let start = Instant::now();
    let out = nursery(|_n| async { Err::<(), _>(TestError("c13")) }).await;
    assert_eq!(out, Err(TestError("c13")));
    assert_eq!(start.elapsed(), ms(0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c14_body_error_while_children_run() {
    let start = Instant::now();
    let log = Log::new();
    let after_sleep = Counter::new();
    let handles: Arc<Mutex<Vec<ChildHandle>>> = Arc::default();
    let (l, a, hs) = (log.clone(), after_sleep.clone(), handles.clone());
    let out = nursery(move |n| async move {
        for (delay, event) in [(secs(1), "child 1 dropped"), (secs(2), "child 2 dropped")] {
            let (guard, a) = (LogOnDrop::new(&l, event), a.clone());
            let child = n.spawn(async move {
                let _guard = guard;
                sleep(delay).await;
                a.hit();
                Ok(())
            });
            hs.lock().unwrap().push(child);
        }
        Err::<(), _>(TestError("c14"))
    })
    .await;
    assert_eq!(out, Err(TestError("c14")));
    assert_eq!(start.elapsed(), ms(0));
    assert_eq!(log.at("child 1 dropped"), Some(ms(0)));
    assert_eq!(log.at("child 2 dropped"), Some(ms(0)));
    assert_eq!(after_sleep.get(), 0);
    let handles = handles.lock().unwrap();
    assert_eq!(handles.len(), 2);
    for child in handles.iter() {
        let reason = child.cancel_reason().expect("the child was cancelled");
        assert!(
            matches!(reason.origin(), CancelReason::BodyFailed { .. }),
            "{reason:?}"
        );
        assert_eq!(reason.message(), Some("test error c14"));
        assert_eq!(
            reason.to_string(),
            "cancelled: nursery body failed: test error c14"
        );
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c15_error_while_cancelled_from_outside() {
    let scope = CancelScope::new();
    let (outer, h) = (scope.handle(), scope.handle());
    let nursery_returned: Slot<Result<(), TestError>> = Arc::default();
    let seen = nursery_returned.clone();
    let out = scope
        .run(async move {
            let r = nursery(move |_n| async move {
                h.cancel();
                Err::<(), _>(TestError("c15"))
            })
            .await;
            *seen.lock().unwrap() = Some(r.clone());
            r
        })
        .await;
    assert_eq!(
        *nursery_returned.lock().unwrap(),
        Some(Err(TestError("c15")))
    );
    assert_eq!(out, Some(Err(TestError("c15"))));
    assert!(outer.cancel_called());
    assert!(!outer.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c15_error_while_cancelled_from_outside_with_a_child() {
    let start = Instant::now();
    let probe = DropProbe::new();
    let scope = CancelScope::new();
    let (outer, h) = (scope.handle(), scope.handle());
    let p = probe.clone();
    let out = scope
        .run(nursery(move |n| async move {
            let guard = p.guard();
            n.spawn(async move {
                let _guard = guard;
                sleep(secs(10)).await;
                Ok(())
            });
            h.cancel();
            Err::<(), _>(TestError("c15"))
        }))
        .await;
    assert_eq!(out, Some(Err(TestError("c15"))));
    assert_eq!(probe.count(), 1, "the child was not dropped");
    assert_eq!(start.elapsed(), ms(0));
    assert!(outer.cancel_called());
    assert!(!outer.cancelled_caught());
}

// ---------------------------------------------------------------------------------------------
// D. Errors, all of them
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c16_two_failures() {
    let cap = TraceCapture::start();
    let start = Instant::now();
    let out = nursery(|n| async move {
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("e1"))
        });
        n.spawn(shield(async {
            sleep(ms(1500)).await;
            Err::<(), _>(TestError("e2"))
        }));
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("e1")));
    assert_eq!(start.elapsed(), ms(1500));
    assert!(cap.contains("test error e2"), "{}", cap.output());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c16_two_failures_all_errors() {
    let start = Instant::now();
    let out = nursery_all(|n| async move {
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("e1"))
        });
        n.spawn(shield(async {
            sleep(ms(1500)).await;
            Err::<(), _>(TestError("e2"))
        }));
        Ok(())
    })
    .await;
    let errors = out.expect_err("the nursery fails");
    assert_eq!(errors.first(), &TestError("e1"));
    assert_eq!(errors.all(), [TestError("e1"), TestError("e2")]);
    assert!(errors.cleanup_timeouts().is_empty());
    assert_eq!(start.elapsed(), ms(1500));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c17_cleanup_error_kept() {
    let cap = TraceCapture::start();
    let log = Log::new();
    let cleanups = Counter::new();
    let (l, c) = (log.clone(), cleanups.clone());
    let out = nursery(move |n| async move {
        n.defer(async move {
            c.hit();
            l.push("cleanup");
            Err(TestError("e2"))
        });
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("e1"))
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("e1")));
    assert_eq!(cleanups.get(), 1);
    assert_eq!(log.at("cleanup"), Some(secs(1)));
    assert!(cap.contains("test error e2"), "{}", cap.output());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c17_cleanup_error_kept_all_errors() {
    let cleanups = Counter::new();
    let c = cleanups.clone();
    let out = nursery_all(move |n| async move {
        n.defer(async move {
            c.hit();
            Err(TestError("e2"))
        });
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("e1"))
        });
        Ok(())
    })
    .await;
    let errors = out.expect_err("the nursery fails");
    assert_eq!(errors.first(), &TestError("e1"));
    assert_eq!(errors.all(), [TestError("e1"), TestError("e2")]);
    assert_eq!(cleanups.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c17_cleanup_error_alone() {
    let cleanups = Counter::new();
    let c = cleanups.clone();
    let out = nursery(move |n| async move {
        n.defer(async move {
            c.hit();
            Err(TestError("e2"))
        });
        Ok("body value")
    })
    .await;
    assert_eq!(out, Err(TestError("e2")));
    assert_eq!(cleanups.get(), 1);

    let c = cleanups.clone();
    let all = nursery_all(move |n| async move {
        n.defer(async move {
            c.hit();
            Err(TestError("e2"))
        });
        Ok("body value")
    })
    .await;
    assert_eq!(all.expect_err("fails").all(), [TestError("e2")]);
    assert_eq!(cleanups.get(), 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c18_nested_nurseries() {
    let start = Instant::now();
    let log = Log::new();
    let after = Counter::new();
    let others: Slot<ChildHandle> = Arc::default();
    let (l, a, o) = (log.clone(), after.clone(), others.clone());
    let out = nursery(move |n| async move {
        let _body_guard = LogOnDrop::new(&l, "outer body dropped");
        let (guard, a2) = (LogOnDrop::new(&l, "outer sibling dropped"), a.clone());
        let sibling = n.spawn(async move {
            let _guard = guard;
            sleep(secs(10)).await;
            a2.hit();
            Ok(())
        });
        *o.lock().unwrap() = Some(sibling);
        let a3 = a.clone();
        n.spawn_named("middle", async move {
            nursery(|inner| async move {
                inner.spawn(async {
                    sleep(secs(1)).await;
                    Err::<(), _>(TestError("child"))
                });
                std::future::pending::<()>().await;
                Ok(())
            })
            .await?;
            a3.hit();
            Ok(())
        });
        std::future::pending::<()>().await;
        a.hit();
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("child")));
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(log.at("outer sibling dropped"), Some(secs(1)));
    assert_eq!(log.at("outer body dropped"), Some(secs(1)));
    assert_eq!(after.get(), 0);
    let sibling = others.lock().unwrap().clone().unwrap();
    let reason = sibling
        .cancel_reason()
        .expect("the outer sibling was cancelled");
    assert_eq!(reason.child_name(), Some("middle"));
    assert_eq!(reason.message(), Some("test error child"));
}

/// A nursery with a child and a body that both sleep 10 s, reporting when each has started.
async fn sleeping_nursery(
    probe: DropProbe,
    after_sleep: Counter,
    started: mpsc::UnboundedSender<()>,
) -> Result<(), TestError> {
    nursery(move |n| async move {
        let (guard, a, tx) = (probe.guard(), after_sleep.clone(), started.clone());
        n.spawn(async move {
            let _guard = guard;
            tx.send(()).expect("the test listens");
            sleep(secs(10)).await;
            a.hit();
            Ok(())
        });
        let _guard = probe.guard();
        started.send(()).expect("the test listens");
        sleep(secs(10)).await;
        after_sleep.hit();
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c19_pure_cancellation_leaves_no_error() {
    let start = Instant::now();
    let (probe, after_sleep) = (DropProbe::new(), Counter::new());
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let scope = CancelScope::new();
    let (outer, h) = (scope.handle(), scope.handle());
    let canceller = tokio::spawn(async move {
        for _ in 0..2 {
            started_rx.recv().await.expect("child and body started");
        }
        h.cancel();
    });
    let out = scope
        .run(sleeping_nursery(
            probe.clone(),
            after_sleep.clone(),
            started_tx,
        ))
        .await;
    assert_eq!(out, None);
    assert!(outer.cancelled_caught());
    assert_eq!(probe.count(), 2, "child and body were not both dropped");
    assert_eq!(after_sleep.get(), 0);
    assert_eq!(start.elapsed(), ms(0));
    canceller.await.unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c19_pure_cancellation_fail_after() {
    let start = Instant::now();
    let (probe, after_sleep) = (DropProbe::new(), Counter::new());
    let (started_tx, _started_rx) = mpsc::unbounded_channel();
    let out = fail_after(
        ms(100),
        sleeping_nursery(probe.clone(), after_sleep.clone(), started_tx),
    )
    .await;
    match out {
        Err(elapsed) => assert!(elapsed.is_timeout()),
        Ok(inner) => panic!("expected exactly Err(Elapsed), got Ok({inner:?})"),
    }
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(probe.count(), 2, "child and body were not both dropped");
    assert_eq!(after_sleep.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c20_a_real_error_beats_the_timeout() {
    let start = Instant::now();
    let cleanups = Counter::new();
    let c = cleanups.clone();
    let out = fail_after(
        ms(10),
        nursery(move |n| async move {
            n.defer(async move {
                c.hit();
                Err(TestError("z"))
            });
            sleep(secs(1)).await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(out, Ok(Err(TestError("z"))));
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(cleanups.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c20_a_real_error_beats_the_timeout_slow_cleanup() {
    // The cleanup outlives the deadline: it is shielded, so it still finishes and its error wins.
    let start = Instant::now();
    let cleanups = Counter::new();
    let c = cleanups.clone();
    let out = fail_after(
        ms(10),
        nursery(move |n| async move {
            n.defer(async move {
                sleep(ms(5)).await;
                c.hit();
                Err(TestError("z"))
            });
            sleep(secs(1)).await;
            Ok(())
        }),
    )
    .await;
    assert_eq!(out, Ok(Err(TestError("z"))));
    assert_eq!(start.elapsed(), ms(15));
    assert_eq!(cleanups.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_while_cleanups_run_is_returned_not_lost() {
    let out = nursery(|n| async move {
        let h = n.handle();
        n.defer(async move {
            // A driver callback firing during disconnect().
            assert_eq!(h.fail(TestError("lost during disconnect")), Ok(()));
            Ok(())
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("lost during disconnect")));
}
