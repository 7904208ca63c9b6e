//! Force-exiting async code from a plain synchronous callback on another OS thread.
//!
//! The originating scenario's `connection_state_callback`: a connection driver (standing in
//! for a sync SDK or a C library) runs on its own `std::thread` and reports state changes
//! through an `Fn(State)` callback. When the connection drops, the callback calls
//! `NurseryHandle::fail(AppError::ConnectionLost { reason })` — synchronous, non-blocking, no
//! runtime needed on that thread. The body, an endless send loop, is force-exited; the
//! deferred disconnect runs exactly once; `main` matches the typed error.
//!
//! A handle kept past the end of the nursery (a driver that fires late) gets `Err(Closed)`
//! from `fail`: nothing happens, nothing panics.
//!
//! ```text
//! cargo run -p tokio-nursery --example fail_from_callback
//! ```

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use tokio::sync::Notify;

/// The application's error type; a lost connection is its own variant, matched on by `main`.
#[derive(Debug)]
enum AppError {
    ConnectionLost { reason: String },
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::ConnectionLost { reason } => write!(f, "connection lost ({reason})"),
        }
    }
}

/// Connection states as the driver reports them.
enum State {
    Connected,
    Disconnected { reason: String },
}

/// The fake driver: an OS thread that knows nothing about async, and calls back on changes.
fn spawn_driver(on_state: impl Fn(State) + Send + 'static) -> thread::JoinHandle<()> {
    let driver = thread::Builder::new().name("driver".into());
    let thread = driver.spawn(move || {
        on_state(State::Connected);
        thread::sleep(Duration::from_millis(250)); // ... then the peer goes away
        on_state(State::Disconnected {
            reason: "peer reset the connection".into(),
        });
    });
    thread.expect("spawn the driver thread")
}

#[tokio::main]
async fn main() {
    let disconnects = Arc::new(AtomicUsize::new(0));
    let count = disconnects.clone();
    // Carries a handle out of the nursery, to show what a late caller gets.
    let (keep_tx, keep_rx) = mpsc::channel();

    let session = tokio_nursery::nursery(|n| async move {
        let handle = n.handle();
        keep_tx.send(handle.clone()).unwrap();
        let connected = Arc::new(Notify::new());
        let on_connect = connected.clone();

        // `connection_state_callback`: plain sync code, called on the driver's thread.
        let driver = spawn_driver(move |state| match state {
            State::Connected => on_connect.notify_one(),
            State::Disconnected { reason } => {
                let thread = thread::current();
                let name = thread.name().unwrap_or("?");
                println!("callback on thread {name:?}: {reason}, failing the nursery");
                let accepted = handle.fail(AppError::ConnectionLost { reason });
                assert!(accepted.is_ok(), "the nursery is still running");
            }
        });

        // `finally: await disconnect()`: runs after the body is gone, shielded and bounded.
        n.defer(async move {
            // Join the driver thread without blocking the runtime.
            tokio::task::spawn_blocking(move || driver.join().expect("driver thread"))
                .await
                .expect("join task");
            count.fetch_add(1, Ordering::SeqCst);
            println!("cleanup: driver thread joined, disconnected");
            Ok(())
        });

        connected.notified().await;
        println!("body: connected");
        // Sends forever: only the force-exit ends this loop (dropped at the sleep).
        for seq in 1.. {
            println!("body: sent message {seq}"); // a real client writes to the connection
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        unreachable!("only a force-exit ends the loop")
    });
    // Without the force-exit the loop never ends: fail loudly instead of hanging.
    let result: Result<(), AppError> = tokio::time::timeout(Duration::from_secs(5), session)
        .await
        .expect("the body was not force-exited");

    match result {
        Err(AppError::ConnectionLost { reason }) => {
            println!("main: connection lost: {reason}");
            assert_eq!(reason, "peer reset the connection");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "cleanup ran once");

    // A late callback: the nursery has finished, so `fail` reports `Closed` and does nothing.
    let late = keep_rx.recv().unwrap();
    let reason = "late duplicate event".to_string();
    let outcome = thread::spawn(move || late.fail(AppError::ConnectionLost { reason }))
        .join()
        .expect("late callback thread");
    let closed = outcome.expect_err("fail after the end is refused");
    println!("main: late fail() -> Err({closed})");
    assert_eq!(disconnects.load(Ordering::SeqCst), 1, "no second cleanup");
}
