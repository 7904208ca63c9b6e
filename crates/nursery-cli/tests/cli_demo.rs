//! `nursery demo`, run as a user would: it finishes, prints the table, and leaves no task
//! alive.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_short_demo_prints_the_table_and_leaves_no_task_alive() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_nursery"))
        .args([
            "demo",
            "--clients",
            "12",
            "--duration",
            "2s",
            "--fault-rate",
            "8",
        ])
        .args(["--seed", "7", "--no-progress"])
        .output()
        .expect("run nursery demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "Losses by reason",
        "fault injected",
        "p50",
        "p99",
        "cleanups run",
        "tasks left alive                   0 ",
        "(0 without an injected fault)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Every connection opened was closed: "cleanups run  N of N connections closed".
    let cleanups = stdout
        .lines()
        .find(|l| l.contains("cleanups run"))
        .expect("cleanups line");
    let numbers: Vec<u64> = cleanups
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers[0], numbers[1], "{cleanups}");
    assert!(started.elapsed() < Duration::from_secs(30), "hang detector");
}

#[test]
fn bad_options_are_refused_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_nursery"))
        .args(["demo", "--duration", "soon"])
        .output()
        .expect("run nursery demo");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a duration"), "{stderr}");
}
