//! Conformance section E (C21–C24): panics unwind everything inside, then resume from `.await`.

mod support;

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use support::*;
use tokio::sync::oneshot;
use tokio::time::{sleep, Instant};
use tokio_nursery::{nursery, nursery_all, shield};

type Payload = Box<dyn Any + Send + 'static>;

/// Polls a future, turning a panic raised from its `poll` into `Err(payload)`: shows exactly
/// what leaves the nursery's `.await`, and lets the test log when it left.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Payload>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

fn catch_panic<F: Future>(fut: F) -> CatchPanic<F> {
    CatchPanic(Box::pin(fut))
}

/// The panic message of a `panic!("literal")` or `panic_any(&str)` payload.
fn message(payload: &Payload) -> &str {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<not a string>")
}

/// Where `event` first appears in the log.
fn position(log: &Log, event: &str) -> usize {
    log.names()
        .iter()
        .position(|e| e == event)
        .unwrap_or_else(|| panic!("{event:?} was never logged: {:?}", log.names()))
}

/// A payload no library would produce by itself: proves the original payload is re-raised.
#[derive(Debug, PartialEq)]
struct OriginalPayload(u32);

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c21_child_panics() {
    let start = Instant::now();
    let log = Log::new();
    let (cleanups, after_sleep) = (Counter::new(), Counter::new());
    let (l, c, a) = (log.clone(), cleanups.clone(), after_sleep.clone());
    let out = catch_panic(nursery(move |n| async move {
        let l2 = l.clone();
        n.defer(async move {
            c.hit();
            l2.push("cleanup ran");
            Ok(())
        });
        let (guard, a2) = (LogOnDrop::new(&l, "sibling dropped"), a.clone());
        n.spawn(async move {
            let _guard = guard;
            sleep(secs(10)).await;
            a2.hit();
            Ok::<_, TestError>(())
        });
        n.spawn(async {
            sleep(secs(1)).await;
            panic!("c21 boom");
        });
        let _guard = LogOnDrop::new(&l, "body dropped");
        std::future::pending::<()>().await;
        a.hit();
        Ok(())
    }))
    .await;
    log.push("panic resumed");
    let payload = out.expect_err("the child's panic must resume from the nursery");
    assert_eq!(message(&payload), "c21 boom");
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(cleanups.get(), 1);
    assert_eq!(after_sleep.get(), 0);
    assert_eq!(log.at("sibling dropped"), Some(secs(1)));
    assert_eq!(log.at("body dropped"), Some(secs(1)));
    let cleanup = position(&log, "cleanup ran");
    assert!(
        position(&log, "sibling dropped") < cleanup,
        "{:?}",
        log.names()
    );
    assert!(
        position(&log, "body dropped") < cleanup,
        "{:?}",
        log.names()
    );
    assert!(
        cleanup < position(&log, "panic resumed"),
        "{:?}",
        log.names()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c21_child_panic_payload_is_original() {
    let probe = DropProbe::new();
    let p = probe.clone();
    let joined = tokio::spawn(async move {
        nursery(move |n| async move {
            let guard = p.guard();
            n.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok::<_, TestError>(())
            });
            n.spawn(async {
                tokio::task::yield_now().await;
                panic_any(OriginalPayload(21));
            });
            Ok(())
        })
        .await
    })
    .await;
    let payload = joined
        .expect_err("the panic must leave the nursery")
        .into_panic();
    assert_eq!(
        payload.downcast_ref::<OriginalPayload>(),
        Some(&OriginalPayload(21))
    );
    assert_eq!(probe.count(), 1, "the sibling was not dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c21_child_panics_multi_thread() {
    let log = Log::new();
    let cleanups = Counter::new();
    let (l, c) = (log.clone(), cleanups.clone());
    let (running_tx, running_rx) = oneshot::channel::<()>();
    let joined = tokio::spawn(catch_panic(nursery(move |n| async move {
        let l2 = l.clone();
        n.defer(async move {
            c.hit();
            l2.push("cleanup ran");
            Ok(())
        });
        let guard = LogOnDrop::new(&l, "sibling dropped");
        n.spawn(async move {
            let _guard = guard;
            running_tx.send(()).expect("the panicking child listens");
            std::future::pending::<()>().await;
            Ok::<_, TestError>(())
        });
        n.spawn(async {
            running_rx.await.expect("the sibling is running");
            panic!("c21 boom");
        });
        Ok(())
    })));
    let out = joined
        .await
        .expect("the panic is caught around the nursery");
    log.push("panic resumed");
    let payload = out.expect_err("the child's panic must resume from the nursery");
    assert_eq!(message(&payload), "c21 boom");
    assert_eq!(cleanups.get(), 1);
    assert_eq!(
        log.names(),
        ["sibling dropped", "cleanup ran", "panic resumed"]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c22_panic_waits_for_shielded_cleanup() {
    let start = Instant::now();
    let log = Log::new();
    let after_shield = Counter::new();
    let (l, a) = (log.clone(), after_shield.clone());
    let out = catch_panic(nursery(move |n| async move {
        let (in_shield_tx, in_shield_rx) = oneshot::channel::<()>();
        let l2 = l.clone();
        n.spawn(async move {
            shield(async move {
                in_shield_tx.send(()).expect("the panicking child listens");
                sleep(secs(1)).await;
                l2.push("shielded cleanup done");
            })
            .await;
            tokio::task::yield_now().await;
            a.hit();
            Ok::<_, TestError>(())
        });
        n.spawn(async move {
            in_shield_rx.await.expect("the sibling entered its shield");
            panic!("c22 boom");
        });
        Ok(())
    }))
    .await;
    log.push("panic resumed");
    let payload = out.expect_err("the child's panic must resume from the nursery");
    assert_eq!(message(&payload), "c22 boom");
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(log.at("shielded cleanup done"), Some(secs(1)));
    assert_eq!(log.names(), ["shielded cleanup done", "panic resumed"]);
    assert_eq!(
        after_shield.get(),
        0,
        "the cancelled child resumed after its shield"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c22_panic_waits_for_shielded_cleanup_multi_thread() {
    let log = Log::new();
    let l = log.clone();
    let joined = tokio::spawn(catch_panic(nursery(move |n| async move {
        let (in_shield_tx, in_shield_rx) = oneshot::channel::<()>();
        let l2 = l.clone();
        n.spawn(async move {
            shield(async move {
                in_shield_tx.send(()).expect("the panicking child listens");
                // Long enough that a nursery not waiting for the shield would finish first.
                sleep(ms(50)).await;
                l2.push("shielded cleanup done");
            })
            .await;
            Ok::<_, TestError>(())
        });
        n.spawn(async move {
            in_shield_rx.await.expect("the sibling entered its shield");
            panic!("c22 boom");
        });
        Ok(())
    })));
    let out = joined
        .await
        .expect("the panic is caught around the nursery");
    log.push("panic resumed");
    let payload = out.expect_err("the child's panic must resume from the nursery");
    assert_eq!(message(&payload), "c22 boom");
    assert_eq!(log.names(), ["shielded cleanup done", "panic resumed"]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c23_body_panics() {
    let start = Instant::now();
    let log = Log::new();
    let (cleanups, after_sleep) = (Counter::new(), Counter::new());
    let (l, c, a) = (log.clone(), cleanups.clone(), after_sleep.clone());
    let out: Result<Result<(), TestError>, Payload> = catch_panic(nursery(move |n| async move {
        let l2 = l.clone();
        n.defer(async move {
            c.hit();
            l2.push("cleanup ran");
            Ok(())
        });
        let guard = LogOnDrop::new(&l, "sleeping child dropped");
        n.spawn(async move {
            let _guard = guard;
            sleep(secs(10)).await;
            a.hit();
            Ok::<_, TestError>(())
        });
        let l3 = l.clone();
        n.spawn(shield(async move {
            sleep(secs(1)).await;
            l3.push("shielded child done");
            Ok::<_, TestError>(())
        }));
        sleep(ms(100)).await;
        panic_any("c23 body boom")
    }))
    .await;
    log.push("panic resumed");
    let payload = out.expect_err("the body's panic must resume from the nursery");
    assert_eq!(message(&payload), "c23 body boom");
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(cleanups.get(), 1);
    assert_eq!(after_sleep.get(), 0);
    assert_eq!(log.at("sleeping child dropped"), Some(ms(100)));
    assert_eq!(log.at("shielded child done"), Some(secs(1)));
    assert_eq!(
        log.names(),
        [
            "sleeping child dropped",
            "shielded child done",
            "cleanup ran",
            "panic resumed"
        ]
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c24_panic_beats_error() {
    let cap = TraceCapture::start();
    let start = Instant::now();
    let out = catch_panic(nursery(|n| async move {
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("e"))
        });
        n.spawn(shield(async {
            sleep(secs(2)).await;
            panic!("c24 boom");
        }));
        Ok(())
    }))
    .await;
    let payload = out.expect_err("the panic must beat the error");
    assert_eq!(message(&payload), "c24 boom");
    assert_eq!(start.elapsed(), secs(2));
    assert!(cap.contains("test error e"), "{}", cap.output());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn c24_panic_beats_error_all_errors() {
    let cap = TraceCapture::start();
    let out = catch_panic(nursery_all(|n| async move {
        n.spawn(async {
            sleep(secs(1)).await;
            Err::<(), _>(TestError("e"))
        });
        n.spawn(shield(async {
            sleep(secs(2)).await;
            panic!("c24 boom");
        }));
        Ok(())
    }))
    .await;
    let payload = out.expect_err("the panic must beat the error");
    assert_eq!(message(&payload), "c24 boom");
    assert!(cap.contains("test error e"), "{}", cap.output());
}
