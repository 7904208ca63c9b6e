//! `spawn_borrowing`: children that borrow the caller's stack — no `Arc`, no `'static`.
//!
//! `main` owns a `Vec` of settings and a `Mutex` counter. Two borrowing children read the
//! settings and update the counter through plain references: a `validator` that fails on the
//! first bad setting, and a `ticker` that would run forever. The failure cancels the ticker,
//! which is dropped at its current `.await`; the nursery returns the validator's typed error.
//! Once the nursery has returned, every borrow has ended, so `main` can take the `Mutex` apart.
//!
//! Borrowing children run inside the nursery's own task (concurrently, not in parallel), which
//! is what lets them borrow; the nursery future is still `Send` (checked below), so it can
//! itself run inside a spawned task.
//!
//! ```text
//! cargo run -p tokio-nursery --example borrowing_children
//! ```

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, PartialEq)]
enum ConfigError {
    Invalid { key: &'static str, value: i64 },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { key, value } => write!(f, "invalid setting {key} = {value}"),
        }
    }
}

/// Compiles only if `T: Send`: the nursery future could be handed to `tokio::spawn`.
fn assert_send<T: Send>(_: &T) {}

#[derive(Debug, Default)]
struct Stats {
    checked: usize,
    ticks: usize,
    ticker_dropped: bool,
}

/// Records in the borrowed `Stats` that the ticker was dropped (cancelled), not returned.
struct DropFlag<'a>(&'a Mutex<Stats>);

impl Drop for DropFlag<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().ticker_dropped = true;
    }
}

#[tokio::main]
async fn main() {
    // Both live on main's stack; the children get `&` references to them.
    let settings = vec![
        ("workers", 4),
        ("retries", 3),
        ("timeout_ms", -1),
        ("port", 8080),
    ];
    let stats = Mutex::new(Stats::default());
    let mut ticker = None; // the body leaves the ticker's handle here
    let (settings, stats_ref, ticker_slot) = (&settings, &stats, &mut ticker);

    let fut = tokio_nursery::nursery(|n| async move {
        n.spawn_borrowing_named("validator", async move {
            for &(key, value) in settings {
                tokio::time::sleep(Duration::from_millis(20)).await; // a slow check
                if value < 0 {
                    println!("validator: {key} = {value} is invalid, failing");
                    return Err(ConfigError::Invalid { key, value });
                }
                stats_ref.lock().unwrap().checked += 1;
                println!("validator: {key} = {value} ok");
            }
            Ok(())
        });
        *ticker_slot = Some(n.spawn_borrowing_named("ticker", async move {
            let _flag = DropFlag(stats_ref);
            loop {
                tokio::time::sleep(Duration::from_millis(15)).await; // dropped here on cancel
                stats_ref.lock().unwrap().ticks += 1;
            }
        }));
        // The body waits with the children; the validator's failure cancels (drops) it too.
        std::future::pending::<()>().await;
        Ok(())
    });
    assert_send(&fut);
    let result = fut.await;

    println!("main: nursery returned {result:?}");
    assert_eq!(
        result,
        Err(ConfigError::Invalid {
            key: "timeout_ms",
            value: -1
        })
    );

    // The ticker's handle says why it was cancelled: its sibling failed.
    let reason = ticker.unwrap().cancel_reason().expect("cancelled");
    println!("main: ticker {reason}");
    assert_eq!(reason.origin().child_name(), Some("validator"));

    // No borrow outlives the nursery: the counter can be moved out of its Mutex now.
    let stats = stats.into_inner().unwrap();
    println!("main: {stats:?}");
    assert_eq!(stats.checked, 2, "the two settings before the bad one");
    assert!(stats.ticks >= 1, "ran concurrently with the validator");
    assert!(stats.ticker_dropped, "dropped by the failure");
}
