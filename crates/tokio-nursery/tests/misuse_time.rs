//! Bad time inputs: `Duration::MAX`, far-future and past deadlines, zero durations everywhere.

mod support;

use std::future::pending;
use std::time::Duration;

use support::*;
use tokio::time::Instant;
use tokio_nursery::{
    current_deadline, move_on_after, move_on_at, nursery, CancelScope, NurseryBuilder,
};

/// About a thousand years: far past anything tokio's timer wheel can represent.
const MILLENNIUM: Duration = Duration::from_secs(1000 * 365 * 24 * 60 * 60);

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn duration_max_as_every_duration() {
    let t0 = Instant::now();
    let ran = Counter::new();
    let r = ran.clone();
    let out = NurseryBuilder::new()
        .cleanup_timeout(Duration::MAX)
        .grace(Duration::MAX)
        .run(|n| async move {
            // "Unbounded": a slow cleanup runs to its end.
            n.defer(async move {
                tokio::time::sleep(secs(3600)).await;
                r.hit();
                Ok(())
            });
            let seen = CancelScope::new()
                .with_timeout(Duration::MAX)
                .with_grace(Duration::MAX)
                .run(async { current_deadline() })
                .await;
            assert_eq!(seen, Some(None), "Duration::MAX means no deadline");
            let slept = move_on_after(secs(1), tokio_nursery::sleep(Duration::MAX)).await;
            assert_eq!(slept, None, "sleep(Duration::MAX) sleeps until cancelled");
            Ok::<_, TestError>(5)
        })
        .await;
    assert_eq!(out, Ok(5));
    assert_eq!(ran.get(), 1);
    assert_eq!(t0.elapsed(), secs(1) + secs(3600));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grace_duration_max_drains_until_the_body_is_done() {
    let t0 = Instant::now();
    let outer = CancelScope::new();
    let shutdown = outer.handle();
    tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        shutdown.cancel_with("shutdown");
    });
    let out = outer
        .run(
            NurseryBuilder::new()
                .grace(Duration::MAX)
                .run(|n| async move {
                    n.cancelled().await;
                    tokio::time::sleep(secs(10)).await;
                    Ok::<_, TestError>("drained")
                }),
        )
        .await;
    assert_eq!(out, Some(Ok("drained")));
    assert_eq!(t0.elapsed(), secs(11));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn far_future_deadlines_everywhere() {
    let t0 = Instant::now();
    let far = t0 + MILLENNIUM;
    let ran = Counter::new();
    let r = ran.clone();
    let scope = CancelScope::new().with_deadline(far);
    let h = scope.handle();
    let out = scope
        .run(async move {
            assert_eq!(current_deadline(), Some(far));
            // Moved earlier, then back out to the far future, while running.
            h.set_deadline(Some(Instant::now() + secs(1)));
            h.set_deadline(Some(far));
            NurseryBuilder::new()
                .cleanup_timeout(MILLENNIUM)
                .run(|n| async move {
                    n.defer(async move {
                        tokio::time::sleep(secs(60)).await;
                        r.hit();
                        Ok(())
                    });
                    let inner = move_on_move_far().await;
                    Ok::<_, TestError>(inner)
                })
                .await
        })
        .await;
    assert_eq!(out, Some(Ok(Some(far + MILLENNIUM))));
    assert_eq!(ran.get(), 1);
    assert_eq!(t0.elapsed(), secs(10) + secs(60));
}

/// A scope two millennia out inside a scope one millennium out: sleeps 10 s and reports its own
/// deadline (the effective one is the enclosing, earlier one).
async fn move_on_move_far() -> Option<Instant> {
    let scope = CancelScope::new().with_timeout(2 * MILLENNIUM);
    let h = scope.handle();
    scope
        .run(async move {
            tokio::time::sleep(secs(10)).await;
            h.deadline()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn deadline_moved_into_the_past_from_a_plain_thread() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let scope = CancelScope::new();
    let h = scope.handle();
    let past = t0;
    tokio::time::advance(secs(1)).await;
    let t1 = Instant::now();
    // Outside the runtime the call cannot read its clock: the scope's next poll, which the call
    // triggers, sees the past deadline.
    let mover = std::thread::spawn(move || h.set_deadline(Some(past)));
    let out = scope
        .run(async move {
            let _guard = guard;
            pending::<()>().await
        })
        .await;
    mover.join().unwrap();
    assert_eq!(out, None);
    assert!(probe.dropped());
    assert_eq!(t1.elapsed(), Duration::ZERO, "cancelled at once");
}

// DESIGN §2: "a scope returns only after every nested child has finished and every registered
// cleanup has run". The nursery's body closure runs when the nursery future is built, so a
// cleanup it registers (and a child it spawns) exists before the first poll; a scope whose
// deadline has already passed drops the nursery unpolled (rule 3).
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn past_deadline_scope_waits_for_work_registered_at_construction() {
    let log = Log::new();
    let child = DropProbe::new();
    let guard = child.guard();
    let past = Instant::now();
    tokio::time::advance(secs(1)).await;
    let t1 = Instant::now();
    let l = log.clone();
    let out = move_on_at(
        past,
        nursery(move |n| {
            n.spawn(async move {
                let _guard = guard;
                pending::<Result<(), TestError>>().await
            });
            n.defer(async move {
                tokio::time::sleep(secs(1)).await;
                l.push("cleanup ran");
                Ok(())
            });
            async { Ok::<_, TestError>(()) }
        }),
    )
    .await;
    log.push("scope returned");
    assert_eq!(
        out, None,
        "the past deadline wins; the body is never polled"
    );
    assert!(
        child.dropped(),
        "the child spawned at construction outlived the scope"
    );
    assert_eq!(
        log.names(),
        ["cleanup ran", "scope returned"],
        "the cleanup registered at construction outlived the scope"
    );
    assert_eq!(t1.elapsed(), secs(1));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn zero_durations_everywhere() {
    let t0 = Instant::now();
    let cap = TraceCapture::start();

    // A zero cleanup timeout leaves the cleanup no time: it never runs, and that is reported.
    let polled = Counter::new();
    let p = polled.clone();
    let (value, handle) = NurseryBuilder::new()
        .cleanup_timeout(Duration::ZERO)
        .run(|n| async move {
            n.defer(async move {
                p.hit();
                Ok(())
            });
            Ok::<_, TestError>((1, n.handle()))
        })
        .await
        .unwrap();
    assert_eq!(value, 1);
    assert_eq!(polled.get(), 0);
    assert_eq!(handle.cleanup_timeouts().len(), 1);
    assert_eq!(handle.cleanup_timeouts()[0].timeout(), Duration::ZERO);
    assert!(
        cap.contains("did not finish within 0ns"),
        "{}",
        cap.output()
    );

    // A zero scope timeout: cancelled before it starts, the body is never polled.
    let body = Counter::new();
    let b = body.clone();
    let out = CancelScope::new()
        .with_timeout(Duration::ZERO)
        .run(async move { b.hit() })
        .await;
    assert_eq!(out, None);
    assert_eq!(body.get(), 0);

    // A zero grace period: an outside cancel is hard at once.
    let outer = CancelScope::new();
    let cancel = outer.handle();
    let dropped = DropProbe::new();
    let guard = dropped.guard();
    let out = outer
        .run(
            NurseryBuilder::new()
                .grace(Duration::ZERO)
                .run(|_n| async move {
                    let _guard = guard;
                    cancel.cancel();
                    tokio::time::sleep(secs(1)).await;
                    Ok::<_, TestError>(())
                }),
        )
        .await;
    assert_eq!(out, None);
    assert!(dropped.dropped());

    // A zero sleep returns at once.
    tokio_nursery::sleep(Duration::ZERO).await;
    assert_eq!(t0.elapsed(), Duration::ZERO, "nothing above waited");
}
