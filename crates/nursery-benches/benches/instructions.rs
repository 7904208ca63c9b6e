//! Instructions per operation, counted by valgrind's callgrind: the same workloads as the timed
//! benches, but as counts that do not move with machine load (timings on a shared 2-core machine
//! vary by tens of percent between runs; instruction counts repeat exactly).
//!
//! The program re-runs itself under `valgrind --tool=callgrind` once per workload and
//! implementation, at two iteration counts, and takes the difference: startup and runtime
//! construction cancel out, leaving the cost of the iterations alone, divided by the operations
//! they did (children spawned, scopes entered, context values read or bound). Everything runs on
//! a current-thread runtime. Instructions are not time (a cache miss costs more than an add), so
//! this table complements the criterion medians rather than replacing them. Without valgrind it
//! writes a measurement with a note and no rows.
//!
//! `NURSERY_INSTRUCTIONS_ONLY=scope_ready,policy` counts only those workloads.
//!
//! ```text
//! cargo bench -p nursery-benches --bench instructions
//! ```

use std::hint::black_box;
use std::process::Command;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use nursery_benches::{Measurement, Row};
use spawn::{spawn_and_join, work, work_typical};

#[path = "support/spawn.rs"]
#[allow(dead_code)] // The list of implementations is for `spawn_join`.
mod spawn;

/// Set in the re-run child: `<workload>:<implementation>:<iterations>`.
const CHILD_ENV: &str = "NURSERY_INSTRUCTIONS_CHILD";

/// Set to a comma-separated list of workloads to count only those (all by default).
const ONLY_ENV: &str = "NURSERY_INSTRUCTIONS_ONLY";

/// Children per spawn/borrowing iteration, scopes per scope iteration.
const OPS: usize = 1_000;

/// (workload, implementations).
const WORKLOADS: &[(&str, &[&str])] = &[
    (
        "spawn_join",
        &["nursery", "joinset", "raw_spawn", "tracker_token"],
    ),
    ("spawn_join_typical", &["nursery", "joinset"]),
    ("scope_ready", &["nursery", "nursery_plain", "timeout"]),
    ("borrowing", &["nursery", "futures_unordered", "moro"]),
    // `spawn_join`'s nursery children under each policy: what the policy adds per child.
    (
        "policy",
        &["plain", "supervisor", "limit_unreached", "limit_16"],
    ),
    // A context value read (inside one binding) and bound: `Local` against `task_local!`.
    (
        "locals",
        &[
            "get",
            "get_5_bound",
            "task_local_get",
            "scope",
            "task_local_scope",
        ],
    ),
];

static KEY: tokio_nursery::Local<u64> = tokio_nursery::Local::new();
static OTHER: [tokio_nursery::Local<u64>; 4] = [
    tokio_nursery::Local::new(),
    tokio_nursery::Local::new(),
    tokio_nursery::Local::new(),
    tokio_nursery::Local::new(),
];

tokio::task_local! {
    static TASK_KEY: u64;
}

async fn read_local() {
    for _ in 0..OPS {
        black_box(KEY.get());
    }
}

/// `locals`: OPS reads or OPS binds.
async fn locals(implementation: &str) {
    match implementation {
        "get" => KEY.scope(1, read_local()).await,
        "get_5_bound" => {
            let inner = OTHER[0].scope(
                2,
                OTHER[1].scope(3, OTHER[2].scope(4, OTHER[3].scope(5, read_local()))),
            );
            KEY.scope(1, inner).await;
        }
        "task_local_get" => {
            TASK_KEY
                .scope(1, async {
                    for _ in 0..OPS {
                        black_box(TASK_KEY.get());
                    }
                })
                .await;
        }
        "scope" => {
            for i in 0..OPS as u64 {
                black_box(KEY.scope(i, async { KEY.get() }).await);
            }
        }
        "task_local_scope" => {
            for i in 0..OPS as u64 {
                black_box(TASK_KEY.scope(i, async { TASK_KEY.get() }).await);
            }
        }
        other => panic!("unknown implementation {other:?}"),
    }
}

async fn borrowed(data: &[u64], i: usize) {
    black_box(data[i]);
    tokio::task::yield_now().await;
}

/// One iteration of `workload` on `implementation`.
async fn iteration(workload: &str, implementation: &str, data: &[u64]) {
    match (workload, implementation) {
        ("spawn_join", implementation) => spawn_and_join(implementation, OPS, work).await,
        ("spawn_join_typical", implementation) => {
            spawn_and_join(implementation, OPS, work_typical).await;
        }
        ("scope_ready", "nursery") => {
            for _ in 0..OPS {
                black_box(
                    tokio_nursery::move_on_after(Duration::from_secs(60), async { black_box(1) })
                        .await,
                );
            }
        }
        ("scope_ready", "nursery_plain") => {
            for _ in 0..OPS {
                black_box(
                    tokio_nursery::CancelScope::new()
                        .run(async { black_box(1) })
                        .await,
                );
            }
        }
        ("scope_ready", "timeout") => {
            for _ in 0..OPS {
                let out = tokio::time::timeout(Duration::from_secs(60), async { black_box(1) });
                black_box(out.await.ok());
            }
        }
        ("borrowing", "nursery") => tokio_nursery::nursery(|n| async move {
            for i in 0..OPS {
                n.spawn_borrowing(async move {
                    borrowed(data, i).await;
                    Ok::<_, std::io::Error>(())
                });
            }
            Ok(())
        })
        .await
        .expect("nursery"),
        ("borrowing", "futures_unordered") => {
            let mut children: FuturesUnordered<_> = (0..OPS).map(|i| borrowed(data, i)).collect();
            while children.next().await.is_some() {}
        }
        ("borrowing", "moro") => {
            moro::async_scope!(|scope| {
                for i in 0..OPS {
                    drop(scope.spawn(borrowed(data, i)));
                }
            })
            .await;
        }
        ("policy", implementation) => {
            let builder = tokio_nursery::NurseryBuilder::new();
            let builder = match implementation {
                "limit_unreached" => builder.limit(std::num::NonZeroUsize::new(OPS).expect("ops")),
                "limit_16" => builder.limit(std::num::NonZeroUsize::new(16).expect("16")),
                _ => builder,
            };
            let body = |n: tokio_nursery::Nursery<'static, std::io::Error>| async move {
                for i in 0..OPS {
                    n.spawn(async move {
                        work(i).await;
                        Ok(())
                    });
                }
                Ok(())
            };
            if implementation == "supervisor" {
                builder.run_supervisor(body).await.expect("supervisor");
            } else {
                builder.run(body).await.expect("limited");
            }
        }
        ("locals", implementation) => locals(implementation).await,
        other => panic!("unknown workload {other:?}"),
    }
}

/// The re-run child: `iterations` iterations, then exit.
fn run_child(spec: &str) {
    let mut parts = spec.split(':');
    let (Some(workload), Some(implementation), Some(iterations)) =
        (parts.next(), parts.next(), parts.next())
    else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let iterations: usize = iterations.parse().expect("iterations");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let data: Vec<u64> = (0..OPS as u64).collect();
    rt.block_on(async {
        for _ in 0..iterations {
            iteration(workload, implementation, &data).await;
        }
    });
}

/// Instructions callgrind counted for one re-run, or why there is no count.
fn count(workload: &str, implementation: &str, iterations: usize) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .env(
            CHILD_ENV,
            format!("{workload}:{implementation}:{iterations}"),
        )
        .output()
        .map_err(|e| format!("valgrind could not be started: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "valgrind exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no instruction count in valgrind's output: {stderr}"))
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child(&spec);
        return;
    }
    // Two iteration counts; their difference is the cost of the extra iterations alone.
    let (low, high) = if nursery_benches::quick() {
        (4, 24)
    } else {
        (10, 60)
    };
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "callgrind instruction counts, current-thread runtime, {OPS} operations per iteration; \
         per operation = (count at {high} iterations - count at {low}) / ({} x {OPS}), so \
         startup cancels out. Deterministic for a given binary: compare these ratios with the \
         timed tables, which move with machine load.",
        high - low
    )];
    let only = std::env::var(ONLY_ENV).unwrap_or_default();
    let wanted = |workload: &str| only.is_empty() || only.split(',').any(|w| w.trim() == workload);
    'all: for (workload, implementations) in WORKLOADS.iter().filter(|(w, _)| wanted(w)) {
        for implementation in *implementations {
            let counts = count(workload, implementation, low)
                .and_then(|l| count(workload, implementation, high).map(|h| (l, h)));
            match counts {
                Ok((l, h)) => {
                    let per_op = h.saturating_sub(l) as f64 / ((high - low) * OPS) as f64;
                    rows.push(Row::new(
                        format!("{workload}, {OPS} per iteration"),
                        *implementation,
                        per_op,
                    ));
                }
                Err(why) => {
                    eprintln!("instructions: {why}");
                    notes.push(format!("Not measured: {why}"));
                    break 'all;
                }
            }
        }
    }
    let measurement = Measurement {
        workload: "instructions".into(),
        title: "Instructions per operation (callgrind)".into(),
        metric: "instructions per child or scope".into(),
        rows,
        notes,
    };
    measurement.write().expect("write measurement");
}
