//! Misuse of handles: used after the end, on a closed or cancelled nursery, and futures polled again.

mod support;

use std::future::{pending, poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use support::*;
use tokio::time::{sleep, Instant};
use tokio_nursery::{nursery, nursery_all, CancelScope, JoinError, StartError, Started};

/// A future that proves whether it was ever polled (`polled`) and when it was dropped (`probe`).
fn watched(probe: &DropProbe, polled: &Counter) -> impl Future<Output = Result<(), TestError>> {
    let (guard, polled) = (probe.guard(), polled.clone());
    async move {
        let _guard = guard;
        polled.hit();
        Ok(())
    }
}

/// Whether `tracing` reported `needle` at level ERROR or WARN (a debug line naming it is no report).
fn reported(cap: &TraceCapture, needle: &str) -> bool {
    cap.output()
        .lines()
        .any(|line| (line.contains(" ERROR ") || line.contains(" WARN ")) && line.contains(needle))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn defer_after_close() {
    let cap = TraceCapture::start();
    // A clone of the body's `Nursery` that outlived the body, and a handle.
    let n = nursery(|n| async move { Ok::<_, TestError>(n.clone()) })
        .await
        .unwrap();
    let h = n.handle();
    let (probe, polled) = (DropProbe::new(), Counter::new());

    let refused = h.defer(watched(&probe, &polled));
    assert!(refused.expect_err("defer on a closed nursery").is_closed());
    assert_eq!(probe.count(), 1, "the refused cleanup was dropped at once");

    n.defer(watched(&probe, &polled));
    assert_eq!(probe.count(), 2, "the refused cleanup was dropped at once");
    assert!(
        reported(&cap, "defer on a finished nursery: dropped"),
        "{}",
        cap.output()
    );

    sleep(secs(10)).await;
    assert_eq!(polled.get(), 0, "a refused cleanup was polled");
    assert!(h.cleanup_timeouts().is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_after_close_is_refused_and_reported() {
    let cap = TraceCapture::start();
    let h = nursery(|n| async move { Ok::<_, TestError>(n.handle()) })
        .await
        .unwrap();
    let refused = h.fail(TestError("after close"));
    assert!(refused.expect_err("fail on a closed nursery").is_closed());
    // Not returned by anyone, so not silently dropped either: the error is in the trace.
    assert!(
        reported(&cap, "fail() on a finished nursery") && reported(&cap, "test error after close"),
        "{}",
        cap.output()
    );

    // The same for a nursery that collects every error.
    let h = nursery_all(|n| async move { Ok::<_, TestError>(n.handle()) })
        .await
        .unwrap();
    assert!(h.fail(TestError("after close, all")).is_err());
    assert!(reported(&cap, "test error after close, all"));
    assert!(h.is_closed());
}

// The same contract for a nursery dropped before its first poll: it never takes an outcome, so an
// error accepted after that is one nobody will ever see.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn fail_on_a_nursery_dropped_before_its_first_poll() {
    let cap = TraceCapture::start();
    let (tx, rx) = std::sync::mpsc::channel();
    let fut = nursery(move |n| {
        tx.send(n.clone()).unwrap();
        async { Ok::<_, TestError>(()) }
    });
    drop(fut);
    let n = rx.recv().unwrap();
    let h = n.handle();
    assert!(h.is_closed());
    assert!(h.spawn(async { Ok(()) }).is_err());

    let mut violations = Vec::new();
    if h.fail(TestError("never polled")).is_ok() {
        violations.push("fail() returned Ok: the error is lost".to_string());
    }
    if !reported(&cap, "test error never polled") {
        violations.push("the refused error was not reported".to_string());
    }
    // `Nursery::defer` on the same dead nursery: the cleanup must be dropped and reported, not
    // kept where nothing will ever run it.
    let (probe, polled) = (DropProbe::new(), Counter::new());
    n.defer(watched(&probe, &polled));
    if probe.count() != 1 || !reported(&cap, "defer on a finished nursery") {
        violations.push("defer() kept a cleanup that will never run, without a report".into());
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_spawn_after_close_is_refused() {
    let n = nursery(|n| async move { Ok::<_, TestError>(n.clone()) })
        .await
        .unwrap();
    let (probe, polled) = (DropProbe::new(), Counter::new());

    let named = n.spawn_named("late", watched(&probe, &polled));
    assert!(named.is_finished());
    assert_eq!(named.name(), Some("late"));
    let borrowing = n.spawn_borrowing(watched(&probe, &polled));
    assert!(borrowing.is_finished());
    let borrowing_named = n.spawn_borrowing_named("late borrower", watched(&probe, &polled));
    assert!(borrowing_named.is_finished());
    assert_eq!(probe.count(), 3, "every refused future was dropped at once");

    let (guard, p) = (probe.guard(), polled.clone());
    let returning = n.spawn_returning(async move {
        let _guard = guard;
        p.hit();
        Ok(7u8)
    });
    assert!(returning.is_finished());
    let joined = returning.join().await;
    assert!(
        matches!(joined, Err(JoinError::Cancelled(_))),
        "join of a refused child: {joined:?}"
    );

    let blocking_ran = Counter::new();
    let b = blocking_ran.clone();
    let blocking = n.spawn_blocking(move || {
        b.hit();
        Ok(())
    });
    assert!(blocking.is_finished());

    let (guard, p) = (probe.guard(), polled.clone());
    let started = n
        .start(move |s: Started<()>| async move {
            let _guard = guard;
            p.hit();
            s.started(());
            Ok(())
        })
        .await;
    assert!(matches!(started, Err(StartError::Closed(_))));

    n.cancel(); // no effect, no panic
    sleep(secs(10)).await;
    assert_eq!(probe.count(), 5, "every refused future was dropped");
    assert_eq!(polled.get(), 0, "a refused future was polled");
    assert_eq!(blocking_ran.get(), 0, "a refused blocking closure ran");
    assert!(n.handle().is_closed());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn child_handles_after_the_nursery_ended() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let out = nursery(|n| async move {
        let finished = n.spawn(async { Ok(()) });
        let cancelled = n.spawn(pending());
        cancelled.cancel();
        let failed = n.spawn_named("failing", async {
            sleep(secs(1)).await;
            Err(TestError("child"))
        });
        let returning = n.spawn_returning(async { Ok(5u8) });
        tx.send((finished, cancelled, failed, returning)).unwrap();
        Ok(())
    })
    .await;
    assert_eq!(out, Err(TestError("child")));
    let (finished, cancelled, failed, returning) = rx.await.unwrap();
    let reasons = [&finished, &cancelled, &failed].map(|c| c.cancel_reason());
    for child in [&finished, &cancelled, &failed] {
        assert!(child.is_finished());
        child.cancel(); // no effect, no panic
    }
    assert_eq!(
        [&finished, &cancelled, &failed].map(|c| c.cancel_reason()),
        reasons,
        "cancel after the end changes no reason"
    );
    assert_eq!(reasons[0], None, "a finished child stays uncancelled");
    assert!(reasons[1].as_ref().unwrap().is_explicit());
    assert!(!finished.is_cancelled());

    // The value outlives the nursery; it is taken once.
    let again = returning.clone();
    assert_eq!(returning.join().await, Ok(5));
    assert_eq!(again.join().await, Err(JoinError::AlreadyJoined));
}

#[test]
fn cancel_handles_after_the_scope_ended() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let (completed, absorbed) = rt.block_on(async {
        let completed = CancelScope::new();
        let ch = completed.handle();
        assert_eq!(completed.run(async { 1 }).await, Some(1));
        let absorbed = CancelScope::new().with_timeout(secs(1));
        let ah = absorbed.handle();
        assert_eq!(absorbed.run(pending::<()>()).await, None);
        (ch, ah)
    });

    // From a plain OS thread, with the runtime gone.
    drop(rt);
    let (c, a) = (completed.clone(), absorbed.clone());
    std::thread::spawn(move || {
        for h in [&c, &a] {
            h.cancel();
            h.cancel_with("too late");
            h.set_deadline(Some(Instant::now()));
            h.set_deadline(None);
            h.set_shield(true);
            h.set_shield(false);
        }
    })
    .join()
    .expect("no handle operation panics");

    assert!(!completed.cancel_called() && !completed.is_cancelled());
    assert!(!completed.cancelled_caught());
    assert_eq!(completed.cancel_reason(), None);
    assert!(absorbed.cancelled_caught());
    assert!(
        absorbed.cancel_reason().unwrap().is_deadline(),
        "first reason kept"
    );
    assert!(completed.cancellation_token().is_cancelled() == completed.is_cancelled());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn start_dropped_by_foreign_code_before_the_signal() {
    let t0 = Instant::now();
    let probe = DropProbe::new();
    let guard = probe.guard();
    let out = nursery(|n| async move {
        let start = n.start(move |s: Started<()>| async move {
            let _guard = guard;
            sleep(secs(5)).await;
            s.started(());
            pending::<Result<(), TestError>>().await
        });
        let timed_out = tokio::time::timeout(ms(10), start).await;
        assert!(timed_out.is_err(), "the foreign timeout fires first");
        Ok("body")
    })
    .await;
    assert_eq!(out, Ok("body"), "the nursery is not cancelled");
    assert_eq!(probe.count(), 1, "the child was cancelled, not orphaned");
    assert_eq!(t0.elapsed(), ms(10));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn start_signal_used_after_the_nursery_cancelled_its_children() {
    let probe = DropProbe::new();
    let guard = probe.guard();
    let after_signal = Counter::new();
    let a = after_signal.clone();
    let out = nursery(|n| async move {
        let h = n.handle();
        n.spawn(async move {
            sleep(secs(1)).await;
            h.cancel().unwrap();
            Ok(())
        });
        let started = n
            .start(move |s: Started<u8>| async move {
                let _guard = guard;
                sleep(secs(2)).await;
                s.started(1);
                tokio::task::yield_now().await;
                a.hit();
                Ok(())
            })
            .await;
        assert!(
            matches!(started, Err(StartError::NurseryCancelled)),
            "{started:?}"
        );
        Ok::<_, TestError>("body")
    })
    .await;
    assert_eq!(out, Ok("body"));
    assert_eq!(probe.count(), 1);
    assert_eq!(
        after_signal.get(),
        0,
        "the signalled child joined a cancelled nursery"
    );
}

/// Polls `fut` once more, after it has completed.
async fn poll_again<F: Future>(fut: std::pin::Pin<&mut F>) {
    let mut fut = fut;
    poll_fn(|cx| {
        let _ = fut.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

// Documented in the `# Panics` sections of `Run` and `NurseryFuture`: the same contract as any
// `Future` (a completed `async fn` panics when resumed).
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[should_panic(expected = "polled after completion")]
async fn completed_scope_polled_again_panics() {
    let mut fut = pin!(CancelScope::new().run(async { 1 }));
    assert_eq!(fut.as_mut().await, Some(1));
    poll_again(fut).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
#[should_panic(expected = "polled after completion")]
async fn completed_nursery_polled_again_panics() {
    let mut fut = pin!(nursery(|_n| async { Ok::<_, TestError>(1) }));
    assert_eq!(fut.as_mut().await, Ok(1));
    poll_again(fut).await;
}
