//! Nested cancel scopes (CONFORMANCE H, C39–C42): effective deadlines and which scope absorbs.

mod support;

use std::future::pending;
use std::sync::{Arc, Mutex};

use support::*;
use tokio::time::Instant;
use tokio_nursery::{checkpoint, current_deadline, fail_after, CancelScope, Elapsed};

/// `current_deadline()` is `Some(d)` with `d` not in the future.
fn deadline_passed() -> bool {
    current_deadline().is_some_and(|d| d <= Instant::now())
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c39_effective_deadline_algebra() {
    let t0 = Instant::now();
    let s1 = CancelScope::new().with_deadline(t0 + secs(5));
    let h1 = s1.handle();
    let s2 = CancelScope::new().with_deadline(t0 + secs(10));
    let h2 = s2.handle();

    let out = s1
        .run(async {
            let inner = s2
                .run(async {
                    assert_eq!(current_deadline(), Some(t0 + secs(5)), "start");
                    h2.set_deadline(Some(t0 + secs(3)));
                    assert_eq!(current_deadline(), Some(t0 + secs(3)), "s2 -> 3 s");
                    checkpoint().await;
                    h2.set_deadline(Some(t0 + secs(10)));
                    assert_eq!(current_deadline(), Some(t0 + secs(5)), "s2 -> 10 s");
                    h2.set_shield(true);
                    assert_eq!(current_deadline(), Some(t0 + secs(10)), "shield s2");
                    checkpoint().await;
                    h2.set_shield(false);
                    assert_eq!(current_deadline(), Some(t0 + secs(5)), "unshield s2");
                    // No suspension between cancelling s1 and re-shielding s2: s2 never starts
                    // unwinding, so the shield takes it out of the cancellation again.
                    h1.cancel();
                    assert!(deadline_passed(), "cancel s1: {:?}", current_deadline());
                    h2.set_shield(true);
                    assert_eq!(current_deadline(), Some(t0 + secs(10)), "shield s2 again");
                    "s2 done"
                })
                .await;
            assert!(
                deadline_passed(),
                "in s1 after s2: {:?}",
                current_deadline()
            );
            inner
        })
        .await;

    assert_eq!(current_deadline(), None, "after s1");
    assert_eq!(out, Some(Some("s2 done")));
    assert_eq!(t0.elapsed(), std::time::Duration::ZERO);
    assert!(h1.cancel_called());
    assert!(!h1.cancelled_caught(), "s1's body completed: rule 1");
    assert!(!h2.cancel_called() && !h2.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c40_outer_deadline_wins() {
    let t0 = Instant::now();
    let outer = CancelScope::new().with_timeout(secs(1));
    let ho = outer.handle();
    let inner = CancelScope::new().with_timeout(secs(10));
    let hi = inner.handle();
    let (after_inner, probe) = (Counter::new(), DropProbe::new());

    let out = outer
        .run({
            let (after_inner, guard) = (after_inner.clone(), probe.guard());
            async move {
                let r = inner
                    .run(async move {
                        let _guard = guard;
                        pending::<()>().await
                    })
                    .await;
                after_inner.hit();
                r
            }
        })
        .await;

    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(1));
    assert_eq!(after_inner.get(), 0, "code after the inner scope ran");
    assert_eq!(probe.count(), 1);
    assert!(!hi.cancel_called());
    assert!(!hi.cancelled_caught());
    assert!(ho.cancel_called());
    assert!(ho.cancelled_caught());
    let inherited = hi
        .cancel_reason()
        .expect("the inner scope was cancelled too");
    assert!(inherited.is_inherited() && inherited.is_deadline());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c41_two_cancelled_at_once() {
    let (s1, s2, s3) = (CancelScope::new(), CancelScope::new(), CancelScope::new());
    let (h1, h2, h3) = (s1.handle(), s2.handle(), s3.handle());
    let (after_s3, after_s2, probe) = (Counter::new(), Counter::new(), DropProbe::new());

    let out = s1
        .run(async {
            let r2 = s2
                .run(async {
                    let r3 = s3
                        .run(async {
                            let _guard = probe.guard();
                            h3.cancel();
                            h2.cancel();
                            pending::<()>().await
                        })
                        .await;
                    after_s3.hit();
                    r3
                })
                .await;
            after_s2.hit();
            r2
        })
        .await;

    assert_eq!(out, Some(None), "s2 absorbs, s1 completes");
    assert_eq!(probe.count(), 1);
    assert_eq!(after_s3.get(), 0, "s3 returned although s2 absorbs");
    assert_eq!(after_s2.get(), 1);
    assert!(h2.cancel_called() && h2.cancelled_caught());
    assert!(h3.cancel_called());
    assert!(!h3.cancelled_caught());
    assert!(!h1.cancel_called() && !h1.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c42_outer_cancel_passes_through_inner_fail_after() {
    let t0 = Instant::now();
    let outer = CancelScope::new();
    let h = outer.handle();
    let produced: Arc<Mutex<Vec<Result<(), Elapsed>>>> = Arc::default();
    let (probe, after_sleep) = (DropProbe::new(), Counter::new());

    let canceller = tokio::spawn({
        let h = h.clone();
        async move {
            tokio::time::sleep(ms(500)).await;
            h.cancel();
        }
    });
    let out = outer
        .run({
            let (produced, guard, after_sleep) =
                (produced.clone(), probe.guard(), after_sleep.clone());
            async move {
                let r = fail_after(secs(1), async move {
                    let _guard = guard;
                    tokio::time::sleep(secs(2)).await;
                    after_sleep.hit();
                })
                .await;
                produced.lock().unwrap().push(r);
            }
        })
        .await;
    canceller.await.unwrap();

    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), ms(500));
    assert_eq!(probe.count(), 1);
    assert_eq!(after_sleep.get(), 0);
    assert!(h.cancelled_caught());

    // Past both the inner timeout and the inner sleep: nothing surfaces later either.
    tokio::time::sleep(secs(3)).await;
    assert!(
        produced.lock().unwrap().is_empty(),
        "fail_after produced {:?}",
        produced.lock().unwrap()
    );
}
