//! An error type whose `Display` panics: the failure must still cancel, unwind and come out.

mod support;

use std::any::Any;
use std::fmt;
use std::future::{pending, Future};
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use support::*;
use tokio::time::{sleep, Instant};
use tokio_nursery::nursery;

// `Core::fail` renders every failure with `Display` (for the cancel reason) outside any panic
// boundary, so a panicking `Display` unwinds out of whatever library frame recorded the failure.
// Each test accepts either reasonable outcome — the error returned, or a panic re-raised — but
// only once everything inside has unwound, as for any other failure (DESIGN §3.2).

/// An error whose `Display` panics (never formatted by these tests).
#[derive(Debug, PartialEq)]
struct Loud(&'static str);

impl fmt::Display for Loud {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("Display of Loud({}) panicked", self.0)
    }
}

/// What came out of the nursery: its value, its error, or a panic (with its message).
#[derive(Debug)]
enum Outcome<T> {
    Value(T),
    Error(Loud),
    Panic(String),
}

impl<T> Outcome<T> {
    fn is_value(&self) -> bool {
        matches!(self, Outcome::Value(_))
    }

    fn describe(&self) -> String {
        match self {
            Outcome::Value(_) => "a value".into(),
            Outcome::Error(e) => format!("the error {e:?}"),
            Outcome::Panic(message) => format!("a panic ({message})"),
        }
    }
}

async fn outcome<T, F>(fut: F) -> Outcome<T>
where
    F: Future<Output = Result<T, Loud>>,
{
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(value)) => Outcome::Value(value),
        Ok(Err(error)) => Outcome::Error(error),
        Err(payload) => Outcome::Panic(message(payload)),
    }
}

fn message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A cleanup that takes a second, then counts its run.
fn slow_cleanup(runs: &Counter) -> impl Future<Output = Result<(), Loud>> + Send + 'static {
    let runs = runs.clone();
    async move {
        sleep(secs(1)).await;
        runs.hit();
        Ok(())
    }
}

/// Asserts that no check failed, listing every one that did.
fn assert_none(violations: Vec<String>) {
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn display_panic_in_a_child_error() {
    let t0 = Instant::now();
    let runs = Counter::new();
    let sibling = DropProbe::new();
    let (r, guard) = (runs.clone(), sibling.guard());
    let out = outcome(nursery(|n| async move {
        n.defer(slow_cleanup(&r));
        n.spawn(async move {
            let _guard = guard;
            sleep(secs(60)).await;
            Ok(())
        });
        n.spawn(async { Err(Loud("child")) });
        sleep(secs(30)).await;
        Ok("body value")
    }))
    .await;
    let at = t0.elapsed();
    let mut violations = Vec::new();
    if out.is_value() {
        violations.push(format!(
            "the child's error was lost: the nursery returned a value at {at:?}"
        ));
    }
    if at != secs(1) {
        violations.push(format!(
            "the failure did not cancel the sibling and the body: {} came out at {at:?}, \
             not at 1s (right after the 1s cleanup)",
            out.describe()
        ));
    }
    if runs.get() != 1 || !sibling.dropped() {
        violations.push("the cleanup did not run or the sibling was not dropped".into());
    }
    assert_none(violations);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn display_panic_in_the_body_error() {
    let t0 = Instant::now();
    let runs = Counter::new();
    let r = runs.clone();
    let out = outcome(nursery(|n| async move {
        n.defer(slow_cleanup(&r));
        n.spawn(pending());
        Err::<(), _>(Loud("body"))
    }))
    .await;
    let (at, ran) = (t0.elapsed(), runs.get());
    let mut violations = Vec::new();
    if out.is_value() {
        violations.push("the body's error was lost".into());
    }
    if (at, ran) != (secs(1), 1) {
        violations.push(format!(
            "{} came out at {at:?} with {ran} cleanup run, before the 1s cleanup had run",
            out.describe()
        ));
    }
    assert_none(violations);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn display_panic_in_a_cleanup_error() {
    let cap = TraceCapture::start();
    let t0 = Instant::now();
    let runs = Counter::new();
    let r = runs.clone();
    let out = outcome(nursery(|n| async move {
        n.defer(slow_cleanup(&r));
        // Registered last, so it runs first.
        n.defer(async { Err(Loud("cleanup")) });
        Ok(())
    }))
    .await;
    let (at, ran) = (t0.elapsed(), runs.get());
    sleep(secs(5)).await;
    let mut violations = Vec::new();
    if out.is_value() {
        violations.push("the cleanup's error was lost".into());
    }
    if (at, ran) != (secs(1), 1) {
        violations.push(format!(
            "{} came out at {at:?} with {ran} cleanup run, before the other 1s cleanup had run",
            out.describe()
        ));
    }
    if cap.contains("polled after completion") {
        violations.push(format!(
            "a library-internal panic followed (\"`Run` polled after completion\"): {}",
            cap.output()
        ));
    }
    assert_none(violations);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn display_panic_in_fail_from_a_callback() {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = outcome(nursery(|n| async move {
        let handle = n.handle();
        // A driver's callback on its own thread. `NurseryHandle` documents that none of its
        // operations panics.
        let callback = std::thread::spawn(move || handle.fail(Loud("callback")).is_ok());
        tx.send(callback.join().map_err(message)).unwrap();
        sleep(secs(30)).await;
        Ok("body value")
    }))
    .await;
    let accepted = rx.recv().unwrap();
    let mut violations = Vec::new();
    match &accepted {
        Ok(true) => {}
        Ok(false) => violations.push("fail() refused the error of a running nursery".into()),
        Err(panic) => violations.push(format!("fail() panicked in the callback's thread: {panic}")),
    }
    if out.is_value() {
        violations.push("the error passed to fail() was lost: the nursery returned a value".into());
    }
    assert_none(violations);
}
