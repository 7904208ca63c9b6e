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

/// The bench targets, in the order they run. Targets found in the manifest but not listed here
/// run after these (criterion if their source has `criterion_main!`).
const BENCHES: &[(&str, Kind)] = &[
    ("spawn_join", Kind::Criterion),
    ("cancel", Kind::Criterion),
    ("scope", Kind::Criterion),
    ("borrowing", Kind::Criterion),
    ("policy", Kind::Criterion),
    ("locals", Kind::Criterion),
    ("heap_per_child", Kind::Custom),
    ("rss_scale", Kind::Custom),
    ("force_exit", Kind::Custom),
    ("idle_connections", Kind::Custom),
    ("echo_throughput", Kind::Custom),
    ("instructions", Kind::Custom),
    ("tower_layer", Kind::Custom),
];

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
fn bench_list(cargo: &Path) -> Vec<(String, Kind)> {
    let declared = declared_benches(cargo);
    let mut list: Vec<(String, Kind)> = BENCHES
        .iter()
        .filter(|(name, _)| {
            declared
                .as_ref()
                .is_none_or(|d| d.iter().any(|(n, _)| n == name))
        })
        .map(|&(name, kind)| (name.to_string(), kind))
        .collect();
    for (name, src) in declared.unwrap_or_default() {
        if BENCHES.iter().all(|(known, _)| *known != name) {
            let is_criterion = std::fs::read_to_string(&src)
                .is_ok_and(|s| s.contains("criterion_main!") || s.contains("criterion_group!"));
            let kind = if is_criterion {
                Kind::Criterion
            } else {
                Kind::Custom
            };
            list.push((name, kind));
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

/// Cleans `out`, builds every bench target, then runs each one; returns what happened.
pub(crate) fn run_all(
    out: &Path,
    mode: Mode,
    only: &[String],
    timeout: Option<Duration>,
) -> Result<RunLog, String> {
    let start = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    clean(out).map_err(|e| format!("cannot clean {}: {e}", out.display()))?;
    let criterion_home = out.join("criterion");

    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let mut benches = bench_list(&cargo);
    if !only.is_empty() {
        if let Some(unknown) = only.iter().find(|o| benches.iter().all(|(n, _)| n != *o)) {
            let names: Vec<&str> = benches.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "--only {unknown}: no such bench target (known: {})",
                names.join(", ")
            ));
        }
        benches.retain(|(name, _)| only.contains(name));
    }
    let criterion_args: Vec<String> = match mode {
        Mode::Quick => QUICK_CRITERION_ARGS.iter().map(|s| s.to_string()).collect(),
        Mode::Full => Vec::new(),
    };

    let command = |args: &[String]| {
        let mut cmd = Command::new(&cargo);
        cmd.args(args)
            .current_dir(workspace_root())
            .env(OUT_DIR_ENV, out)
            .env("CRITERION_HOME", &criterion_home);
        match mode {
            Mode::Quick => cmd.env(QUICK_ENV, "1"),
            Mode::Full => cmd.env_remove(QUICK_ENV),
        };
        cmd
    };

    let mut steps = Vec::new();
    // One build of every bench target first: cargo compiles them in parallel, and a target
    // that does not compile fails again on its own below, where it is recorded.
    let mut build_args: Vec<String> = ["bench", "-p", PACKAGE, "--no-run"]
        .map(String::from)
        .to_vec();
    for (name, _) in &benches {
        build_args.extend(["--bench".to_string(), name.clone()]);
    }
    let total = benches.len();
    banner(&format!("build of {total} bench targets"), &build_args);
    steps.push(step(
        "(build)",
        "build",
        &build_args,
        command(&build_args),
        timeout,
    ));

    for (i, (name, kind)) in benches.iter().enumerate() {
        let mut args: Vec<String> = ["bench", "-p", PACKAGE, "--bench", name]
            .map(String::from)
            .to_vec();
        if *kind == Kind::Criterion && !criterion_args.is_empty() {
            args.push("--".into());
            args.extend(criterion_args.iter().cloned());
        }
        banner(&format!("[{}/{total}] {name}", i + 1), &args);
        let kind = match kind {
            Kind::Criterion => "criterion",
            Kind::Custom => "custom",
        };
        let done = step(name, kind, &args, command(&args), timeout);
        eprintln!(
            "==> {name}: {} in {}",
            done.status,
            crate::render::fmt_secs(done.secs)
        );
        steps.push(done);
    }

    Ok(RunLog {
        mode: match mode {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
        .into(),
        started_unix,
        total_secs: start.elapsed().as_secs_f64(),
        criterion_args,
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
