//! Conformance J (C48–C51): deferred cleanups are bounded, run exactly once, and keep their errors.

mod support;

use std::future::pending;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use support::*;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_nursery::{move_on_after, nursery, nursery_all, CancelScope, NurseryBuilder};

fn log_on_drop(log: &Log, name: &'static str) -> LogOnDrop {
    LogOnDrop::new(log, name)
}

/// Extracts the payload text of a caught panic.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<non-string payload>")
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c48_bounded_cleanup() {
    let cap = TraceCapture::start();
    let log = Log::new();
    let start = Instant::now();
    let (handle_tx, handle_rx) = oneshot::channel();
    let (l_body, l_cleanup) = (log.clone(), log.clone());

    let out = move_on_after(
        secs(1),
        NurseryBuilder::new()
            .cleanup_timeout(secs(2))
            .run(|n| async move {
                handle_tx.send(n.handle()).unwrap();
                n.defer(async move {
                    let _dropped = log_on_drop(&l_cleanup, "cleanup dropped");
                    l_cleanup.push("cleanup started");
                    pending::<Result<(), TestError>>().await
                });
                let _dropped = log_on_drop(&l_body, "body dropped");
                pending::<Result<(), TestError>>().await
            }),
    )
    .await;

    assert_eq!(out, None);
    assert_eq!(start.elapsed(), secs(3));
    assert_eq!(log.at("body dropped"), Some(secs(1)));
    assert_eq!(log.at("cleanup started"), Some(secs(1)));
    assert_eq!(log.at("cleanup dropped"), Some(secs(3)));

    // Reported on the handle and through tracing, but the outer scope still absorbed a pure
    // cancellation: had the timeout counted as a failure, `run` would have returned `Some(Err)`.
    let handle = handle_rx.await.unwrap();
    let timeouts = handle.cleanup_timeouts();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0].timeout(), secs(2));
    assert!(
        cap.contains("did not finish within 2s"),
        "tracing output: {}",
        cap.output()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c48_cleanup_timeout_listed_in_errors_not_as_failure() {
    let start = Instant::now();
    let errors = NurseryBuilder::new()
        .cleanup_timeout(secs(2))
        .run_all(|n| async move {
            n.defer(async { pending::<Result<(), TestError>>().await });
            Err::<(), _>(TestError("body"))
        })
        .await
        .unwrap_err();

    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(errors.all(), &[TestError("body")]);
    assert_eq!(errors.cleanup_timeouts().len(), 1);
    assert_eq!(errors.cleanup_timeouts()[0].timeout(), secs(2));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c48_cleanup_timeout_alone_is_not_a_failure() {
    let cap = TraceCapture::start();
    let start = Instant::now();
    let (out, handle) = NurseryBuilder::new()
        .cleanup_timeout(secs(2))
        .run(|n| async move {
            n.defer(async { pending::<Result<(), TestError>>().await });
            Ok::<_, TestError>((7, n.handle()))
        })
        .await
        .unwrap();

    assert_eq!(out, 7);
    assert_eq!(start.elapsed(), secs(2));
    assert_eq!(handle.cleanup_timeouts().len(), 1);
    assert!(cap.contains("did not finish within 2s"));
}

/// Panics with `message`; typed as a member's result so it can end a body or a child.
fn panics(message: &'static str) -> Result<(), TestError> {
    panic!("{message}")
}

/// A nursery body prefix shared by the C49 cases: registers a cleanup that counts its runs.
fn counting_cleanup(n: &tokio_nursery::Nursery<'_, TestError>, runs: &Counter) {
    let runs = runs.clone();
    n.defer(async move {
        runs.hit();
        Ok(())
    });
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_normal_return() {
    let runs = Counter::new();
    let r = runs.clone();
    let out = nursery(|n| async move {
        counting_cleanup(&n, &r);
        Ok::<_, TestError>(1)
    })
    .await;
    assert_eq!(out, Ok(1));
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_body_error() {
    let runs = Counter::new();
    let r = runs.clone();
    let out = nursery(|n| async move {
        counting_cleanup(&n, &r);
        tokio::time::sleep(ms(10)).await;
        Err::<(), _>(TestError("body"))
    })
    .await;
    assert_eq!(out, Err(TestError("body")));
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_child_error() {
    let runs = Counter::new();
    let r = runs.clone();
    let out = nursery(|n| async move {
        counting_cleanup(&n, &r);
        n.spawn(async {
            tokio::time::sleep(ms(10)).await;
            Err::<(), _>(TestError("child"))
        });
        pending::<Result<(), TestError>>().await
    })
    .await;
    assert_eq!(out, Err(TestError("child")));
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_child_panic() {
    let runs = Counter::new();
    let r = runs.clone();
    let caught = AssertUnwindSafe(nursery(|n| async move {
        counting_cleanup(&n, &r);
        n.spawn(async {
            tokio::time::sleep(ms(10)).await;
            panics("child boom")
        });
        pending::<Result<(), TestError>>().await
    }))
    .catch_unwind()
    .await;
    let payload = caught.expect_err("the child's panic resumes from the nursery");
    assert_eq!(panic_text(payload), "child boom");
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_body_panic() {
    let runs = Counter::new();
    let r = runs.clone();
    let caught = AssertUnwindSafe(nursery(|n| async move {
        counting_cleanup(&n, &r);
        tokio::time::sleep(ms(10)).await;
        panics("body boom")
    }))
    .catch_unwind()
    .await;
    let payload = caught.expect_err("the body's panic resumes from the nursery");
    assert_eq!(panic_text(payload), "body boom");
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_outer_deadline() {
    let runs = Counter::new();
    let r = runs.clone();
    let start = Instant::now();
    let out = move_on_after(
        secs(1),
        nursery(|n| async move {
            counting_cleanup(&n, &r);
            n.spawn(pending::<Result<(), TestError>>());
            pending::<Result<(), TestError>>().await
        }),
    )
    .await;
    assert_eq!(out, None);
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_outer_explicit_cancel() {
    let runs = Counter::new();
    let r = runs.clone();
    let scope = CancelScope::new();
    let h = scope.handle();
    let out = scope
        .run(nursery(|n| async move {
            counting_cleanup(&n, &r);
            n.spawn(pending::<Result<(), TestError>>());
            tokio::time::sleep(ms(10)).await;
            h.cancel();
            pending::<Result<(), TestError>>().await
        }))
        .await;
    assert_eq!(out, None);
    assert_eq!(runs.get(), 1);
}

/// A nursery that never finishes on its own; its cleanup counts its runs and then signals `done`.
fn signalling_nursery(
    runs: &Counter,
    done: oneshot::Sender<()>,
) -> impl std::future::Future<Output = Result<(), TestError>> + Send + 'static {
    let runs = runs.clone();
    nursery(move |n| async move {
        n.defer(async move {
            runs.hit();
            let _ = done.send(());
            Ok(())
        });
        n.spawn(pending::<Result<(), TestError>>());
        pending::<Result<(), TestError>>().await
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_foreign_drop_by_tokio_timeout() {
    let runs = Counter::new();
    let (done_tx, done_rx) = oneshot::channel();
    let out = tokio::time::timeout(ms(10), signalling_nursery(&runs, done_tx)).await;
    assert!(out.is_err(), "the foreign timeout fires");
    // The cleanup runs in a detached task: the channel, not the clock, says when it has.
    done_rx.await.expect("the detached cleanup ran");
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c49_once_on_foreign_drop_by_losing_select_branch() {
    let runs = Counter::new();
    let (done_tx, done_rx) = oneshot::channel();
    let lost = tokio::select! {
        _ = signalling_nursery(&runs, done_tx) => false,
        _ = tokio::time::sleep(ms(10)) => true,
    };
    assert!(lost, "the nursery branch loses the select");
    done_rx.await.expect("the detached cleanup ran");
    assert_eq!(runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c50_waiting_nursery_is_cancelled() {
    let log = Log::new();
    let sleeper = DropProbe::new();
    let (inner_runs, outer_runs) = (Counter::new(), Counter::new());
    let scope = CancelScope::new();
    let h = scope.handle();
    let start = Instant::now();

    let canceller = tokio::spawn(async move {
        tokio::time::sleep(secs(1)).await;
        h.cancel();
    });

    let (l, probe, ir, or) = (
        log.clone(),
        sleeper.clone(),
        inner_runs.clone(),
        outer_runs.clone(),
    );
    let out = scope
        .run(nursery(|n| async move {
            let l_outer = l.clone();
            n.defer(async move {
                or.hit();
                l_outer.push("outer cleanup");
                Ok(())
            });
            n.spawn(async move {
                nursery(|m| async move {
                    let l_inner = l.clone();
                    m.defer(async move {
                        ir.hit();
                        l_inner.push("inner cleanup");
                        Ok(())
                    });
                    m.spawn(async move {
                        let _guard = probe.guard();
                        tokio::time::sleep(secs(3600)).await;
                        Ok(())
                    });
                    Ok(())
                })
                .await
            });
            Ok::<_, TestError>(())
        }))
        .await;
    canceller.await.unwrap();

    assert_eq!(out, None);
    assert_eq!(start.elapsed(), secs(1));
    assert!(sleeper.dropped());
    assert_eq!(inner_runs.get(), 1);
    assert_eq!(outer_runs.get(), 1);
    assert_eq!(log.names(), ["inner cleanup", "outer cleanup"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c50_waiting_nursery_is_cancelled_from_os_thread() {
    let sleeper = DropProbe::new();
    let (inner_runs, outer_runs) = (Counter::new(), Counter::new());
    let scope = CancelScope::new();
    let h = scope.handle();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();

    // The OS thread cancels only once the sleeper is known to be running.
    let canceller = std::thread::spawn(move || {
        started_rx.recv().unwrap();
        h.cancel();
    });

    let (probe, ir, or) = (sleeper.clone(), inner_runs.clone(), outer_runs.clone());
    let out = tokio::time::timeout(
        secs(10),
        scope.run(nursery(|n| async move {
            n.defer(async move {
                or.hit();
                Ok(())
            });
            n.spawn(async move {
                nursery(|m| async move {
                    m.defer(async move {
                        ir.hit();
                        Ok(())
                    });
                    m.spawn(async move {
                        let _guard = probe.guard();
                        started_tx.send(()).unwrap();
                        tokio::time::sleep(secs(3600)).await;
                        Ok(())
                    });
                    Ok(())
                })
                .await
            });
            Ok::<_, TestError>(())
        })),
    )
    .await
    .expect("hang detector: the cancelled scope must complete");
    canceller.join().unwrap();

    assert_eq!(out, None);
    assert!(sleeper.dropped());
    assert_eq!(inner_runs.get(), 1);
    assert_eq!(outer_runs.get(), 1);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c51_outside_cancel_while_cleanup_fails() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let start = Instant::now();
    let canceller = {
        let h = h.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(500)).await;
            h.cancel();
        })
    };
    let out = scope
        .run(nursery(|n| async move {
            n.defer(async {
                tokio::time::sleep(secs(1)).await;
                Err(TestError("cleanup"))
            });
            Ok::<_, TestError>(())
        }))
        .await;
    canceller.await.unwrap();

    assert_eq!(out, Some(Err(TestError("cleanup"))));
    assert_eq!(start.elapsed(), secs(1));
    assert!(h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c51_cancel_drops_body_then_cleanup_fails() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let body = DropProbe::new();
    let start = Instant::now();
    let probe = body.clone();
    let hc = h.clone();
    let out = scope
        .run(nursery(|n| async move {
            n.defer(async {
                tokio::time::sleep(secs(1)).await;
                Err(TestError("cleanup"))
            });
            let _guard = probe.guard();
            tokio::time::sleep(ms(500)).await;
            hc.cancel();
            pending::<Result<(), TestError>>().await
        }))
        .await;

    // Rule 2: the body was cancelled, but the nursery collected a failure, so it completes.
    assert_eq!(out, Some(Err(TestError("cleanup"))));
    assert_eq!(start.elapsed(), ms(1500));
    assert!(body.dropped());
    assert!(h.cancel_called());
    assert!(!h.cancelled_caught());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c51_cancel_inside_failing_cleanup() {
    let scope = CancelScope::new();
    let h = scope.handle();
    let hc = h.clone();
    let out = scope
        .run(nursery_all(|n| async move {
            n.defer(async move {
                hc.cancel();
                Err(TestError("cleanup"))
            });
            Ok::<_, TestError>(())
        }))
        .await;

    let errors = out
        .expect("the error is not swallowed by the cancellation")
        .unwrap_err();
    assert_eq!(errors.all(), &[TestError("cleanup")]);
    assert!(h.cancel_called());
    assert!(!h.cancelled_caught());
}
