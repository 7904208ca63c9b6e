//! Resident memory per live child at scale, and the time to cancel all of them, against the
//! same number of `tokio::spawn` tasks in a `JoinSet`.
//!
//! Requested heap bytes (`heap_per_child`) do not show what users pay: the allocator rounds
//! every block up to its size class and the roster and the runtime's queues grow in steps. So
//! each case runs in a fresh process (glibc malloc, the current-thread runtime), which spawns N
//! children that are all polled once and then wait forever, and reads its own `VmRSS` before
//! the first spawn and once all N wait, and `VmHWM` (the peak) at the end. Then all N are
//! cancelled and awaited, timed: `nursery` by `Nursery::cancel` and the nursery returning,
//! `joinset` by `JoinSet::abort_all` and draining `join_next`.
//!
//! Two tables: `rss_scale` (resident bytes per live child at N = 10 000, 100 000 and
//! 1 000 000, with the peak in MB) and `cancel_scale` (nanoseconds to cancel all N, so the
//! report can check that the time per child stays flat as N grows).
//!
//! ```text
//! cargo bench -p nursery-benches --bench rss_scale
//! ```

use std::convert::Infallible;
use std::future::pending;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nursery_benches::{Measurement, Row};
use tokio::task::JoinSet;

/// Set in the re-run child: `<implementation>:<n>`.
const CHILD_ENV: &str = "NURSERY_RSS_SCALE_CHILD";
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const IMPLEMENTATIONS: [&str; 2] = ["nursery", "joinset"];

/// What one child process measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// Resident bytes before the first spawn.
    rss_before: u64,
    /// Resident bytes with all children live.
    rss_live: u64,
    /// Peak resident bytes of the process.
    hwm: u64,
    /// Nanoseconds from the cancel to the last child gone.
    cancel_ns: u64,
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Counts children polled at least once.
#[derive(Clone, Default)]
struct Polled(Arc<AtomicUsize>);

impl Polled {
    /// A `JoinSet` child: counts its first poll, then waits forever.
    async fn child(self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        pending::<()>().await;
    }

    /// The same child as a nursery child (the same state, so the same size as [`child`]).
    async fn nursery_child(self) -> Result<(), Infallible> {
        self.0.fetch_add(1, Ordering::Relaxed);
        pending::<Result<(), Infallible>>().await
    }

    async fn all(&self, n: usize) {
        while self.0.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
    }
}

async fn nursery_case(n: usize) -> Figures {
    let (rss_before, _) = memory();
    let polled = Polled::default();
    let (rss_live, cancelled_at) = tokio_nursery::nursery(|nursery| async move {
        for _ in 0..n {
            nursery.spawn(polled.clone().nursery_child());
        }
        polled.all(n).await;
        let (live, _) = memory();
        let at = Instant::now();
        nursery.cancel();
        Ok::<_, Infallible>((live, at))
    })
    .await
    .expect("no child fails");
    let cancel_ns = cancelled_at.elapsed().as_nanos() as u64;
    let (_, hwm) = memory();
    Figures {
        rss_before,
        rss_live,
        hwm,
        cancel_ns,
    }
}

async fn joinset_case(n: usize) -> Figures {
    let (rss_before, _) = memory();
    let polled = Polled::default();
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(polled.clone().child());
    }
    polled.all(n).await;
    let (rss_live, _) = memory();
    let at = Instant::now();
    set.abort_all();
    while set.join_next().await.is_some() {}
    let cancel_ns = at.elapsed().as_nanos() as u64;
    let (_, hwm) = memory();
    Figures {
        rss_before,
        rss_live,
        hwm,
        cancel_ns,
    }
}

/// The re-run child: one case, its figures printed as one line.
fn run_child(spec: &str) {
    let (implementation, n) = spec.split_once(':').expect("<implementation>:<n>");
    let n: usize = n.parse().expect("n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let f = rt.block_on(async {
        match implementation {
            "nursery" => nursery_case(n).await,
            "joinset" => joinset_case(n).await,
            other => panic!("unknown implementation {other:?}"),
        }
    });
    println!("{} {} {} {}", f.rss_before, f.rss_live, f.hwm, f.cancel_ns);
}

/// Runs one case in a fresh process.
fn case(implementation: &str, n: usize) -> Figures {
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .env(CHILD_ENV, format!("{implementation}:{n}"))
        .output()
        .expect("the child process starts");
    assert!(
        output.status.success(),
        "{implementation} at {n}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    let [rss_before, rss_live, hwm, cancel_ns] = numbers[..] else {
        panic!("unexpected child output {text:?}");
    };
    Figures {
        rss_before,
        rss_live,
        hwm,
        cancel_ns,
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child(&spec);
        return;
    }
    let (mut rss_rows, mut cancel_rows) = (Vec::new(), Vec::new());
    for n in SIZES {
        for implementation in IMPLEMENTATIONS {
            let f = case(implementation, n);
            let per_child = f.rss_live.saturating_sub(f.rss_before) as f64 / n as f64;
            println!(
                "rss_scale {implementation:>8} N={n:>8}: {per_child:7.1} resident bytes per \
                 child, peak {:.1} MB; cancel of all {:.2} ms ({:.0} ns per child)",
                f.hwm as f64 / 1e6,
                f.cancel_ns as f64 / 1e6,
                f.cancel_ns as f64 / n as f64
            );
            rss_rows.push(
                Row::new(n.to_string(), implementation, per_child)
                    .with("peak_mb", f.hwm as f64 / 1e6)
                    .with("live_mb", f.rss_live as f64 / 1e6),
            );
            cancel_rows.push(
                Row::new(n.to_string(), implementation, f.cancel_ns as f64)
                    .with("ns_per_child", f.cancel_ns as f64 / n as f64),
            );
        }
    }
    let notes = vec![
        "One fresh process per case: glibc malloc, current-thread runtime; every child polled \
         once, then waiting forever."
            .to_string(),
    ];
    for measurement in [
        Measurement {
            workload: "rss_scale".into(),
            title: "Resident memory per live child (VmRSS)".into(),
            metric: "resident bytes per child".into(),
            rows: rss_rows,
            notes: notes.clone(),
        },
        Measurement {
            workload: "cancel_scale".into(),
            title: "Cancel all N children".into(),
            metric: "ns to cancel all".into(),
            rows: cancel_rows,
            notes,
        },
    ] {
        let path = measurement.write().expect("write measurement");
        eprintln!("written {}", path.display());
    }
}
