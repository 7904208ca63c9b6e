//! Reading results: criterion's `new/benchmark.json` + `estimates.json` under
//! `<out>/criterion`, and the [`Measurement`]s in `<out>/*.json`, into one table per workload
//! and source.

use std::collections::BTreeMap;
use std::path::Path;

use nursery_benches::Measurement;
use serde::Deserialize;

use crate::run::{run_dir, RUN_LOG};

/// This library's implementation name; every ratio is `SUBJECT / peer`.
pub(crate) const SUBJECT: &str = "nursery";

/// Runtimes first in this order, then any other alphabetically.
const RUNTIME_ORDER: &[&str] = &["current_thread", "multi_thread"];

/// Peers first in this order (after [`SUBJECT`]), then any other alphabetically.
const PEER_ORDER: &[&str] = &[
    "joinset",
    "raw_spawn",
    "tracker_token",
    "token_chain",
    "futures_unordered",
    "moro",
    "timeout",
];

/// One case of a workload: rows of the same case are compared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Case {
    /// The runtime (criterion: the group id after `<workload>/`); empty for custom rows.
    pub(crate) runtime: String,
    /// Criterion: the parameter (`value_str`), may be empty. Custom: the whole case label.
    pub(crate) param: String,
}

impl Case {
    /// The parameter as a number (`N`, a depth, or `x1000` for 1 000 repetitions per
    /// iteration), if it is one.
    pub(crate) fn number(&self) -> Option<f64> {
        let digits = self.param.strip_prefix('x').unwrap_or(&self.param);
        digits.parse().ok().filter(|n: &f64| *n > 0.0)
    }
}

/// One measured value.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    /// Criterion: median time per iteration in ns. Custom: the row value.
    pub(crate) value: f64,
    /// Criterion: the median's confidence interval `(lower, upper, level)`.
    pub(crate) ci: Option<(f64, f64, f64)>,
    /// Custom: secondary figures.
    pub(crate) extra: BTreeMap<String, f64>,
}

/// Where a table comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Criterion timings (ns per iteration).
    Criterion,
    /// A [`Measurement`] file.
    Custom {
        title: String,
        metric: String,
        notes: Vec<String>,
    },
}

/// All values of one workload from one source.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) workload: String,
    pub(crate) source: Source,
    /// In display order.
    pub(crate) cases: Vec<Case>,
    /// In display order, [`SUBJECT`] first.
    pub(crate) implementations: Vec<String>,
    pub(crate) cells: BTreeMap<(Case, String), Cell>,
}

impl Table {
    pub(crate) fn new(workload: &str, source: Source) -> Table {
        Table {
            workload: workload.into(),
            source,
            cases: Vec::new(),
            implementations: Vec::new(),
            cells: BTreeMap::new(),
        }
    }

    /// The value of `implementation` in `case`.
    pub(crate) fn get(&self, case: &Case, implementation: &str) -> Option<&Cell> {
        self.cells.get(&(case.clone(), implementation.to_string()))
    }

    /// Adds a cell; the last one wins on a duplicate.
    pub(crate) fn insert(&mut self, case: Case, implementation: String, cell: Cell) {
        if !self.cases.contains(&case) {
            self.cases.push(case.clone());
        }
        if !self.implementations.contains(&implementation) {
            self.implementations.push(implementation.clone());
        }
        self.cells.insert((case, implementation), cell);
    }

    /// Whether the values are criterion times in ns.
    pub(crate) fn is_timing(&self) -> bool {
        matches!(self.source, Source::Criterion)
    }

    /// Puts implementations in display order, and criterion cases too (custom cases keep
    /// the order of their file).
    fn sort(&mut self) {
        self.implementations.sort_by_key(|i| implementation_rank(i));
        if self.is_timing() {
            self.cases.sort_by(|a, b| {
                let key = |c: &Case| (runtime_rank(&c.runtime), c.number().unwrap_or(f64::MAX));
                let (ka, kb) = (key(a), key(b));
                ka.0.cmp(&kb.0)
                    .then(ka.1.total_cmp(&kb.1))
                    .then_with(|| a.cmp(b))
            });
        }
    }
}

fn runtime_rank(runtime: &str) -> (usize, String) {
    let rank = RUNTIME_ORDER.iter().position(|r| *r == runtime);
    (rank.unwrap_or(RUNTIME_ORDER.len()), runtime.to_string())
}

fn implementation_rank(implementation: &str) -> (usize, String) {
    let rank = if implementation == SUBJECT {
        0
    } else {
        PEER_ORDER
            .iter()
            .position(|p| *p == implementation)
            .map_or(PEER_ORDER.len() + 1, |i| i + 1)
    };
    (rank, implementation.to_string())
}

/// Everything read from an output directory.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// In display order: known workloads first, a custom table before a criterion one.
    pub(crate) tables: Vec<Table>,
    /// Files that could not be read.
    pub(crate) warnings: Vec<String>,
    /// When the timed benches ran more than once: each run's results (with the counted tables,
    /// which ran once, in every one of them), so a target compares figures of the same run.
    /// `tables` then holds each cell's median over these. Empty after a single run.
    pub(crate) runs: Vec<Results>,
}

#[derive(Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
}

#[derive(Deserialize)]
struct EstimatesJson {
    median: EstimateJson,
}

#[derive(Deserialize)]
struct EstimateJson {
    point_estimate: f64,
    confidence_interval: IntervalJson,
}

#[derive(Deserialize)]
struct IntervalJson {
    confidence_level: f64,
    lower_bound: f64,
    upper_bound: f64,
}

impl Results {
    /// Reads what a run left in `dir`: the counted benches' results in `dir` itself and each
    /// timed run's in `dir/run<k>` (or, from a single run, everything in `dir`).
    pub(crate) fn load(dir: &Path) -> Results {
        let run_dirs: Vec<_> = (1..)
            .map(|run| run_dir(dir, run))
            .take_while(|d| d.is_dir())
            .collect();
        if run_dirs.is_empty() {
            return Results::load_from(&[dir]);
        }
        let runs: Vec<Results> = run_dirs
            .iter()
            .map(|run| Results::load_from(&[dir, run]))
            .collect();
        let mut merged = crate::median::of_runs(&runs);
        if runs.len() > 1 {
            merged.runs = runs;
        }
        merged
    }

    /// Reads `<d>/criterion/**/new/*.json` and `<d>/*.json` for every `d` in `dirs`.
    fn load_from(dirs: &[&Path]) -> Results {
        let mut results = Results::default();
        let mut criterion: BTreeMap<String, Table> = BTreeMap::new();
        let mut new_dirs = Vec::new();
        for dir in dirs {
            find_new_dirs(&dir.join("criterion"), &mut new_dirs);
        }
        for new in new_dirs {
            match read_criterion(&new) {
                Ok((workload, case, implementation, cell)) => criterion
                    .entry(workload.clone())
                    .or_insert_with(|| Table::new(&workload, Source::Criterion))
                    .insert(case, implementation, cell),
                Err(e) => results.warnings.push(format!("{}: {e}", new.display())),
            }
        }

        let mut custom = Vec::new();
        let files: Vec<_> = dirs
            .iter()
            .flat_map(|dir| {
                let mut in_dir: Vec<_> = std::fs::read_dir(dir)
                    .map(|entries| entries.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                in_dir.sort();
                in_dir
            })
            .collect();
        for path in files {
            let is_measurement = path.extension().is_some_and(|e| e == "json")
                && path.file_name().is_some_and(|n| n != RUN_LOG);
            if !is_measurement {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Measurement>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(m) => custom.push(custom_table(m)),
                Err(e) => results.warnings.push(format!("{}: {e}", path.display())),
            }
        }

        let mut tables: Vec<Table> = custom.into_iter().chain(criterion.into_values()).collect();
        for table in &mut tables {
            table.sort();
        }
        // Stable: a custom table stays before a criterion table of the same workload.
        tables.sort_by_key(|t| crate::workloads::rank(&t.workload));
        results.tables = tables;
        results
    }

    /// The table targets are checked on: the custom measurement if there is one, else
    /// criterion's.
    pub(crate) fn primary(&self, workload: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.workload == workload)
    }
}

fn custom_table(m: Measurement) -> Table {
    let mut table = Table::new(
        &m.workload,
        Source::Custom {
            title: m.title,
            metric: m.metric,
            notes: m.notes,
        },
    );
    for row in m.rows {
        let case = Case {
            runtime: String::new(),
            param: row.case,
        };
        let cell = Cell {
            value: row.value,
            ci: None,
            extra: row.extra,
        };
        table.insert(case, row.implementation, cell);
    }
    table
}

/// Every directory named `new` holding a `benchmark.json`, below `dir`.
fn find_new_dirs(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") && path.join("benchmark.json").is_file() {
            found.push(path);
        } else {
            find_new_dirs(&path, found);
        }
    }
}

/// `(workload, case, implementation, cell)` of one criterion benchmark.
fn read_criterion(new: &Path) -> Result<(String, Case, String, Cell), String> {
    let read =
        |name: &str| std::fs::read_to_string(new.join(name)).map_err(|e| format!("{name}: {e}"));
    let id: BenchmarkJson = serde_json::from_str(&read("benchmark.json")?)
        .map_err(|e| format!("benchmark.json: {e}"))?;
    let estimates: EstimatesJson = serde_json::from_str(&read("estimates.json")?)
        .map_err(|e| format!("estimates.json: {e}"))?;
    let (workload, runtime) = match id.group_id.split_once('/') {
        Some((workload, runtime)) => (workload.to_string(), runtime.to_string()),
        None => (id.group_id.clone(), String::new()),
    };
    let median = estimates.median;
    let cell = Cell {
        value: median.point_estimate,
        ci: Some((
            median.confidence_interval.lower_bound,
            median.confidence_interval.upper_bound,
            median.confidence_interval.confidence_level,
        )),
        extra: BTreeMap::new(),
    };
    let case = Case {
        runtime,
        param: id.value_str.unwrap_or_default(),
    };
    // A lone `bench_function` outside a group has no function id: call it "time".
    let implementation = id.function_id.unwrap_or_else(|| "time".into());
    Ok((workload, case, implementation, cell))
}
