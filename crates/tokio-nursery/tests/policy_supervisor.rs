//! Supervisor nurseries: children's and cleanups' failures are collected, in order, without
//! cancelling anything; the body's failure, `fail(e)` and panics still cancel everything.

mod support;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use support::DropProbe;
use tokio::time::{sleep, Instant};
use tokio_nursery::{supervisor, NurseryBuilder};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn child_failures_cancel_nothing_and_come_back_in_order() {
    let start = Instant::now();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let f = finished.clone();
    let out = supervisor(|n| async move {
        for (ms, fails) in [(30u64, true), (10, true), (50, false), (20, false)] {
            let f = f.clone();
            n.spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                if fails {
                    return Err(format!("failed at {ms}"));
                }
                f.lock().unwrap().push(ms);
                Ok(())
            });
        }
        sleep(Duration::from_millis(40)).await; // the body outlives two failures
        f.lock().unwrap().push(40);
        Ok("body done")
    })
    .await;
    let errors = out.unwrap_err();
    assert_eq!(errors.all(), ["failed at 10", "failed at 30"]);
    assert_eq!(*finished.lock().unwrap(), [20, 40, 50]);
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn no_failure_returns_the_body_value() {
    let out = NurseryBuilder::new()
        .run_supervisor(|n| async move {
            n.spawn(async { Ok::<_, String>(()) });
            let v = n.spawn_returning(async { Ok(3) });
            v.join().await.map_err(|e| e.to_string())
        })
        .await;
    assert_eq!(out.unwrap(), 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failing_cleanup_counts_like_a_child_and_cancels_no_other_cleanup() {
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let out = supervisor(|n| async move {
        let r2 = r.clone();
        n.defer(async move {
            sleep(Duration::from_millis(5)).await; // would be dropped if the nursery cancelled
            r2.fetch_add(1, SeqCst);
            Ok(())
        });
        n.defer(async { Err("cleanup failed") });
        n.spawn(async { Err("child failed") });
        Ok(())
    })
    .await;
    assert_eq!(
        out.unwrap_err().into_vec(),
        ["child failed", "cleanup failed"]
    );
    assert_eq!(ran.load(SeqCst), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_body_failing_cancels_everything_and_keeps_earlier_errors() {
    let probe = DropProbe::new();
    let guard = probe.guard();
    let start = Instant::now();
    let out = supervisor(|n| async move {
        n.spawn(async { Err("child first") });
        n.spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(60)).await;
            Ok(())
        });
        sleep(Duration::from_millis(10)).await;
        Err::<(), _>("body failed")
    })
    .await;
    assert_eq!(out.unwrap_err().into_vec(), ["child first", "body failed"]);
    assert!(probe.dropped());
    assert_eq!(start.elapsed(), Duration::from_millis(10));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_through_a_handle_cancels_everything() {
    let start = Instant::now();
    let out = supervisor(|n| async move {
        let h = n.handle();
        n.spawn(async { Err("a child") });
        n.spawn(async move {
            sleep(Duration::from_millis(5)).await;
            h.fail("forced").unwrap();
            Ok(())
        });
        sleep(Duration::from_secs(60)).await;
        Ok(())
    })
    .await;
    assert_eq!(out.unwrap_err().into_vec(), ["a child", "forced"]);
    assert_eq!(start.elapsed(), Duration::from_millis(5));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panic_cancels_everything_and_is_raised_after_the_unwinding() {
    let probe = DropProbe::new();
    let guard = probe.guard();
    let seen_at_panic = Arc::new(AtomicUsize::new(usize::MAX));
    let out = AssertUnwindSafe(supervisor(|n| async move {
        n.spawn(async { Err("ordinary failure") });
        n.spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(60)).await;
            Ok(())
        });
        n.spawn(async {
            sleep(Duration::from_millis(1)).await;
            panic!("child panicked");
        });
        sleep(Duration::from_secs(60)).await;
        Ok::<_, &str>(())
    }))
    .catch_unwind()
    .await;
    seen_at_panic.store(probe.count(), SeqCst);
    let payload = out.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"child panicked"));
    assert_eq!(
        seen_at_panic.load(SeqCst),
        1,
        "the sibling unwound before the re-raise"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_started_child_failing_later_does_not_cancel() {
    let out = supervisor(|n| async move {
        let v = n
            .start(|s| async move {
                s.started(1);
                sleep(Duration::from_millis(5)).await;
                Err("server failed")
            })
            .await
            .map_err(|_| "start failed")?;
        sleep(Duration::from_millis(10)).await; // still running after the failure
        Ok(v)
    })
    .await;
    assert_eq!(out.unwrap_err().into_vec(), ["server failed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_failures_from_many_threads_are_all_collected() {
    for _ in 0..20 {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            supervisor(|n| async move {
                for i in 0..64usize {
                    let d = d.clone();
                    n.spawn(async move {
                        tokio::task::yield_now().await;
                        if i % 2 == 0 {
                            return Err(i);
                        }
                        tokio::task::yield_now().await;
                        d.fetch_add(1, SeqCst);
                        Ok(())
                    });
                }
                Ok(())
            }),
        )
        .await
        .expect("hang guard");
        let mut errors = out.unwrap_err().into_vec();
        errors.sort_unstable();
        assert_eq!(errors, (0..64).step_by(2).collect::<Vec<_>>());
        assert_eq!(done.load(SeqCst), 32);
    }
}
