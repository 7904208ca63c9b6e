//! Cancel scope deadlines (CONFORMANCE G, C32–C38): expiry, moving, zero, absent and relative.

mod support;

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{
    checkpoint, current_deadline, fail_after, fail_at, move_on_after, move_on_at, sleep,
    CancelReason, CancelScope,
};

/// A body that records being polled and holds a drop guard, then never finishes.
async fn watched_pending(polled: Counter, guard: DropGuard) -> u32 {
    let _guard = guard;
    polled.hit();
    pending::<u32>().await
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c32_deadline_not_reached() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_deadline(t0 + secs(1));
    let h = scope.handle();

    let out = scope
        .run(async {
            tokio::time::sleep(ms(500)).await;
            7
        })
        .await;
    assert_eq!(out, Some(7));
    assert_eq!(t0.elapsed(), ms(500));
    assert!(!h.cancel_called());

    // The deadline of a finished scope must not fire later.
    tokio::time::sleep(secs(1)).await;
    assert_eq!(t0.elapsed(), ms(1500));
    assert!(!h.cancel_called());
    assert!(!h.cancelled_caught());
    assert!(!h.is_cancelled());
    assert_eq!(h.cancel_reason(), None);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c33_expiry_while_blocked() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_deadline(t0 + secs(1));
    let h = scope.handle();
    let (polled, probe) = (Counter::new(), DropProbe::new());

    let out = scope
        .run(watched_pending(polled.clone(), probe.guard()))
        .await;
    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(1));
    assert_eq!(polled.get(), 1);
    assert_eq!(probe.count(), 1);
    assert!(h.cancel_called());
    assert!(h.cancelled_caught());
    assert_eq!(h.cancel_reason(), Some(CancelReason::Deadline));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c34_deadline_moved_into_the_past_from_another_task() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_deadline(t0 + secs(10));
    let h = scope.handle();
    let (probe, after) = (DropProbe::new(), Counter::new());

    let mover = tokio::spawn({
        let h = h.clone();
        async move {
            tokio::time::sleep(secs(5)).await;
            h.set_deadline(Some(t0 + secs(1)));
        }
    });
    let out = scope
        .run({
            let (guard, after) = (probe.guard(), after.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(secs(3600)).await;
                after.hit();
            }
        })
        .await;
    mover.await.unwrap();

    assert_eq!(out, None);
    assert_eq!(
        t0.elapsed(),
        secs(5),
        "not dropped at the moment of the move"
    );
    assert_eq!(after.get(), 0);
    assert_eq!(probe.count(), 1);
    assert!(h.cancel_called() && h.cancelled_caught());
    assert_eq!(h.cancel_reason(), Some(CancelReason::Deadline));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c34_deadline_moved_into_the_past_from_the_body() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_deadline(t0 + secs(10));
    let h = scope.handle();
    let (probe, after) = (DropProbe::new(), Counter::new());

    let out = scope
        .run({
            let (h, guard, after) = (h.clone(), probe.guard(), after.clone());
            async move {
                let _guard = guard;
                tokio::time::sleep(secs(5)).await;
                h.set_deadline(Some(t0 + secs(1)));
                tokio::time::sleep(secs(3600)).await;
                after.hit();
            }
        })
        .await;

    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(5));
    assert_eq!(after.get(), 0);
    assert_eq!(probe.count(), 1);
    assert!(h.cancel_called() && h.cancelled_caught());
    assert_eq!(h.cancel_reason(), Some(CancelReason::Deadline));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c34_fail_after_deadline_moved_later() {
    // `fail_after` exposes no handle, so this is the scope it is built on (`fail_after(d, f)` is
    // a scope with timeout `d` whose `None` becomes `Err(Elapsed)`), with its deadline moved.
    let t0 = Instant::now();
    let scope = CancelScope::new().with_timeout(ms(100));
    let h = scope.handle();

    let out = scope
        .run({
            let h = h.clone();
            async move {
                let fixed = h
                    .deadline()
                    .expect("the timeout is fixed at the first poll");
                assert_eq!(fixed, t0 + ms(100));
                h.set_deadline(Some(fixed + ms(300)));
                assert_eq!(current_deadline(), Some(t0 + ms(400)));
                tokio::time::sleep(ms(200)).await;
                Ok::<_, TestError>("slept")
            }
        })
        .await;

    assert_eq!(out, Some(Ok("slept")), "would have been Err(Elapsed)");
    assert_eq!(t0.elapsed(), ms(200));
    assert!(!h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c34_deadline_removed_never_fires() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_deadline(t0 + secs(1));
    let h = scope.handle();

    let out = scope
        .run({
            let h = h.clone();
            async move {
                h.set_deadline(None);
                assert_eq!(current_deadline(), None);
                tokio::time::sleep(secs(10)).await;
                sleep(secs(10)).await;
                "done"
            }
        })
        .await;

    assert_eq!(out, Some("done"));
    assert_eq!(t0.elapsed(), secs(20));
    assert_eq!(h.deadline(), None);
    assert!(!h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c35_move_on_after_zero() {
    let t0 = Instant::now();
    let (polled, probe) = (Counter::new(), DropProbe::new());
    let out = move_on_after(
        Duration::ZERO,
        watched_pending(polled.clone(), probe.guard()),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(polled.get(), 0, "the body was polled");
    assert_eq!(probe.count(), 1);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c35_move_on_at_past() {
    let past = Instant::now();
    tokio::time::advance(secs(1)).await;
    let t1 = Instant::now();
    let (polled, probe) = (Counter::new(), DropProbe::new());
    let out = move_on_at(past, watched_pending(polled.clone(), probe.guard())).await;
    assert_eq!(out, None);
    assert_eq!(polled.get(), 0, "the body was polled");
    assert_eq!(probe.count(), 1);
    assert_eq!(t1.elapsed(), Duration::ZERO);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c35_fail_after_zero() {
    let t0 = Instant::now();
    let (polled, probe) = (Counter::new(), DropProbe::new());
    let out = fail_after(
        Duration::ZERO,
        watched_pending(polled.clone(), probe.guard()),
    )
    .await;
    assert!(out.expect_err("zero timeout").is_timeout());
    assert_eq!(polled.get(), 0, "the body was polled");
    assert_eq!(probe.count(), 1);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c35_fail_at_past() {
    let past = Instant::now();
    tokio::time::advance(secs(1)).await;
    let t1 = Instant::now();
    let (polled, probe) = (Counter::new(), DropProbe::new());
    let out = fail_at(past, watched_pending(polled.clone(), probe.guard())).await;
    assert!(out.expect_err("past deadline").is_timeout());
    assert_eq!(polled.get(), 0, "the body was polled");
    assert_eq!(probe.count(), 1);
    assert_eq!(t1.elapsed(), Duration::ZERO);
}

/// About a thousand years: far past anything tokio's timer wheel can represent.
fn far_future() -> Instant {
    Instant::now() + secs(1000 * 365 * 24 * 60 * 60)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c36_move_on_after_duration_max() {
    let t0 = Instant::now();
    let out = move_on_after(Duration::MAX, async {
        let seen = current_deadline();
        tokio::time::sleep(secs(1)).await;
        (seen, 5)
    })
    .await;
    assert_eq!(out, Some((None, 5)));
    assert_eq!(t0.elapsed(), secs(1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c36_fail_after_duration_max() {
    let out = fail_after(Duration::MAX, async {
        let seen = current_deadline();
        tokio::time::sleep(secs(1)).await;
        (seen, 6)
    })
    .await;
    assert_eq!(out, Ok((None, 6)));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c36_fail_at_far_future() {
    let t0 = Instant::now();
    let far = far_future();
    let out = fail_at(far, async {
        let seen = current_deadline();
        tokio::time::sleep(secs(1)).await;
        sleep(secs(1)).await;
        (seen, 7)
    })
    .await;
    assert_eq!(out, Ok((Some(far), 7)));
    assert_eq!(t0.elapsed(), secs(2));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c36_deadline_none() {
    let scope = CancelScope::new();
    let h = scope.handle();
    h.set_deadline(None);
    let out = scope
        .run(async {
            let seen = current_deadline();
            tokio::time::sleep(secs(1)).await;
            (seen, 8)
        })
        .await;
    assert_eq!(out, Some((None, 8)));
    assert!(!h.cancel_called());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c37_relative_deadline_fixed_at_first_poll() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_timeout(secs(5));
    let h = scope.handle();
    let seen = Arc::new(Mutex::new(None));
    let run = scope.run({
        let seen = seen.clone();
        async move {
            *seen.lock().unwrap() = Some(current_deadline());
            pending::<()>().await
        }
    });

    tokio::time::sleep(secs(3)).await;
    assert_eq!(run.await, None);
    assert_eq!(t0.elapsed(), secs(8));
    assert_eq!(*seen.lock().unwrap(), Some(Some(t0 + secs(8))));
    assert!(h.cancel_called() && h.cancelled_caught());
    assert_eq!(h.cancel_reason(), Some(CancelReason::Deadline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c38_blocking_body_without_await_returns_its_value() {
    let t0 = std::time::Instant::now();
    let out = fail_after(ms(10), async {
        std::thread::sleep(ms(50));
        "v"
    })
    .await;
    let elapsed = t0.elapsed();
    assert_eq!(out, Ok("v"), "a completed body is returned, not discarded");
    assert!(elapsed >= ms(50) && elapsed < secs(5), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c38_blocking_body_then_yield_times_out() {
    let after = Counter::new();
    let t0 = std::time::Instant::now();
    let out = fail_after(ms(10), {
        let after = after.clone();
        async move {
            std::thread::sleep(ms(50));
            tokio::task::yield_now().await;
            after.hit();
            "v"
        }
    })
    .await;
    let elapsed = t0.elapsed();
    assert!(out
        .expect_err("deadline passed before the await")
        .is_timeout());
    assert_eq!(after.get(), 0, "code after the await ran");
    assert!(elapsed >= ms(50) && elapsed < secs(5), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c38_blocking_body_then_checkpoint_times_out() {
    let after = Counter::new();
    let out = fail_after(ms(10), {
        let after = after.clone();
        async move {
            std::thread::sleep(ms(50));
            checkpoint().await;
            after.hit();
            "v"
        }
    })
    .await;
    assert!(out
        .expect_err("deadline passed before the await")
        .is_timeout());
    assert_eq!(after.get(), 0, "code after the await ran");
}
