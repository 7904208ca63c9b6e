//! `start` (CONFORMANCE K, C52–C56): a child that signals readiness with a value.

mod support;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{nursery, nursery_all, CancelScope, StartError, Started};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c52_start_returns_the_signalled_value_and_the_child_goes_on() {
    let t0 = Instant::now();
    let log = Log::new();
    let l = log.clone();
    let out = nursery(|n| async move {
        let v = n
            .start(move |task_status: Started<u32>| async move {
                tokio::time::sleep(secs(1)).await;
                task_status.started(42);
                tokio::time::sleep(secs(1)).await;
                l.push("child done");
                Ok::<_, TestError>(())
            })
            .await
            .unwrap();
        assert_eq!(
            t0.elapsed(),
            secs(1),
            "start returns when the child signals"
        );
        Ok(v)
    })
    .await;
    assert_eq!(out, Ok(42));
    assert_eq!(
        t0.elapsed(),
        secs(2),
        "the nursery waits for the started child"
    );
    assert_eq!(log.at("child done"), Some(secs(2)));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c53_error_before_started_comes_back_from_start() {
    let sibling_done = Counter::new();
    let s = sibling_done.clone();
    let out = nursery(|n| async move {
        n.spawn(async move {
            tokio::time::sleep(secs(2)).await;
            s.hit();
            Ok(())
        });
        let err = n
            .start(|task_status: Started<()>| async move {
                let _unused = task_status; // held, never signalled
                tokio::time::sleep(secs(1)).await;
                Err(TestError("bind"))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StartError::Failed(TestError("bind"))),
            "{err:?}"
        );
        assert!(!n.cancel_called(), "the nursery is not cancelled");
        Ok("body")
    })
    .await;
    assert_eq!(out, Ok("body"));
    assert_eq!(sibling_done.get(), 1, "siblings unaffected");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c54_error_after_started_fails_the_nursery() {
    let returned = Counter::new();
    let r = returned.clone();
    let out = nursery(|n| async move {
        let v = n
            .start(|task_status| async move {
                task_status.started(7u8);
                tokio::time::sleep(secs(1)).await;
                Err(TestError("after"))
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
        r.hit();
        std::future::pending::<()>().await;
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("after")));
    assert_eq!(returned.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c55_returning_without_signalling_is_not_started() {
    nursery(|n| async move {
        let err = n
            .start(|_task_status: Started<()>| async { Ok::<_, TestError>(()) })
            .await
            .unwrap_err();
        assert!(err.is_not_started());
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c55_dropping_the_signal_cancels_the_child() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let after = Counter::new();
    let a = after.clone();
    nursery(|n| async move {
        let err = n
            .start(move |task_status: Started<()>| async move {
                let _guard = guard;
                drop(task_status);
                tokio::time::sleep(secs(10)).await;
                a.hit();
                Ok::<_, TestError>(())
            })
            .await
            .unwrap_err();
        assert!(err.is_not_started());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(probe.count(), 1, "the child was cancelled");
    assert_eq!(after.get(), 0);
    assert_eq!(t0.elapsed(), secs(0), "promptly");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c55_signal_dropped_by_a_closure_that_does_not_move_it() {
    nursery(|n| async move {
        // The closure drops its argument as it returns: the child never could signal.
        let err = n
            .start(|_task_status: Started<()>| async { Err(TestError("unreached")) })
            .await
            .unwrap_err();
        assert!(err.is_not_started());
        Ok::<_, TestError>(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c55_start_on_a_finished_nursery_is_closed_at_once() {
    let handle = nursery(|n| async move { Ok::<_, TestError>(n.handle()) })
        .await
        .unwrap();
    let polled = Counter::new();
    let p = polled.clone();
    let err = handle
        .start(move |s: Started<()>| async move {
            p.hit();
            s.started(());
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_closed());
    assert_eq!(polled.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c56_caller_cancelled_before_the_signal() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let out = nursery(|n| async move {
        let scope = CancelScope::new().with_timeout(secs(1));
        let h = scope.handle();
        let n2 = n.clone();
        let inner = scope
            .run(async move {
                n2.start(move |task_status: Started<()>| async move {
                    let _guard = guard;
                    tokio::time::sleep(secs(5)).await;
                    task_status.started(());
                    Ok::<_, TestError>(())
                })
                .await
            })
            .await;
        assert!(inner.is_none(), "the caller's scope absorbs");
        assert!(h.cancelled_caught());
        assert_eq!(t0.elapsed(), secs(1));
        assert!(!n.cancel_called(), "the nursery is not cancelled");
        Ok("body")
    })
    .await;
    assert_eq!(out, Ok("body"));
    assert_eq!(probe.count(), 1, "the child was dropped");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn start_child_is_governed_by_the_nursery_after_the_signal() {
    let probe = DropProbe::new();
    let guard = probe.guard();
    let out = nursery_all(|n| async move {
        n.start(move |task_status: Started<()>| async move {
            let _guard = guard;
            task_status.started(());
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .unwrap();
        tokio::time::sleep(secs(1)).await;
        Err::<(), _>(TestError("body"))
    })
    .await;
    assert_eq!(out.unwrap_err().all(), &[TestError("body")]);
    assert_eq!(
        probe.count(),
        1,
        "the body's failure cancelled the started child"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn start_panic_before_signal_resumes_from_start() {
    let out = tokio::spawn(async {
        nursery(|n| async move {
            let _ = n
                .start(|s: Started<()>| async move {
                    let _unused = s;
                    panic!("before signal")
                })
                .await;
            Ok::<_, TestError>(())
        })
        .await
    })
    .await;
    let payload = out.unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"before signal"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn pending_start_keeps_the_nursery_open() {
    let t0 = Instant::now();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = nursery(|n| async move {
        let h = n.handle();
        n.spawn(async move {
            let v = h
                .start(|s| async move {
                    tokio::time::sleep(secs(3)).await;
                    s.started(9u8);
                    Ok(())
                })
                .await
                .unwrap();
            tx.send(v).unwrap();
            Ok(())
        });
        Ok(())
    })
    .await;
    assert_eq!(out, Ok::<_, TestError>(()));
    assert_eq!(rx.await.unwrap(), 9);
    assert_eq!(t0.elapsed(), secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_on_the_multi_thread_runtime() {
    for _ in 0..200 {
        let out = nursery(|n| async move {
            let v = n
                .start(|s| async move {
                    tokio::task::yield_now().await;
                    s.started(1u8);
                    tokio::task::yield_now().await;
                    Ok::<_, TestError>(())
                })
                .await
                .unwrap();
            Ok(v)
        })
        .await;
        assert_eq!(out, Ok(1));
    }
}
