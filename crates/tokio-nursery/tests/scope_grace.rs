//! Grace periods (DESIGN §4): a cancelled grace scope drains first, then cancels hard.

mod support;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{current_deadline, move_on_after, nursery, CancelScope};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn drain_lets_the_body_finish_with_working_timeouts_and_nurseries() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_grace(secs(5));
    let h = scope.handle();
    let h2 = h.clone();
    let out = scope
        .run(async move {
            h2.cancel_with("shutdown");
            h2.cancelled().await; // fires during the drain
            assert!(h2.cancel_called());
            // Still usable during the drain: a timeout and a nursery.
            assert_eq!(
                move_on_after(secs(1), std::future::pending::<()>()).await,
                None
            );
            let n = nursery(|n| async move {
                n.spawn(async {
                    tokio::time::sleep(secs(1)).await;
                    Ok::<_, TestError>(())
                });
                Ok(3)
            })
            .await;
            n.unwrap()
        })
        .await;
    assert_eq!(out, Some(3), "finished within the grace period");
    assert_eq!(t0.elapsed(), secs(2));
    assert!(h.cancel_called() && !h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grace_expiry_cancels_hard() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let scope = CancelScope::new().with_grace(secs(2));
    let h = scope.handle();
    let trigger = h.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        trigger.cancel();
    });
    let out = scope
        .run(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(3), "cancelled at 1 s, hard at 1 s + 2 s");
    assert_eq!(probe.count(), 1);
    assert!(h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn inherited_cancellation_drains_too() {
    let t0 = Instant::now();
    let outer = CancelScope::new();
    let oh = outer.handle();
    let seen = Log::new();
    let s = seen.clone();
    let out = outer
        .run(async move {
            let inner = CancelScope::new().with_grace(secs(4));
            let ih = inner.handle();
            inner
                .run(async move {
                    oh.cancel();
                    ih.cancelled().await;
                    s.push("drain observed");
                    tokio::time::sleep(secs(1)).await;
                    s.push("cleanup done");
                    std::future::pending::<()>().await
                })
                .await
        })
        .await;
    assert_eq!(out, None, "the outer scope absorbs after the inner drain");
    assert_eq!(seen.at("drain observed"), Some(secs(0)));
    assert_eq!(seen.at("cleanup done"), Some(secs(1)));
    assert_eq!(t0.elapsed(), secs(4));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_expired_enclosing_deadline_cancels_hard_at_once() {
    let t0 = Instant::now();
    let out = move_on_after(
        secs(1),
        CancelScope::new()
            .with_grace(secs(5))
            .run(std::future::pending::<()>()),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(
        t0.elapsed(),
        secs(1),
        "no drain past the enclosing deadline"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_drain_never_outlives_an_enclosing_deadline() {
    let t0 = Instant::now();
    let out = move_on_after(secs(3), async {
        let scope = CancelScope::new().with_grace(secs(10));
        let h = scope.handle();
        scope
            .run(async move {
                tokio::time::sleep(secs(1)).await;
                h.cancel();
                h.cancelled().await;
                assert_eq!(current_deadline(), Some(t0 + secs(3)));
                std::future::pending::<()>().await
            })
            .await
    })
    .await;
    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(3));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn current_deadline_during_the_drain_is_the_hard_deadline() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_grace(secs(2));
    let h = scope.handle();
    scope
        .run(async move {
            assert_eq!(current_deadline(), None);
            h.cancel();
            h.cancelled().await;
            assert_eq!(current_deadline(), Some(t0 + secs(2)));
        })
        .await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancelled_before_first_poll_never_polls_the_body() {
    let scope = CancelScope::new().with_grace(secs(5));
    scope.handle().cancel();
    let polled = Counter::new();
    let p = polled.clone();
    assert_eq!(scope.run(async move { p.hit() }).await, None);
    assert_eq!(polled.get(), 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_nested_grace_scope_goes_hard_with_its_draining_parent() {
    let t0 = Instant::now();
    let outer = CancelScope::new().with_grace(secs(2));
    let oh = outer.handle();
    let out = outer
        .run(async move {
            oh.cancel();
            // The outer drain does not reach inside: this scope is not cancelled until the outer
            // one cancels hard, and then it gets no drain of its own.
            CancelScope::new()
                .with_grace(secs(10))
                .run(std::future::pending::<()>())
                .await
        })
        .await;
    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(2));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn children_see_the_drain_only_through_the_handle() {
    let t0 = Instant::now();
    let scope = CancelScope::new().with_grace(secs(3));
    let h = scope.handle();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let out = scope
        .run(async move {
            let watcher = h.clone();
            nursery(|n| async move {
                n.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok(())
                });
                n.spawn(async move {
                    watcher.cancelled().await;
                    tokio::time::sleep(secs(1)).await; // still allowed during the drain
                    Err(TestError("stopped"))
                });
                tokio::time::sleep(secs(1)).await;
                h.cancel();
                std::future::pending::<()>().await;
                Ok(())
            })
            .await
        })
        .await;
    assert_eq!(out, Some(Err(TestError("stopped"))));
    assert_eq!(t0.elapsed(), secs(2));
    assert_eq!(probe.count(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grace_nursery_children_finish_on_their_own() {
    let t0 = Instant::now();
    let scope = CancelScope::new();
    let trigger = scope.handle();
    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        trigger.cancel();
    });
    let out = scope
        .run(
            tokio_nursery::NurseryBuilder::new()
                .grace(secs(5))
                .run(|n| async move {
                    let h = n.handle();
                    n.spawn(async move {
                        h.cancelled().await;
                        tokio::time::sleep(secs(2)).await; // flush
                        Ok::<_, TestError>(())
                    });
                    n.cancelled().await;
                    Ok("drained")
                }),
        )
        .await;
    assert_eq!(
        out,
        Some(Ok("drained")),
        "nothing inside was cancelled: the value comes back"
    );
    assert_eq!(t0.elapsed(), secs(3));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grace_nursery_is_cancelled_hard_when_the_grace_ends() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let cleanups = Counter::new();
    let c = cleanups.clone();
    let scope = CancelScope::new();
    let h = scope.handle();
    let out = scope
        .run(
            tokio_nursery::NurseryBuilder::new()
                .grace(secs(2))
                .run(|n| async move {
                    n.defer(async move {
                        c.hit();
                        Ok(())
                    });
                    n.spawn(async move {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        Ok::<_, TestError>(())
                    });
                    tokio::time::sleep(secs(1)).await;
                    h.cancel();
                    std::future::pending::<()>().await;
                    Ok(())
                }),
        )
        .await;
    assert_eq!(out, None);
    assert_eq!(t0.elapsed(), secs(3));
    assert_eq!(probe.count(), 1);
    assert_eq!(cleanups.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grace_nursery_under_an_expiring_deadline_gets_no_drain() {
    let t0 = Instant::now();
    let out = move_on_after(
        secs(1),
        tokio_nursery::NurseryBuilder::new()
            .grace(secs(5))
            .run(|n| async move {
                n.cancelled().await;
                tokio::time::sleep(secs(2)).await;
                Ok::<_, TestError>(())
            }),
    )
    .await;
    assert_eq!(out, None, "the enclosing bound expired: hard at once");
    assert_eq!(t0.elapsed(), secs(1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn failure_inside_a_grace_nursery_cancels_at_once() {
    let t0 = Instant::now();
    let out = tokio_nursery::NurseryBuilder::new()
        .grace(secs(10))
        .run(|n| async move {
            n.spawn(async {
                tokio::time::sleep(secs(1)).await;
                Err(TestError("fail"))
            });
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
    assert_eq!(out, Err(TestError("fail")));
    assert_eq!(t0.elapsed(), secs(1));
}
