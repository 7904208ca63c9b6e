//! Runs every bench target of `nursery-benches`, one after the other, and writes
//! `BENCHMARKS.md` at the workspace root: the targets summary, the machine, and one table per
//! workload comparing `nursery` with the tools a tokio user would use instead.
//!
//! Quick mode (the default) passes criterion `--quick --warm-up-time 2 --measurement-time 3` and
//! sets `NURSERY_BENCH_QUICK=1`; `--full` runs every bench with its own settings. Previous
//! results in the output directory are removed first. A bench that fails is recorded as failed in
//! the report, which is still written, and the command then exits with status 1.
//!
//! Options: `--full`, `--quick`, `--out <dir>` (results, default `target/nursery-bench`),
//! `--output <file>` (default `<workspace>/BENCHMARKS.md`), `--only <bench>[,<bench>...]`,
//! `--timeout <seconds>` (per bench, 0 = none), `--runs <n>` (how many times each timed bench
//! runs, default 3) and `--from <dir>`, which runs nothing and only renders the results already
//! in `<dir>`.
//!
//! Timed benches run three times, in three passes over all of them, each pass into its own
//! directory; counted benches (instructions, requested bytes) run once. A timed target is
//! decided per run (nursery and peer from the same run), reported as the median of the runs'
//! ratios with their spread, and met only if every run meets it. The tables show each cell's
//! median over the runs.
//!
//! ```text
//! cargo bench-report
//! ```
#![forbid(unsafe_code)]

#[path = "bench_report/charts.rs"]
mod charts;
#[path = "bench_report/data.rs"]
mod data;
#[path = "bench_report/machine.rs"]
mod machine;
#[path = "bench_report/median.rs"]
mod median;
#[path = "bench_report/render.rs"]
mod render;
#[path = "bench_report/run.rs"]
mod run;
#[path = "bench_report/targets.rs"]
mod targets;
#[path = "bench_report/workloads.rs"]
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use nursery_benches::{out_dir, workspace_root};

use crate::run::{Mode, RunLog};

const USAGE: &str = "\
usage: cargo bench-report [--full] [--out <dir>] [--output <file>] [--only <bench>[,<bench>...]]
                          [--timeout <seconds>] [--runs <n>]

Runs every bench target of nursery-benches and writes BENCHMARKS.md at the workspace root.

  --quick              criterion --quick --warm-up-time 2 --measurement-time 3 and
                       NURSERY_BENCH_QUICK=1 (the default)
  --full               every bench with its own settings
  --out <dir>          where results go (default $NURSERY_BENCH_OUT or target/nursery-bench);
                       its previous results are removed first
  --output <file>      the report (default <workspace>/BENCHMARKS.md)
  --only <benches>     run only these bench targets (comma-separated or repeated)
  --timeout <seconds>  kill a bench that runs longer (default 900 quick, 7200 full; 0 = none)
  --runs <n>           run every timed bench n times (default 3); a timed target is decided
                       on the median of the runs' ratios and met only if every run meets it
  -h, --help           this text";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    mode: Mode,
    out: PathBuf,
    output: PathBuf,
    only: Vec<String>,
    timeout: Option<Duration>,
    /// How many times each timed bench runs.
    timed_runs: usize,
    /// Render the results already in this directory; run nothing.
    from: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut mode = Mode::Quick;
    let mut out = None;
    let mut output = None;
    let mut only = Vec::new();
    let mut timeout = None;
    let mut timed_runs = run::DEFAULT_TIMED_RUNS;
    let mut from = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "--" => {}
            "--quick" => mode = Mode::Quick,
            "--full" => mode = Mode::Full,
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--output" => output = Some(PathBuf::from(value("--output")?)),
            "--from" => from = Some(PathBuf::from(value("--from")?)),
            "--only" => only.extend(
                value("--only")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "--timeout" => {
                let v = value("--timeout")?;
                let secs: u64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
                timeout = Some(secs);
            }
            "--runs" => {
                let v = value("--runs")?;
                timed_runs = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("bad --runs {v:?}: a whole number from 1"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let default_timeout = match mode {
        Mode::Quick => 900,
        Mode::Full => 7200,
    };
    let timeout = match timeout.unwrap_or(default_timeout) {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let out = out.unwrap_or_else(out_dir);
    let out = std::path::absolute(&out).unwrap_or(out);
    Ok(Options {
        mode,
        out,
        output: output.unwrap_or_else(|| workspace_root().join("BENCHMARKS.md")),
        only,
        timeout,
        timed_runs,
        from,
    })
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bench-report: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let (results_dir, log) = match &options.from {
        Some(dir) => {
            if !dir.is_dir() {
                eprintln!("bench-report: --from {}: not a directory", dir.display());
                return ExitCode::from(2);
            }
            (dir.clone(), RunLog::read(dir))
        }
        None => {
            let log = match run::run_all(
                &options.out,
                options.mode,
                &options.only,
                options.timeout,
                options.timed_runs,
            ) {
                Ok(log) => log,
                Err(message) => {
                    eprintln!("bench-report: {message}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = log.write(&options.out) {
                eprintln!("bench-report: cannot save the run log: {e}");
            }
            (options.out.clone(), Some(log))
        }
    };

    let results = data::Results::load(&results_dir);
    let outcomes = targets::evaluate(&results);
    let report = render::report(&results, &outcomes, log.as_ref(), options.from.is_some());
    let report_dir = options
        .output
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let (charts, chart_warnings) = charts::write_all(&results, &report_dir);
    let report = charts::with_charts(report, &charts);
    if let Err(e) = std::fs::write(&options.output, report) {
        eprintln!(
            "bench-report: cannot write {}: {e}",
            options.output.display()
        );
        return ExitCode::from(2);
    }

    for warning in results.warnings.iter().chain(&chart_warnings) {
        eprintln!("bench-report: warning: {warning}");
    }
    println!();
    print!("{}", render::summary_text(&outcomes, log.as_ref()));
    println!("\nwrote {}", options.output.display());

    let failed = options.from.is_none() && log.as_ref().is_some_and(|log| log.any_failed());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nursery_benches::{Measurement, Row};

    use crate::data::Results;
    use crate::render::{fmt_num, fmt_time};
    use crate::targets::{evaluate, Status};

    /// A fake criterion result, laid out as criterion 0.7 writes it.
    fn criterion(dir: &std::path::Path, group: &str, function: &str, value: &str, ns: f64) {
        let new = dir
            .join("criterion")
            .join(group.replace('/', "_"))
            .join(function)
            .join(value)
            .join("new");
        std::fs::create_dir_all(&new).unwrap();
        let id = serde_json::json!({
            "group_id": group, "function_id": function, "value_str": value,
            "throughput": null, "full_id": "", "directory_name": "", "title": ""
        });
        let estimate = |v: f64| {
            serde_json::json!({
                "confidence_interval": {
                    "confidence_level": 0.95, "lower_bound": v * 0.99, "upper_bound": v * 1.01
                },
                "point_estimate": v, "standard_error": 0.0
            })
        };
        let estimates = serde_json::json!({
            "mean": estimate(ns), "median": estimate(ns), "median_abs_dev": estimate(0.0),
            "slope": null, "std_dev": estimate(0.0)
        });
        std::fs::write(new.join("benchmark.json"), id.to_string()).unwrap();
        std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
    }

    #[test]
    fn targets_from_fake_results() {
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        criterion(&dir, "spawn_join/current_thread", "nursery", "1000", 900.0);
        criterion(&dir, "spawn_join/current_thread", "joinset", "1000", 1000.0);
        criterion(
            &dir,
            "spawn_join/current_thread",
            "raw_spawn",
            "1000",
            600.0,
        );
        criterion(
            &dir,
            "cancel_nested/multi_thread",
            "nursery",
            "1000",
            1000.0,
        );
        criterion(
            &dir,
            "cancel_nested/multi_thread",
            "nursery",
            "5000",
            5500.0,
        );
        let m = Measurement {
            workload: "idle_connections".into(),
            title: "t".into(),
            metric: "percent of one core".into(),
            rows: vec![
                Row::new("N=10", "nursery", 2.0).with("rss_mb", 150.0),
                Row::new("N=10", "ws_baseline_4k", 1.9).with("rss_mb", 100.0),
            ],
            notes: vec![],
        };
        std::fs::write(
            dir.join("idle_connections.json"),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();

        let results = Results::load(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(results.warnings.is_empty(), "{:?}", results.warnings);
        let outcomes = evaluate(&results);
        let status: BTreeMap<String, Status> = outcomes
            .iter()
            .map(|o| (format!("{} @ {}", o.target, o.case), o.status))
            .collect();
        let get = |key: &str| status[key];
        assert_eq!(
            get("spawn_join: nursery / joinset @ current_thread, children=1000"),
            Status::Met
        );
        assert_eq!(
            get("spawn_join: nursery / raw_spawn @ current_thread, children=1000"),
            Status::Missed
        );
        assert_eq!(
            get("cancel_nested: nursery per level, 5000 vs 1000 @ multi_thread"),
            Status::Met
        );
        assert_eq!(
            get("idle_connections: nursery / ws_baseline_4k @ N=10"),
            Status::Met
        );
        assert_eq!(
            get("idle_connections: nursery / ws_baseline_4k rss_mb @ N=10"),
            Status::Missed
        );
        assert_eq!(get("borrowing: nursery / moro @ —"), Status::NotMeasured);
    }

    #[test]
    fn timed_targets_take_the_median_of_the_runs_and_need_every_run() {
        let dir = std::env::temp_dir().join(format!("bench-report-runs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // nursery / joinset per run: 0.90, 1.05, 0.95 at N = 1000 (one run over the limit);
        // 0.80, 0.90, 0.85 at N = 100000 (every run under it).
        for (run, (small, large)) in [(900.0, 800.0), (1050.0, 900.0), (950.0, 850.0)]
            .into_iter()
            .enumerate()
        {
            let run_dir = dir.join(format!("run{}", run + 1));
            let group = "spawn_join/current_thread";
            criterion(&run_dir, group, "nursery", "1000", small);
            criterion(&run_dir, group, "joinset", "1000", 1000.0);
            criterion(&run_dir, group, "nursery", "100000", large);
            criterion(&run_dir, group, "joinset", "100000", 1000.0);
        }
        let results = Results::load(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(results.runs.len(), 3);
        let table = results.primary("spawn_join").unwrap();
        let case = table.cases.iter().find(|c| c.param == "1000").unwrap();
        assert_eq!(
            table.get(case, "nursery").unwrap().value,
            950.0,
            "cell median"
        );
        let outcomes = evaluate(&results);
        let find = |case: &str| {
            outcomes
                .iter()
                .find(|o| o.target == "spawn_join: nursery / joinset" && o.case.ends_with(case))
                .unwrap()
        };
        let small = find("children=1000");
        assert_eq!(small.status, Status::Missed, "{small:?}");
        assert!(
            small.measured.starts_with("0.95× [0.90–1.05×]"),
            "{small:?}"
        );
        let large = find("children=100000");
        assert_eq!(large.status, Status::Met, "{large:?}");
        assert!(
            large.measured.starts_with("0.85× [0.80–0.90×]"),
            "{large:?}"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_time(558.08), "558 ns");
        assert_eq!(fmt_time(999.9), "1.00 µs");
        assert_eq!(fmt_time(1_662.8), "1.66 µs");
        assert_eq!(fmt_time(31.04e6), "31.0 ms");
        assert_eq!(fmt_num(1.7), "1.7");
        assert_eq!(fmt_num(1396.6), "1397");
        assert_eq!(fmt_num(0.01234), "0.0123");
        assert_eq!(crate::machine::utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(crate::machine::utc(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn charts_are_drawn_from_results_and_embedded_before_the_notes() {
        let dir = std::env::temp_dir().join(format!("bench-report-charts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let results_dir = dir.join("results");
        std::fs::create_dir_all(&results_dir).unwrap();
        let rows = ["nursery", "joinset"]
            .iter()
            .flat_map(|imp| {
                ["10000", "1000000"]
                    .iter()
                    .map(move |n| Row::new(*n, *imp, if *imp == "nursery" { 400.0 } else { 300.0 }))
            })
            .collect();
        let m = Measurement {
            workload: "rss_scale".into(),
            title: "t".into(),
            metric: "bytes".into(),
            rows,
            notes: vec![],
        };
        std::fs::write(
            results_dir.join("rss_scale.json"),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();
        let results = Results::load(&results_dir);
        let (charts, warnings) = crate::charts::write_all(&results, &dir);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(charts.len(), 1);
        let svg = std::fs::read_to_string(dir.join(&charts[0].path)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("joinset"));
        let report = crate::charts::with_charts("# R\n\n## Notes on misses\n".into(), &charts);
        let at_chart = report.find("![resident memory per live child]").unwrap();
        assert!(at_chart < report.find("## Notes on misses").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
