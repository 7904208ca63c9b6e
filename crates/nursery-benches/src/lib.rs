//! Benchmarks of the nursery crates against the tools a tokio user would pick instead, and the
//! report that puts them side by side.
//!
//! Criterion benches (`benches/spawn_join.rs`, `cancel.rs`, `scope.rs`, `borrowing.rs`) name
//! their groups `<workload>/<runtime>` and their functions after the implementation
//! (`nursery`, `joinset`, `raw_spawn`, ...). Measurements that are not timings of a loop
//! (`heap_per_child`, `force_exit`, `idle_connections`) have their own `main` and write a
//! [`Measurement`] as JSON with [`Measurement::write`]. The `bench-report` binary runs them all
//! and writes `BENCHMARKS.md`:
//!
//! ```text
//! cargo bench-report
//! ```
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The environment variable naming the directory custom measurements are written to.
pub const OUT_DIR_ENV: &str = "NURSERY_BENCH_OUT";

/// Set by the report in quick mode; measurements shorten themselves (fewer samples, shorter
/// windows) but keep every case.
pub const QUICK_ENV: &str = "NURSERY_BENCH_QUICK";

/// One measured workload that is not a criterion timing.
///
/// ```
/// use nursery_benches::{Measurement, Row};
///
/// let m = Measurement {
///     workload: "heap_per_child".into(),
///     title: "Heap bytes per live child".into(),
///     metric: "bytes per child".into(),
///     rows: vec![Row::new("N=10000", "nursery", 400.0)],
///     notes: vec![],
/// };
/// assert_eq!(m.rows[0].implementation, "nursery");
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// File stem and table key, e.g. `heap_per_child`.
    pub workload: String,
    /// Table heading.
    pub title: String,
    /// What `Row::value` measures, with its unit (lower is better).
    pub metric: String,
    /// One value per case and implementation.
    pub rows: Vec<Row>,
    /// Free text printed under the table (how it was measured).
    pub notes: Vec<String>,
}

/// One value: a case (runtime, size, variant) measured on one implementation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The case, e.g. `current_thread, N=10000`; rows with the same case are compared.
    pub case: String,
    /// `nursery` for this library, else the peer's name (`joinset`, `select_baseline`, ...).
    pub implementation: String,
    /// The measured value in `Measurement::metric` units.
    pub value: f64,
    /// Secondary figures (named with their unit, e.g. `allocs_per_child`, `p50_us`).
    #[serde(default)]
    pub extra: BTreeMap<String, f64>,
}

impl Row {
    /// A row without secondary figures.
    ///
    /// ```
    /// let row = nursery_benches::Row::new("N=1", "nursery", 1.0).with("p50_us", 0.5);
    /// assert_eq!(row.extra["p50_us"], 0.5);
    /// ```
    pub fn new(case: impl Into<String>, implementation: impl Into<String>, value: f64) -> Row {
        Row {
            case: case.into(),
            implementation: implementation.into(),
            value,
            extra: BTreeMap::new(),
        }
    }

    /// Adds a secondary figure.
    pub fn with(mut self, name: impl Into<String>, value: f64) -> Row {
        self.extra.insert(name.into(), value);
        self
    }
}

impl Measurement {
    /// Writes `<out>/<workload>.json`, where `<out>` is `$NURSERY_BENCH_OUT` or
    /// `target/nursery-bench` in the workspace, and prints the rows.
    ///
    /// ```no_run
    /// # let m: nursery_benches::Measurement = unimplemented!();
    /// m.write().expect("write measurement");
    /// ```
    pub fn write(&self) -> std::io::Result<PathBuf> {
        let dir = out_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.workload));
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, json)?;
        for row in &self.rows {
            println!(
                "{:<24} {:<40} {:<20} {:>14.3} {}",
                self.workload, row.case, row.implementation, row.value, self.metric
            );
        }
        Ok(path)
    }
}

/// Where custom measurements go: `$NURSERY_BENCH_OUT`, else `<workspace>/target/nursery-bench`.
///
/// ```
/// assert!(nursery_benches::out_dir().ends_with("nursery-bench") || std::env::var_os("NURSERY_BENCH_OUT").is_some());
/// ```
pub fn out_dir() -> PathBuf {
    match std::env::var_os(OUT_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target").join("nursery-bench"),
    }
}

/// The workspace root (two levels above this crate's manifest).
///
/// ```
/// assert!(nursery_benches::workspace_root().join("Cargo.toml").exists());
/// ```
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Whether the report asked for quick mode.
///
/// ```
/// let _quick: bool = nursery_benches::quick();
/// ```
pub fn quick() -> bool {
    std::env::var_os(QUICK_ENV).is_some_and(|v| v != "0")
}
