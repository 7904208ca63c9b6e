//! The runtime misused: shut down while nurseries run, or missing when structured futures are polled.

mod support;

use std::future::{pending, Future};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use support::*;
use tokio_nursery::{move_on_after, nursery, shield, CancelScope, NurseryHandle};

/// Panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("a child's destructor panicked during shutdown");
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a nursery in a task of `rt` until its body is blocked; returns its handle.
fn start_nursery<F, Fut>(rt: &tokio::runtime::Runtime, body: F) -> NurseryHandle<TestError>
where
    F: FnOnce(tokio_nursery::Nursery<'static, TestError>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), TestError>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    rt.spawn(nursery(move |n| {
        tx.send(n.handle()).unwrap();
        body(n)
    }));
    rt.block_on(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    rx.recv().unwrap()
}

#[test]
fn runtime_shutdown_while_a_nursery_runs() {
    let cap = TraceCapture::start();
    let rt = current_thread_runtime();
    let runs = Counter::new();
    let child = DropProbe::new();
    let (r, guard) = (runs.clone(), child.guard());
    let handle = start_nursery(&rt, move |n| async move {
        n.defer(async move {
            r.hit();
            Ok(())
        });
        n.spawn(async move {
            let _guard = guard;
            pending::<Result<(), TestError>>().await
        });
        pending().await
    });
    assert!(!handle.is_closed());

    drop(rt); // returns: no hang, no panic

    assert!(child.dropped());
    // DESIGN §3.4: a limit of "exactly once": the cleanup cannot be spawned, and that is reported.
    assert_eq!(runs.get(), 0);
    assert!(
        cap.contains("a dropped nursery could not be finished"),
        "{}",
        cap.output()
    );
    // The handle outlives the runtime and says so.
    assert!(handle.is_closed());
    assert!(handle.spawn(async { Ok(()) }).unwrap_err().is_closed());
    assert!(handle.cancel().unwrap_err().is_closed());
}

/// Whether `tracing` reported `needle` at level ERROR (a debug line naming it is no report).
fn reported(cap: &TraceCapture, needle: &str) -> bool {
    cap.output()
        .lines()
        .any(|line| line.contains(" ERROR ") && line.contains(needle))
}

// `NurseryHandle::fail` documents: accepted until the nursery has taken its outcome, then
// `Err(Closed)` with the error reported. A nursery whose runtime shut down never takes an
// outcome, so an accepted error has nobody left to reach.
#[test]
fn fail_after_a_runtime_shutdown_is_refused_and_reported() {
    let cap = TraceCapture::start();
    let rt = current_thread_runtime();
    let handle = start_nursery(&rt, |n| async move {
        n.spawn(pending());
        pending().await
    });
    drop(rt);
    assert!(handle.is_closed());
    let accepted = handle.fail(TestError("after the shutdown"));
    assert!(
        accepted.is_err(),
        "fail() on a nursery whose runtime is gone returned Ok: the error is lost"
    );
    assert!(
        reported(&cap, "test error after the shutdown"),
        "{}",
        cap.output()
    );
}

// "No error vanishes" (DESIGN §1): failures and panics collected before the shutdown have no
// caller left to return to, so they must be reported through `tracing`, like the skipped cleanup
// and like every failure of a nursery finished by its detached task (§3.4).
#[test]
fn runtime_shutdown_reports_what_the_nursery_had_collected() {
    let cap = TraceCapture::start();
    let rt = current_thread_runtime();
    let handle = start_nursery(&rt, move |n| async move {
        // Keeps the nursery open after the failure below: inside its shield when it comes.
        n.spawn(async {
            shield(async {
                let _bomb = PanicOnDrop;
                pending::<()>().await
            })
            .await;
            Ok(())
        });
        tokio::task::yield_now().await;
        n.spawn(async { Err(TestError("collected before the shutdown")) });
        pending().await
    });
    assert!(
        handle.cancel_called(),
        "the failure is recorded before the shutdown"
    );
    assert!(!handle.is_closed());

    drop(rt);

    assert!(handle.is_closed());
    let mut lost = Vec::new();
    if !reported(&cap, "test error collected before the shutdown") {
        lost.push("the child's error");
    }
    if !reported(&cap, "a child's destructor panicked during shutdown") {
        lost.push("the panic of the child's destructor");
    }
    assert!(
        lost.is_empty(),
        "never reported: {lost:?}; trace: {}",
        cap.output()
    );
}

#[test]
fn multi_thread_runtime_shutdown_timeout_while_nurseries_run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let children = DropProbe::new();
    let mut handles = Vec::new();
    // Every body has spawned its children before the shutdown starts (a loaded machine may not
    // have polled them within `start_nursery`'s few yields).
    let (spawned_tx, spawned_rx) = std::sync::mpsc::channel::<()>();
    for _ in 0..8 {
        let probe = children.clone();
        let spawned = spawned_tx.clone();
        handles.push(start_nursery(&rt, move |n| async move {
            for _ in 0..4 {
                let guard = probe.guard();
                n.spawn(async move {
                    let _guard = guard;
                    pending::<Result<(), TestError>>().await
                });
            }
            spawned.send(()).unwrap();
            pending().await
        }));
    }
    for _ in 0..8 {
        spawned_rx.recv().unwrap();
    }
    let start = std::time::Instant::now();
    rt.shutdown_timeout(Duration::from_secs(10));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "hang detector: shutdown waited for its timeout"
    );
    assert_eq!(children.count(), 32, "every child was dropped");
    assert!(handles.iter().all(NurseryHandle::is_closed));
}

/// Polls `fut` once with a waker that does nothing, outside any runtime.
fn poll_once_outside_a_runtime<F: Future>(fut: F) -> Poll<F::Output> {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    std::pin::pin!(fut).poll(&mut cx)
}

// Documented in the `# Panics` section of `NurseryFuture`.
#[test]
#[should_panic(expected = "a nursery must be polled inside a Tokio runtime")]
fn nursery_polled_outside_a_runtime_panics() {
    let _ = poll_once_outside_a_runtime(nursery(|_n| async { Ok::<_, TestError>(()) }));
}

#[test]
fn scopes_polled_outside_a_runtime() {
    // A scope without a deadline needs no runtime.
    let out = poll_once_outside_a_runtime(CancelScope::new().run(async { 1 }));
    assert_eq!(out, Poll::Ready(Some(1)));
    let scope = CancelScope::new();
    scope.handle().cancel();
    let out = poll_once_outside_a_runtime(scope.run(async { 1 }));
    assert_eq!(out, Poll::Ready(None));

    // A deadline needs tokio's timer: the same panic as `tokio::time::timeout` outside a runtime.
    let timed = std::panic::catch_unwind(|| {
        poll_once_outside_a_runtime(move_on_after(secs(1), pending::<()>()))
    });
    let payload = timed.expect_err("a timer outside a runtime panics");
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("Tokio"), "{message}");
}
