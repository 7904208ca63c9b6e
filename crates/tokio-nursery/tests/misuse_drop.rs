//! Misbehaving cleanups and destructors, foreign drops of every kind, and a leaked nursery.

mod support;

use std::any::Any;
use std::future::{pending, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use support::*;
use tokio::sync::oneshot;
use tokio::time::{sleep, Instant};
use tokio_nursery::{move_on_after, nursery, nursery_all, CancelScope, NurseryBuilder};

/// A payload no library would produce by itself: proves the original payload is re-raised.
#[derive(Debug, PartialEq)]
struct Payload(&'static str);

/// Panics with a [`Payload`] when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        std::panic::panic_any(Payload(self.0));
    }
}

/// Whether `tracing` reported `needle` at level ERROR or WARN (a debug line naming it is no report).
fn reported(cap: &TraceCapture, needle: &str) -> bool {
    cap.output()
        .lines()
        .any(|line| (line.contains(" ERROR ") || line.contains(" WARN ")) && line.contains(needle))
}

/// The payload of a panic caught from `fut`, or its output.
async fn caught<F: Future>(fut: F) -> Result<F::Output, Box<dyn Any + Send>> {
    AssertUnwindSafe(fut).catch_unwind().await
}

fn payload(caught: Box<dyn Any + Send>) -> Payload {
    *caught
        .downcast::<Payload>()
        .expect("the original payload is re-raised")
}

/// A cleanup that counts its run after `delay` and logs it.
fn counted(
    runs: &Counter,
    log: &Log,
    delay: std::time::Duration,
) -> impl Future<Output = Result<(), TestError>> + Send + 'static {
    let (runs, log) = (runs.clone(), log.clone());
    async move {
        sleep(delay).await;
        runs.hit();
        log.push("counted cleanup ran");
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cleanup_that_panics() {
    let (runs, log) = (Counter::new(), Log::new());
    let (r, l) = (runs.clone(), log.clone());
    let out = caught(nursery(|n| async move {
        n.defer(counted(&r, &l, secs(1)));
        // Registered last, so it runs first.
        n.defer(async { std::panic::panic_any(Payload("cleanup")) });
        Ok::<_, TestError>("body value")
    }))
    .await;
    log.push("nursery returned");
    assert_eq!(payload(out.unwrap_err()), Payload("cleanup"));
    assert_eq!(runs.get(), 1, "the other cleanup still ran, once");
    assert_eq!(log.names(), ["counted cleanup ran", "nursery returned"]);

    // Beside an error: the panic takes precedence, and the error is reported, not lost.
    let cap = TraceCapture::start();
    let out = caught(nursery_all(|n| async move {
        n.defer(async { std::panic::panic_any(Payload("cleanup")) });
        Err::<(), _>(TestError("body"))
    }))
    .await;
    assert_eq!(payload(out.unwrap_err()), Payload("cleanup"));
    assert!(reported(&cap, "test error body"), "{}", cap.output());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cleanup_that_panics_after_a_foreign_drop() {
    let cap = TraceCapture::start();
    let t0 = Instant::now();
    let (runs, log) = (Counter::new(), Log::new());
    let (r, l) = (runs.clone(), log.clone());
    let out = CancelScope::new()
        .run(async move {
            let dropped = tokio::time::timeout(
                ms(10),
                nursery(|n| async move {
                    n.defer(counted(&r, &l, secs(1)));
                    n.defer(async { panic!("cleanup panicked after the drop") });
                    pending::<Result<(), TestError>>().await
                }),
            )
            .await;
            assert!(dropped.is_err());
            "caller went on"
        })
        .await;
    assert_eq!(out, Some("caller went on"), "no panic reaches the caller");
    assert_eq!(runs.get(), 1, "the other cleanup still ran, once");
    assert_eq!(
        t0.elapsed(),
        ms(10) + secs(1),
        "the scope adopted the cleanups"
    );
    assert!(
        reported(&cap, "cleanup panicked after the drop"),
        "{}",
        cap.output()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cleanup_that_never_finishes_after_a_foreign_drop() {
    let cap = TraceCapture::start();
    let t0 = Instant::now();
    let (tx, rx) = oneshot::channel();
    let out = CancelScope::new()
        .run(async move {
            let dropped = tokio::time::timeout(
                ms(10),
                NurseryBuilder::new()
                    .cleanup_timeout(secs(2))
                    .run(|n| async move {
                        tx.send(n.handle()).unwrap();
                        n.defer(pending());
                        pending::<Result<(), TestError>>().await
                    }),
            )
            .await;
            assert!(dropped.is_err());
        })
        .await;
    assert_eq!(out, Some(()));
    assert_eq!(
        t0.elapsed(),
        ms(10) + secs(2),
        "bounded by the cleanup timeout"
    );
    let handle = rx.await.unwrap();
    assert_eq!(handle.cleanup_timeouts().len(), 1);
    assert!(
        reported(&cap, "did not finish within 2s"),
        "{}",
        cap.output()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn panicking_drop_in_a_cancelled_child() {
    // Cancelled by `Nursery::cancel`: the destructor's panic resumes from the nursery, with its
    // original payload, after the sibling was dropped and the cleanup ran.
    let (runs, log) = (Counter::new(), Log::new());
    let sibling = DropProbe::new();
    let (r, l, guard) = (runs.clone(), log.clone(), sibling.guard());
    let out = caught(nursery(|n| async move {
        n.defer(counted(&r, &l, secs(1)));
        n.spawn(async move {
            let _guard = guard;
            pending::<Result<(), TestError>>().await
        });
        n.spawn(async {
            let _bomb = PanicOnDrop("spawned child");
            pending::<Result<(), TestError>>().await
        });
        tokio::task::yield_now().await;
        n.cancel();
        Ok("body value")
    }))
    .await;
    log.push("nursery returned");
    assert_eq!(payload(out.unwrap_err()), Payload("spawned child"));
    assert!(sibling.dropped());
    assert_eq!(runs.get(), 1);
    assert_eq!(log.names(), ["counted cleanup ran", "nursery returned"]);

    // Dropped because a sibling failed: the panic beats the error, which is reported.
    let cap = TraceCapture::start();
    let out = caught(nursery(|n| async move {
        n.spawn_borrowing(async {
            let _bomb = PanicOnDrop("borrowing child");
            pending::<Result<(), TestError>>().await
        });
        n.spawn(async {
            tokio::task::yield_now().await;
            Err(TestError("sibling"))
        });
        pending::<Result<(), TestError>>().await
    }))
    .await;
    assert_eq!(payload(out.unwrap_err()), Payload("borrowing child"));
    assert!(reported(&cap, "test error sibling"), "{}", cap.output());

    // Dropped by a deadline inside a child: the child's scope lets the panic through; the
    // nursery catches it at the child's boundary.
    let out = caught(nursery(|n| async move {
        n.spawn(async {
            move_on_after(secs(1), async {
                let _bomb = PanicOnDrop("scope body");
                pending::<()>().await
            })
            .await;
            Ok::<_, TestError>(())
        });
        Ok(())
    }))
    .await;
    assert_eq!(payload(out.unwrap_err()), Payload("scope body"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn panicking_drop_in_a_body_dropped_by_foreign_code() {
    let cap = TraceCapture::start();
    let (runs, log) = (Counter::new(), Log::new());
    let (r, l) = (runs.clone(), log.clone());
    let out = CancelScope::new()
        .run(async move {
            let dropped = tokio::time::timeout(
                ms(10),
                nursery(|n| async move {
                    n.defer(counted(&r, &l, secs(1)));
                    n.spawn_borrowing(async {
                        let _bomb = PanicOnDrop("borrowing child");
                        pending::<Result<(), TestError>>().await
                    });
                    let _bomb = PanicOnDrop("body");
                    pending::<Result<(), TestError>>().await
                }),
            )
            .await;
            assert!(dropped.is_err());
            "caller went on"
        })
        .await;
    assert_eq!(out, Some("caller went on"), "no panic reaches the caller");
    assert_eq!(runs.get(), 1);
    assert!(
        reported(&cap, "nursery body panicked while being dropped"),
        "{}",
        cap.output()
    );
    assert!(
        reported(
            &cap,
            "panic inside a nursery that was dropped before it completed"
        ),
        "the borrowing child's panic: {}",
        cap.output()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nursery_dropped_by_an_aborted_task() {
    let (runs, log) = (Counter::new(), Log::new());
    let child = DropProbe::new();
    let (r, l, guard) = (runs.clone(), log.clone(), child.guard());
    let (done_tx, done_rx) = oneshot::channel();
    let task = tokio::spawn(nursery(|n| async move {
        n.defer(async move {
            counted(&r, &l, secs(1)).await?;
            let _ = done_tx.send(());
            Ok(())
        });
        n.spawn(async move {
            let _guard = guard;
            pending::<Result<(), TestError>>().await
        });
        pending::<Result<(), TestError>>().await
    }));
    sleep(ms(10)).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    done_rx
        .await
        .expect("the cleanup ran in the detached finisher");
    assert_eq!(runs.get(), 1);
    assert!(child.dropped());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn nursery_dropped_while_its_cleanups_run() {
    let t0 = Instant::now();
    let log = Log::new();
    let runs = [Counter::new(), Counter::new(), Counter::new()];
    let cleanups: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (c, l) = (c.clone(), log.clone());
            async move {
                l.push(format!("cleanup {i} started"));
                sleep(secs(1)).await;
                c.hit();
                l.push(format!("cleanup {i} finished"));
                Ok::<_, TestError>(())
            }
        })
        .collect();
    let out = CancelScope::new()
        .run(async move {
            // The body returns at once; the foreign timeout fires in the middle of cleanup 1.
            let dropped = tokio::time::timeout(
                ms(1500),
                nursery(|n| async move {
                    for cleanup in cleanups {
                        n.defer(cleanup);
                    }
                    Ok(())
                }),
            )
            .await;
            assert!(dropped.is_err());
        })
        .await;
    assert_eq!(out, Some(()));
    assert!(runs.iter().all(|c| c.get() == 1), "each cleanup ran once");
    assert_eq!(
        log.names(),
        [
            "cleanup 2 started",
            "cleanup 2 finished",
            "cleanup 1 started",
            "cleanup 1 finished",
            "cleanup 0 started",
            "cleanup 0 finished",
        ],
        "the running cleanup was finished, not restarted"
    );
    assert_eq!(t0.elapsed(), secs(3));
}

#[test]
fn nursery_dropped_on_a_plain_thread_while_its_runtime_runs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runs = Counter::new();
    let r = runs.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut fut = Box::pin(nursery(move |n| async move {
        n.defer(async move {
            r.hit();
            done_tx.send(()).unwrap();
            Ok(())
        });
        n.spawn(pending());
        pending::<Result<(), TestError>>().await
    }));
    rt.block_on(async {
        let first_poll = tokio::time::timeout(std::time::Duration::ZERO, fut.as_mut()).await;
        assert!(first_poll.is_err());
    });
    std::thread::spawn(move || drop(fut))
        .join()
        .expect("dropping it panics nowhere");
    done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("hang detector: the cleanup runs on the runtime captured at the first poll");
    assert_eq!(runs.get(), 1);
}

#[test]
fn nursery_dropped_outside_any_runtime() {
    let cap = TraceCapture::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runs = Counter::new();
    let child = DropProbe::new();
    let (r, guard) = (runs.clone(), child.guard());
    let mut fut = Box::pin(nursery(move |n| async move {
        n.defer(async move {
            r.hit();
            Ok(())
        });
        n.spawn(async move {
            let _guard = guard;
            pending::<Result<(), TestError>>().await
        });
        pending::<Result<(), TestError>>().await
    }));
    rt.block_on(async {
        let first_poll = tokio::time::timeout(std::time::Duration::ZERO, fut.as_mut()).await;
        assert!(first_poll.is_err());
    });
    drop(rt);
    drop(fut);
    // DESIGN §3.4: the limit of "exactly once": the cleanup cannot run, and that is reported.
    assert_eq!(runs.get(), 0);
    assert!(child.dropped());
    assert!(
        reported(&cap, "a dropped nursery could not be finished"),
        "{}",
        cap.output()
    );
}

/// Polls the inner future once, then leaks it with `mem::forget`.
struct LeakAfterFirstPoll<F>(Option<Pin<Box<F>>>);

impl<F: Future> Future for LeakAfterFirstPoll<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(mut fut) = self.0.take() {
            let _ = fut.as_mut().poll(cx);
            std::mem::forget(fut);
        }
        Poll::Ready(())
    }
}

// DESIGN §3.4 names the leaked future as a limit of "exactly once". Like a leaked `MutexGuard`,
// a leaked nursery also never releases what it holds: the enclosing scope of this library waits
// for it forever. Only a foreign timeout gets out.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn leaked_nursery_keeps_its_enclosing_scope_waiting() {
    let runs = Counter::new();
    let r = runs.clone();
    let scope = CancelScope::new().with_timeout(secs(1));
    let out = tokio::time::timeout(
        secs(3600),
        scope.run(LeakAfterFirstPoll(Some(Box::pin(nursery(
            |n| async move {
                n.defer(async move {
                    r.hit();
                    Ok(())
                });
                pending::<Result<(), TestError>>().await
            },
        ))))),
    )
    .await;
    assert!(out.is_err(), "the scope never completes");
    assert_eq!(runs.get(), 0, "the leaked nursery's cleanup never runs");
}
