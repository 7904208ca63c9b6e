//! Conformance M (C63–C66): the edge rules of DESIGN.md §2 (rules 1–4) and aware library awaits.

mod support;

use std::future::{pending, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use support::*;
use tokio::time::Instant;
use tokio_nursery::{checkpoint, fail_after, move_on_after, nursery, CancelScope};

/// Counts the polls its inner future receives at or after `from`: shows that a future was still
/// being polled at a time when it could have resumed.
struct PollSpy<F> {
    inner: Pin<Box<F>>,
    from: Instant,
    polls: Counter,
}

impl<F> PollSpy<F> {
    fn new(inner: F, from: Instant, polls: &Counter) -> Self {
        PollSpy {
            inner: Box::pin(inner),
            from,
            polls: polls.clone(),
        }
    }
}

impl<F: Future> Future for PollSpy<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if Instant::now() >= self.from {
            self.polls.hit();
        }
        self.inner.as_mut().poll(cx)
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c63_outside_cancel_after_body_returned() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let child = DropProbe::new();
    let (child_done, after_nursery) = (Counter::new(), Counter::new());
    let start = Instant::now();
    let canceller = {
        let h = h.clone();
        tokio::spawn(async move {
            tokio::time::sleep(secs(1)).await;
            h.cancel();
        })
    };

    let (probe, done, after) = (child.clone(), child_done.clone(), after_nursery.clone());
    let out = scope
        .run(async move {
            let r = nursery(|n| async move {
                n.spawn(async move {
                    let _guard = probe.guard();
                    tokio::time::sleep(secs(10)).await;
                    done.hit();
                    Ok(())
                });
                Ok::<_, TestError>(5)
            })
            .await;
            after.hit();
            r
        })
        .await;
    canceller.await.unwrap();

    // Rule 2: the child was actually cancelled, so the nursery never completes with `Ok(5)`.
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), secs(1));
    assert!(child.dropped());
    assert_eq!(child_done.get(), 0);
    assert_eq!(after_nursery.get(), 0);
    assert!(h.cancel_called() && h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c63_child_already_finished_cancel_during_cleanup() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let child_done = Counter::new();
    let start = Instant::now();
    let canceller = {
        let h = h.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(1500)).await;
            h.cancel();
        })
    };

    let done = child_done.clone();
    let out = scope
        .run(nursery(|n| async move {
            // The cleanup keeps the nursery open past the cancel, after everything else ended.
            n.defer(async {
                tokio::time::sleep(secs(1)).await;
                Ok(())
            });
            n.spawn(async move {
                tokio::time::sleep(secs(1)).await;
                done.hit();
                Ok(())
            });
            Ok::<_, TestError>(5)
        }))
        .await;
    canceller.await.unwrap();

    // Rule 2: nothing inside was actually cancelled, so the body's value comes back.
    assert_eq!(out, Some(Ok(5)));
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(child_done.get(), 1);
    assert!(h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c63_child_cancels_outer_as_its_last_act() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let start = Instant::now();
    let hc = h.clone();
    let out = scope
        .run(nursery(|n| async move {
            n.spawn(async move {
                tokio::time::sleep(secs(1)).await;
                // No suspension follows: the child finishes on its own.
                hc.cancel();
                Ok(())
            });
            Ok::<_, TestError>(5)
        }))
        .await;

    assert_eq!(out, Some(Ok(5)));
    assert_eq!(start.elapsed(), secs(1));
    assert!(h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c64_fail_after_entered_inside_cancelled_scope() {
    let outer = CancelScope::new();
    let h = outer.handle();
    let (polled, after) = (Counter::new(), Counter::new());
    let start = Instant::now();
    let (p, a, hc) = (polled.clone(), after.clone(), h.clone());

    let out = outer
        .run(async move {
            hc.cancel();
            let r = fail_after(secs(1), async move {
                p.hit();
                1
            })
            .await;
            a.hit();
            r
        })
        .await;

    // `None` is the only value of this type that holds no `Elapsed`.
    assert_eq!(out, None);
    assert_eq!(polled.get(), 0);
    assert_eq!(after.get(), 0);
    assert_eq!(start.elapsed(), ms(0));
    assert!(h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c64_fail_after_around_pending_entered_inside_cancelled_scope() {
    let outer = CancelScope::new();
    let h = outer.handle();
    let polled = Counter::new();
    let start = Instant::now();
    let (p, hc) = (polled.clone(), h.clone());

    // Were the inner deadline armed, the paused clock would jump to it and produce `Elapsed`.
    let out = outer
        .run(async move {
            hc.cancel();
            fail_after(secs(1), async move {
                p.hit();
                pending::<()>().await
            })
            .await
        })
        .await;

    assert_eq!(out, None);
    assert_eq!(polled.get(), 0);
    assert_eq!(start.elapsed(), ms(0));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c64_nursery_entered_inside_cancelled_scope() {
    let outer = CancelScope::new();
    let h = outer.handle();
    let body_called = Counter::new();
    let (b, hc) = (body_called.clone(), h.clone());

    let out = outer
        .run(async move {
            hc.cancel();
            // The closure runs when the nursery future is built; rule 3 is about its future,
            // which must never be polled.
            nursery(|_n| async move {
                b.hit();
                Ok::<_, TestError>(1)
            })
            .await
        })
        .await;

    assert_eq!(out, None);
    assert_eq!(body_called.get(), 0);
    assert!(h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c64_inner_scope_entered_inside_cancelled_scope() {
    let outer = CancelScope::new();
    let h = outer.handle();
    let inner = CancelScope::new();
    let ih = inner.handle();
    let polled = Counter::new();
    let (p, hc) = (polled.clone(), h.clone());

    let out = outer
        .run(async move {
            hc.cancel();
            inner
                .run(async move {
                    p.hit();
                })
                .await
        })
        .await;

    assert_eq!(out, None);
    assert_eq!(polled.get(), 0);
    assert!(h.cancelled_caught());
    assert!(!ih.cancel_called());
    assert!(!ih.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c64_fail_after_entered_inside_failing_nursery() {
    let polled = Counter::new();
    let p = polled.clone();
    let out = nursery(|n| async move {
        n.handle().fail(TestError("failed")).unwrap();
        let r = fail_after(secs(1), async move {
            p.hit();
        })
        .await;
        assert!(r.is_ok(), "unreachable: the body is dropped, not resumed");
        Ok(())
    })
    .await;

    assert_eq!(out, Err(TestError("failed")));
    assert_eq!(polled.get(), 0);
}

// The substring is part of the message of the panic raised by `check_parked` in src/run.rs.
#[tokio::test(flavor = "current_thread", start_paused = true)]
#[should_panic(expected = "polled again after the scope that absorbed its cancellation had ended")]
async fn c65_nursery_resumed_outside_its_scope_panics() {
    let fut = nursery(|n| async move {
        n.spawn(async {
            tokio::time::sleep(secs(3600)).await;
            Ok(())
        });
        pending::<Result<(), TestError>>().await
    });
    let mut fut = pin!(fut);
    let out = move_on_after(secs(1), &mut fut).await;
    assert_eq!(out, None, "the scope absorbed its deadline");
    let _ = fut.await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
#[should_panic(expected = "polled again after the scope that absorbed its cancellation had ended")]
async fn c65_scope_resumed_outside_its_scope_panics() {
    let fut = CancelScope::new().run(pending::<()>());
    let mut fut = pin!(fut);
    let out = move_on_after(secs(1), &mut fut).await;
    assert_eq!(out, None, "the outer scope absorbed its deadline");
    let _ = fut.await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c66_library_awaits_are_cancellation_aware() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let start = Instant::now();
    let log = Log::new();
    let (sleep_polls, checkpoint_polls) = (Counter::new(), Counter::new());
    let at_10ms = start + ms(10);

    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let (sp, cp) = (sleep_polls.clone(), checkpoint_polls.clone());
    let out = scope
        .run(async move {
            tokio::join!(
                // Keeps the scope unwinding (and so polling this join) from 5 ms to 1005 ms.
                nursery(|n| async move {
                    n.defer(async {
                        tokio::time::sleep(secs(1)).await;
                        Ok(())
                    });
                    n.spawn(pending::<Result<(), TestError>>());
                    pending::<Result<(), TestError>>().await
                }),
                async move {
                    PollSpy::new(tokio_nursery::sleep(ms(10)), at_10ms, &sp).await;
                    l1.push("library sleep resumed");
                },
                async move {
                    tokio::time::sleep(ms(5)).await;
                    h.cancel();
                    PollSpy::new(checkpoint(), at_10ms, &cp).await;
                    l2.push("checkpoint resumed");
                },
                async move {
                    tokio::time::sleep(ms(10)).await;
                    l3.push("plain sleep resumed");
                },
            )
        })
        .await;

    assert!(out.is_none());
    assert_eq!(start.elapsed(), ms(1005));
    // Both were polled after 10 ms, while the join was still being driven, and stayed pending.
    assert!(
        sleep_polls.get() >= 1,
        "the library sleep was polled after its deadline"
    );
    assert!(
        checkpoint_polls.get() >= 1,
        "the checkpoint was polled again"
    );
    assert!(!log.contains("library sleep resumed"));
    assert!(!log.contains("checkpoint resumed"));
    // The documented limit: a plain tokio sleep may resume here; if it does, at its own time.
    if let Some(at) = log.at("plain sleep resumed") {
        assert_eq!(at, ms(10));
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c66_library_awaits_beside_a_failing_nursery_body() {
    let start = Instant::now();
    let log = Log::new();
    let (sleep_polls, checkpoint_polls) = (Counter::new(), Counter::new());
    let at_10ms = start + ms(10);

    let (l1, l2) = (log.clone(), log.clone());
    let (sp, cp) = (sleep_polls.clone(), checkpoint_polls.clone());
    let out = nursery(|n| async move {
        let h = n.handle();
        let _ = tokio::join!(
            nursery(|m| async move {
                m.defer(async {
                    tokio::time::sleep(secs(1)).await;
                    Ok(())
                });
                pending::<Result<(), TestError>>().await
            }),
            async move {
                PollSpy::new(tokio_nursery::sleep(ms(10)), at_10ms, &sp).await;
                l1.push("library sleep resumed");
            },
            async move {
                tokio::time::sleep(ms(5)).await;
                h.fail(TestError("failed")).unwrap();
                PollSpy::new(checkpoint(), at_10ms, &cp).await;
                l2.push("checkpoint resumed");
            },
            // Wakes the join at 10 ms whatever the library sleep does with its timer.
            tokio::time::sleep(ms(10)),
        );
        Ok(())
    })
    .await;

    assert_eq!(out, Err(TestError("failed")));
    assert_eq!(start.elapsed(), ms(1005));
    assert!(
        sleep_polls.get() >= 1,
        "the library sleep was polled after its deadline"
    );
    assert!(
        checkpoint_polls.get() >= 1,
        "the checkpoint was polled again"
    );
    assert!(!log.contains("library sleep resumed"));
    assert!(!log.contains("checkpoint resumed"));
}
