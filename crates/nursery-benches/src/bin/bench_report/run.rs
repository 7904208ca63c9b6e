//! Cleaning the output directory and running the bench targets, one after the other.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nursery_benches::{workspace_root, Measurement, OUT_DIR_ENV, QUICK_ENV};
use serde::{Deserialize, Serialize};

/// The package whose bench targets are run.
const PACKAGE: &str = "nursery-benches";

/// The run log in the output directory, so `--from` renders a run exactly as it was.
pub(crate) const RUN_LOG: &str = "bench-report-run.json";

/// Criterion's arguments in quick mode (checked against criterion 0.7's `configure_from_args`).
pub(crate) const QUICK_CRITERION_ARGS: &[&str] =
    &["--quick", "--warm-up-time", "2", "--measurement-time", "3"];

/// How a bench target is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `criterion_main!`: gets criterion's quick-mode arguments, results under `CRITERION_HOME`.
    Criterion,
    /// Its own `main`: reads `NURSERY_BENCH_QUICK`, writes `<out>/<workload>.json`.
    Custom,
}

/// Whether a bench measures time (and so moves with machine load) or counts something that
/// repeats exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Timed: run once per timed run, each run into its own directory ([`run_dir`]).
    Timed,
    /// Counted (instructions, requested bytes): run once, into the output directory itself.
    Once,
}

/// The bench targets, in the order they run. Targets found in the manifest but not listed here
/// run after these (criterion if their source has `criterion_main!`), as timed benches.
const BENCHES: &[(&str, Kind, Repeat)] = &[
    ("spawn_join", Kind::Criterion, Repeat::Timed),
    ("cancel", Kind::Criterion, Repeat::Timed),
    ("scope", Kind::Criterion, Repeat::Timed),
    ("borrowing", Kind::Criterion, Repeat::Timed),
    ("policy", Kind::Criterion, Repeat::Timed),
    ("locals", Kind::Criterion, Repeat::Timed),
    ("heap_per_child", Kind::Custom, Repeat::Once),
    ("rss_scale", Kind::Custom, Repeat::Timed),
    ("force_exit", Kind::Custom, Repeat::Timed),
    ("idle_connections", Kind::Custom, Repeat::Timed),
    ("echo_throughput", Kind::Custom, Repeat::Timed),
    ("instructions", Kind::Custom, Repeat::Once),
    ("tower_layer", Kind::Custom, Repeat::Once),
];

/// How many times each timed bench runs by default: a timed target is decided on the median
/// of these runs and met only if every run meets it.
pub(crate) const DEFAULT_TIMED_RUNS: usize = 3;

/// The directory of timed run `run` (1-based) inside the output directory.
pub(crate) fn run_dir(out: &Path, run: usize) -> PathBuf {
    out.join(format!("run{run}"))
}

/// Quick or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Shortened measurements.
    Quick,
    /// Every bench with its own settings.
    Full,
}

/// What happened during a run, saved as [`RUN_LOG`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunLog {
    /// `quick` or `full`.
    pub(crate) mode: String,
    /// Seconds since the Unix epoch when the run started.
    pub(crate) started_unix: u64,
    /// Wall time of the whole run, compile included.
    pub(crate) total_secs: f64,
    /// What criterion benches were given after `--`.
    pub(crate) criterion_args: Vec<String>,
    /// How many times each timed bench ran (1 in logs written before runs were repeated).
    #[serde(default = "one")]
    pub(crate) timed_runs: usize,
    /// One entry per step (the build, then each bench).
    pub(crate) steps: Vec<Step>,
}

/// One command of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Step {
    /// Bench target, or `(build)`.
    pub(crate) name: String,
    /// `criterion`, `custom` or `build`.
    pub(crate) kind: String,
    /// Whether it exited successfully.
    pub(crate) ok: bool,
    /// `ok`, the exit status, or why it did not run.
    pub(crate) status: String,
    /// Wall time.
    pub(crate) secs: f64,
    /// The command, for the report.
    pub(crate) command: String,
}

fn one() -> usize {
    1
}

impl RunLog {
    /// Reads `<dir>/bench-report-run.json` if a previous run left one.
    pub(crate) fn read(dir: &Path) -> Option<RunLog> {
        let text = std::fs::read_to_string(dir.join(RUN_LOG)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Saves the log next to the results.
    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(RUN_LOG), json)
    }

    /// Whether a bench (not the shared build, which every bench repeats) failed.
    pub(crate) fn any_failed(&self) -> bool {
        self.steps.iter().any(|s| !s.ok && s.kind != "build")
    }

    /// Whether the run was in quick mode.
    pub(crate) fn quick(&self) -> bool {
        self.mode == "quick"
    }
}

/// Removes what a previous run left in `out`: `criterion/`, the run log, and every `*.json`
/// that is a [`Measurement`] (other files are left alone, in case `--out` names a shared
/// directory).
fn clean(out: &Path) -> std::io::Result<()> {
    let criterion = out.join("criterion");
    if criterion.exists() {
        std::fs::remove_dir_all(&criterion)?;
    }
    let mut run = 1;
    while run_dir(out, run).is_dir() {
        std::fs::remove_dir_all(run_dir(out, run))?;
        run += 1;
    }
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let is_ours = path.file_name().is_some_and(|n| n == RUN_LOG)
            || std::fs::read_to_string(&path)
                .ok()
                .is_some_and(|t| serde_json::from_str::<Measurement>(&t).is_ok());
        if is_ours {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The bench targets to run, in order: [`BENCHES`] that the manifest still declares, then any
/// other bench target of the package.
fn bench_list(cargo: &Path) -> Vec<(String, Kind, Repeat)> {
    let declared = declared_benches(cargo);
    let mut list: Vec<(String, Kind, Repeat)> = BENCHES
        .iter()
        .filter(|(name, _, _)| {
            declared
                .as_ref()
                .is_none_or(|d| d.iter().any(|(n, _)| n == name))
        })
        .map(|&(name, kind, repeat)| (name.to_string(), kind, repeat))
        .collect();
    for (name, src) in declared.unwrap_or_default() {
        if BENCHES.iter().all(|(known, _, _)| *known != name) {
            let is_criterion = std::fs::read_to_string(&src)
                .is_ok_and(|s| s.contains("criterion_main!") || s.contains("criterion_group!"));
            let kind = if is_criterion {
                Kind::Criterion
            } else {
                Kind::Custom
            };
            list.push((name, kind, Repeat::Timed));
        }
    }
    list
}

/// `(name, source path)` of every bench target of [`PACKAGE`], from `cargo metadata`; `None`
/// if that fails (the static list is then used as is).
fn declared_benches(cargo: &Path) -> Option<Vec<(String, PathBuf)>> {
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(workspace_root())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let package = metadata["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == PACKAGE)?;
    let benches = package["targets"]
        .as_array()?
        .iter()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .filter_map(|t| {
            Some((
                t["name"].as_str()?.to_string(),
                PathBuf::from(t["src_path"].as_str()?),
            ))
        })
        .collect();
    Some(benches)
}

/// What every bench command shares.
struct Runner {
    cargo: PathBuf,
    mode: Mode,
    criterion_args: Vec<String>,
    timeout: Option<Duration>,
}

impl Runner {
    /// `cargo <args>` writing its results into `dir`.
    fn command(&self, args: &[String], dir: &Path) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.args(args)
            .current_dir(workspace_root())
            .env(OUT_DIR_ENV, dir)
            .env("CRITERION_HOME", dir.join("criterion"));
        match self.mode {
            Mode::Quick => cmd.env(QUICK_ENV, "1"),
            Mode::Full => cmd.env_remove(QUICK_ENV),
        };
        cmd
    }

    /// Runs one bench into `dir`; `label` names it in the log.
    fn bench(&self, name: &str, kind: Kind, label: &str, dir: &Path) -> Step {
        let mut args: Vec<String> = ["bench", "-p", PACKAGE, "--bench", name]
            .map(String::from)
            .to_vec();
        if kind == Kind::Criterion && !self.criterion_args.is_empty() {
            args.push("--".into());
            args.extend(self.criterion_args.iter().cloned());
        }
        banner(label, &args);
        let kind = match kind {
            Kind::Criterion => "criterion",
            Kind::Custom => "custom",
        };
        let mut done = step(name, kind, &args, self.command(&args, dir), self.timeout);
        eprintln!(
            "==> {label}: {} in {}",
            done.status,
            crate::render::fmt_secs(done.secs)
        );
        done.name = label.split_once("] ").map_or(label, |(_, n)| n).to_string();
        done
    }
}

/// Cleans `out`, builds every bench target, then runs each one: the timed benches `timed_runs`
/// times (all of them once per run, so the runs are spread over the whole time), each run into
/// [`run_dir`], then the counted benches once into `out`; returns what happened.
pub(crate) fn run_all(
    out: &Path,
    mode: Mode,
    only: &[String],
    timeout: Option<Duration>,
    timed_runs: usize,
) -> Result<RunLog, String> {
    let start = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    clean(out).map_err(|e| format!("cannot clean {}: {e}", out.display()))?;

    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let mut benches = bench_list(&cargo);
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|o| benches.iter().all(|(n, ..)| n != *o)) {
            let names: Vec<&str> = benches.iter().map(|(n, ..)| n.as_str()).collect();
            return Err(format!(
                "--only {unknown}: no such bench target (known: {})",
                names.join(", ")
            ));
        }
        benches.retain(|(name, ..)| only.contains(name));
    }
    let runner = Runner {
        cargo,
        mode,
        criterion_args: match mode {
            Mode::Quick => QUICK_CRITERION_ARGS.iter().map(|s| s.to_string()).collect(),
            Mode::Full => Vec::new(),
        },
        timeout,
    };

    let mut steps = Vec::new();
    // One build of every bench target first: cargo compiles them in parallel, and a target
    // that does not compile fails again on its own below, where it is recorded.
    let mut build_args: Vec<String> = ["bench", "-p", PACKAGE, "--no-run"]
        .map(String::from)
        .to_vec();
    for (name, ..) in &benches {
        build_args.extend(["--bench".to_string(), name.clone()]);
    }
    banner(
        &format!("build of {} bench targets", benches.len()),
        &build_args,
    );
    let build = runner.command(&build_args, out);
    steps.push(step("(build)", "build", &build_args, build, timeout));

    let timed: Vec<_> = benches.iter().filter(|b| b.2 == Repeat::Timed).collect();
    let once: Vec<_> = benches.iter().filter(|b| b.2 == Repeat::Once).collect();
    let total = timed.len() * timed_runs + once.len();
    let mut n = 0;
    for run in 1..=timed_runs {
        let dir = run_dir(out, run);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (name, kind, _) in &timed {
            n += 1;
            let label = format!("[{n}/{total}] {name} (run {run}/{timed_runs})");
            steps.push(runner.bench(name, *kind, &label, &dir));
        }
    }
    for (name, kind, _) in &once {
        n += 1;
        steps.push(runner.bench(name, *kind, &format!("[{n}/{total}] {name}"), out));
    }

    Ok(RunLog {
        mode: match mode {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
        .into(),
        started_unix,
        total_secs: start.elapsed().as_secs_f64(),
        criterion_args: runner.criterion_args,
        timed_runs,
        steps,
    })
}

fn banner(what: &str, args: &[String]) {
    eprintln!("\n==> bench-report: {what}: cargo {}", args.join(" "));
}

/// Runs one command with inherited output and times it.
fn step(
    name: &str,
    kind: &str,
    args: &[String],
    mut cmd: Command,
    timeout: Option<Duration>,
) -> Step {
    let start = Instant::now();
    let (ok, status) = match cmd.spawn() {
        Err(e) => (false, format!("did not start: {e}")),
        Ok(child) => match wait(child, timeout) {
            Waited::Exited(status) if status.success() => (true, "ok".to_string()),
            Waited::Exited(status) => (false, format!("failed ({status})")),
            Waited::TimedOut(limit) => (
                false,
                format!("killed after the {} s timeout", limit.as_secs()),
            ),
            Waited::Error(e) => (false, format!("lost: {e}")),
        },
    };
    Step {
        name: name.into(),
        kind: kind.into(),
        ok,
        status,
        secs: start.elapsed().as_secs_f64(),
        command: format!("cargo {}", args.join(" ")),
    }
}

enum Waited {
    Exited(ExitStatus),
    TimedOut(Duration),
    Error(std::io::Error),
}

/// Waits for `child`; past `timeout`, kills it and every process under it (the bench binary
/// that cargo started).
fn wait(mut child: Child, timeout: Option<Duration>) -> Waited {
    let Some(limit) = timeout else {
        return match child.wait() {
            Ok(status) => Waited::Exited(status),
            Err(e) => Waited::Error(e),
        };
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Waited::Exited(status),
            Ok(None) if start.elapsed() >= limit => {
                let descendants = descendants(child.id());
                if !descendants.is_empty() {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .args(descendants.iter().map(u32::to_string))
                        .status();
                }
                let _ = child.kill();
                let _ = child.wait();
                return Waited::TimedOut(limit);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Waited::Error(e),
        }
    }
}

/// The processes below `root`, from `/proc/<pid>/stat` (empty where there is no `/proc`).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    // Deepest first, so nothing is re-parented and missed.
    found.reverse();
    found
}
