//! Completion policies: a crawler that fetches a batch of pages with at most three requests in
//! flight, keeps going when some pages fail, and takes whatever answered within a deadline.
//!
//! The supervisor nursery (`NurseryBuilder::run_supervisor`) collects each failed fetch instead
//! of cancelling the others; `limit(3)` holds the fourth and later fetches in line until a slot
//! frees; `spawn_when_ready` slows the producer down to that pace. A second batch is spawned
//! into the same nursery and `collect_after` takes the pages that answered within 250 ms,
//! cancelling the rest. The nursery then returns every failure, in the order they happened.
//! Simulated latencies, on the paused clock, so the run is instant and its output fixed.
//!
//! ```text
//! cargo run -p tokio-nursery --example supervisor_limit
//! ```

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, Instant};
use tokio_nursery::{collect_after, Collected, NurseryBuilder};

/// A simulated fetch: (page, latency in ms, whether it fails).
const PAGES: &[(&str, u64, bool)] = &[
    ("/", 100, false),
    ("/about", 50, false),
    ("/missing", 30, true),
    ("/blog", 200, false),
    ("/slow", 900, false),
    ("/broken", 80, true),
];

async fn fetch(
    page: &'static str,
    ms: u64,
    fails: bool,
    in_flight: Arc<AtomicUsize>,
) -> Result<usize, String> {
    let now = in_flight.fetch_add(1, SeqCst) + 1;
    println!("{:>5} ms  fetch {page:<9} ({now} in flight)", elapsed());
    sleep(Duration::from_millis(ms)).await;
    in_flight.fetch_sub(1, SeqCst);
    if fails {
        return Err(format!("{page}: 404"));
    }
    Ok(page.len() * 100)
}

fn elapsed() -> u128 {
    START.with(|s| s.elapsed().as_millis())
}

thread_local! {
    static START: Instant = Instant::now();
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let _ = elapsed(); // the clock starts here
    let in_flight = Arc::new(AtomicUsize::new(0));
    let out = NurseryBuilder::new()
        .name("crawler")
        .limit(NonZeroUsize::new(3).expect("non-zero"))
        .run_supervisor(|n| async move {
            // Batch 1: backpressure; each call returns once its fetch holds a slot.
            for &(page, ms, fails) in PAGES {
                n.spawn_when_ready(discard(fetch(page, ms, fails, in_flight.clone())))
                    .await;
            }
            // Batch 2: value-children, collected at a deadline.
            let batch: Vec<_> = PAGES
                .iter()
                .map(|&(page, ms, fails)| {
                    n.spawn_returning(fetch(page, ms, fails, in_flight.clone()))
                })
                .collect();
            let got = collect_after(batch, Duration::from_millis(250)).await;
            for (&(page, ..), entry) in PAGES.iter().zip(&got) {
                match entry {
                    Collected::Value(bytes) => println!("          {page:<9} {bytes} bytes"),
                    Collected::TimedOut { reason, .. } => println!("          {page:<9} {reason}"),
                    Collected::Ended(why) => println!("          {page:<9} {why}"),
                    other => println!("          {page:<9} {other:?}"),
                }
            }
            Ok(got.iter().filter(|e| e.value().is_some()).count())
        })
        .await;
    match out {
        Ok(pages) => println!("all {pages} pages fetched"),
        Err(errors) => {
            println!("{} failures, in order:", errors.len());
            for error in errors.all() {
                println!("  {error}");
            }
        }
    }
}

/// Batch 1 does not keep the page sizes.
async fn discard(
    fetch: impl std::future::Future<Output = Result<usize, String>>,
) -> Result<(), String> {
    fetch.await.map(drop)
}
