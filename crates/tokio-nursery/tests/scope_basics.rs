//! Cancel scope basics (CONFORMANCE F, C25–C31): cancel timing, reasons, early and remote cancels.

mod support;

use std::future::pending;
use std::sync::mpsc;
use std::time::Duration;

use support::*;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_nursery::{
    checkpoint, fail_after, move_on_after, sleep, CancelReason, CancelScope, Elapsed, Run,
};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c25_cancel_is_not_a_suspension() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let probe = DropProbe::new();
    let sync_after_cancel = Counter::new();
    let after_await = Counter::new();
    let t0 = Instant::now();

    let out = scope
        .run({
            let (h, probe, guard) = (h.clone(), probe.clone(), probe.guard());
            let (sync_after_cancel, after_await) = (sync_after_cancel.clone(), after_await.clone());
            async move {
                let _guard = guard;
                h.cancel();
                h.cancel();
                // Still alive: `cancel()` returned without suspending or dropping anything.
                if probe.count() == 0 {
                    sync_after_cancel.hit();
                }
                // `yield_now` would be ready on the very next poll; the scope must not give it one.
                tokio::task::yield_now().await;
                after_await.hit();
            }
        })
        .await;

    assert_eq!(out, None);
    assert_eq!(sync_after_cancel.get(), 1);
    assert_eq!(after_await.get(), 0, "code after the await ran");
    assert_eq!(probe.count(), 1, "body was not dropped");
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(h.cancel_called());
    assert!(h.cancelled_caught());
    let reason = h.cancel_reason();
    assert_eq!(reason, Some(CancelReason::Explicit { message: None }));

    h.cancel();
    assert!(h.cancel_called());
    assert!(h.cancelled_caught());
    assert_eq!(
        h.cancel_reason(),
        reason,
        "a second cancel() changed the reason"
    );
    assert_eq!(probe.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c26_cancel_without_a_following_await() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let out = scope
        .run({
            let h = h.clone();
            async move {
                h.cancel();
                42
            }
        })
        .await;
    assert_eq!(out, Some(42));
    assert!(h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c26_cancel_after_the_scope_finished_has_no_effect() {
    let scope = CancelScope::new();
    let h = scope.handle();
    assert_eq!(scope.run(async { 1 }).await, Some(1));

    h.cancel();
    h.cancel_with("too late");
    assert!(!h.cancel_called());
    assert!(!h.cancelled_caught());
    assert!(!h.is_cancelled());
    assert_eq!(h.cancel_reason(), None);
}

/// A timeout that fired, then ordinary awaits and a fresh `fail_after` in the same context.
async fn after_a_fired_timeout() {
    let t0 = Instant::now();
    assert_eq!(
        move_on_after(ms(100), tokio::time::sleep(secs(1))).await,
        None
    );
    assert_eq!(t0.elapsed(), ms(100));

    // The library's cancellation-aware awaits would hang here if the cancellation were stale.
    tokio::time::sleep(ms(50)).await;
    sleep(ms(50)).await;
    checkpoint().await;
    assert_eq!(t0.elapsed(), ms(200));

    let t1 = Instant::now();
    let out = fail_after(ms(100), tokio::time::sleep(ms(500))).await;
    assert!(out
        .expect_err("the sleep outlives the timeout")
        .is_timeout());
    assert_eq!(t1.elapsed(), ms(100), "timed out at once or late");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c27_no_stale_cancellation_at_task_root() {
    after_a_fired_timeout().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c27_no_stale_cancellation_inside_an_enclosing_scope() {
    let outer = CancelScope::new();
    let h = outer.handle();
    assert_eq!(outer.run(after_a_fired_timeout()).await, Some(()));
    assert!(!h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c28_explicit_reason_carries_its_message() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let out = scope
        .run({
            let h = h.clone();
            async move {
                h.cancel_with("hello");
                pending::<()>().await
            }
        })
        .await;
    assert_eq!(out, None);

    let reason = h.cancel_reason().expect("a cancelled scope has a reason");
    assert!(reason.is_explicit());
    assert!(!reason.is_inherited());
    assert_eq!(reason.message(), Some("hello"));
    assert!(matches!(&reason, CancelReason::Explicit { message: Some(m) } if m == "hello"));
    assert_eq!(reason.to_string(), "cancelled: hello");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c28_expired_deadline_reason_is_deadline() {
    let scope = CancelScope::new().with_timeout(secs(1));
    let h = scope.handle();
    assert_eq!(scope.run(pending::<()>()).await, None);

    let reason = h.cancel_reason().expect("a cancelled scope has a reason");
    assert_eq!(reason, CancelReason::Deadline);
    assert!(reason.is_deadline());
    assert!(!reason.is_explicit());
    assert_eq!(reason.message(), None);
    assert_eq!(reason.to_string(), "cancelled: deadline exceeded");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c29_cancelled_before_it_runs() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let polled = Counter::new();
    let probe = DropProbe::new();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let t0 = Instant::now();

    let task_b = tokio::spawn({
        let (polled, guard) = (polled.clone(), probe.guard());
        async move {
            go_rx.await.expect("task A signals");
            scope
                .run(fail_after(secs(1), async move {
                    let _guard = guard;
                    polled.hit();
                    pending::<()>().await
                }))
                .await
        }
    });
    let task_a = tokio::spawn({
        let h = h.clone();
        async move {
            h.cancel();
            go_tx.send(()).expect("task B waits");
        }
    });

    task_a.await.unwrap();
    let out: Option<Result<(), Elapsed>> = task_b.await.unwrap();
    assert_eq!(
        out, None,
        "expected None, not Some(Err(Elapsed)) or a value"
    );
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(polled.get(), 0, "the body was polled");
    assert_eq!(probe.count(), 1, "the unpolled body was not dropped");
    assert!(h.cancel_called());
    assert!(h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c30_cancel_from_another_task() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let probe = DropProbe::new();
    let after_await = Counter::new();
    let (entered_tx, entered_rx) = oneshot::channel::<()>();
    let t0 = Instant::now();

    let canceller = tokio::spawn({
        let h = h.clone();
        async move {
            entered_rx.await.expect("the body signals");
            h.cancel();
        }
    });
    let out = scope
        .run({
            let (guard, after_await) = (probe.guard(), after_await.clone());
            async move {
                let _guard = guard;
                entered_tx.send(()).unwrap();
                // A long sleep: a missed cancel shows up as the clock jumping an hour.
                tokio::time::sleep(secs(3600)).await;
                after_await.hit();
            }
        })
        .await;
    canceller.await.unwrap();

    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), Duration::ZERO, "not promptly");
    assert_eq!(after_await.get(), 0);
    assert_eq!(probe.count(), 1);
    assert!(h.cancel_called());
    assert!(h.cancelled_caught());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c30_cancel_from_a_plain_os_thread() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let probe = DropProbe::new();
    let after_await = Counter::new();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();

    let thread = std::thread::spawn({
        let h = h.clone();
        move || {
            entered_rx.recv().expect("the body signals");
            h.cancel();
        }
    });
    let t0 = std::time::Instant::now();
    let out = scope
        .run({
            let (guard, after_await) = (probe.guard(), after_await.clone());
            async move {
                let _guard = guard;
                entered_tx.send(()).unwrap();
                tokio::time::sleep(secs(60)).await;
                after_await.hit();
            }
        })
        .await;
    let elapsed = t0.elapsed();
    thread.join().unwrap();

    assert_eq!(out, None);
    assert!(
        elapsed < secs(5),
        "cancel from an OS thread took {elapsed:?}"
    );
    assert_eq!(after_await.get(), 0);
    assert_eq!(probe.count(), 1);
    assert!(h.cancel_called());
    assert!(h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c31_scope_runs_once() {
    // That a second `run` on the same scope does not compile is checked by the `compile_fail`
    // doctest on `CancelScope` (src/scope.rs). What can be checked here: `run` has a by-value
    // receiver (this coercion only compiles if it takes `self`, not `&self`/`&mut self`), so
    // every call moves the scope in, and the handle is what survives it.
    let run: fn(CancelScope, std::future::Ready<u8>) -> Run<std::future::Ready<u8>> =
        CancelScope::run;

    let scope = CancelScope::new();
    let h = scope.handle();
    assert_eq!(run(scope, std::future::ready(3)).await, Some(3));
    // The consumed scope is finished for good: its handle can no longer cancel it.
    h.cancel();
    assert!(!h.cancel_called());
}
