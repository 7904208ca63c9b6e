//! The table the demo prints at the end, built from the shared state once every task has
//! finished. Last in line: nothing reads it but the demo's entry point.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fault::FaultKind;
use super::state::Demo;
use super::stats::{percentile, Loss, Stats};

/// One row of the table: the losses caused by one kind of fault with one typed reason.
#[derive(Debug)]
pub(super) struct Row {
    pub(super) fault: &'static str,
    pub(super) reason: &'static str,
    pub(super) count: usize,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
}

/// What the demo prints at the end.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) rows: Vec<Row>,
    pub(super) all: Option<(usize, Duration, Duration, Duration)>,
    pub(super) unprovoked: usize,
    pub(super) clients: u32,
    pub(super) elapsed: Duration,
    pub(super) shutdown: Duration,
    pub(super) faults: u64,
    pub(super) connected: u64,
    pub(super) connect_failures: u64,
    pub(super) retries: u64,
    pub(super) closes: u64,
    pub(super) close_timeouts: u64,
    pub(super) echoed: u64,
    pub(super) alive: usize,
    pub(super) settled: Duration,
}

impl Report {
    pub(super) fn new(
        demo: &Demo,
        elapsed: Duration,
        shutdown: Duration,
        alive: usize,
        settled: Duration,
    ) -> Self {
        let stats = &demo.stats;
        let losses = stats.losses();
        let mut groups: BTreeMap<(Option<FaultKind>, &'static str), Vec<Duration>> =
            BTreeMap::new();
        for Loss {
            fault,
            reason,
            latency,
        } in &losses
        {
            groups.entry((*fault, reason)).or_default().push(*latency);
        }
        let mut unprovoked = 0;
        let mut rows = Vec::new();
        let mut provoked = Vec::new();
        for ((fault, reason), mut latencies) in groups {
            let Some(fault) = fault else {
                unprovoked += latencies.len();
                continue;
            };
            latencies.sort();
            provoked.extend_from_slice(&latencies);
            rows.push(row(fault.label(), reason, &latencies));
        }
        provoked.sort();
        let all = (!provoked.is_empty()).then(|| {
            let r = row("", "", &provoked);
            (r.count, r.p50, r.p99, r.max)
        });
        Report {
            rows,
            all,
            unprovoked,
            clients: demo.options.clients,
            elapsed,
            shutdown,
            faults: Stats::get(&stats.faults),
            connected: Stats::get(&stats.connected),
            connect_failures: Stats::get(&stats.connect_failures),
            retries: Stats::get(&stats.retries),
            closes: Stats::get(&stats.closes),
            close_timeouts: Stats::get(&stats.close_timeouts),
            echoed: Stats::get(&stats.echoed),
            alive,
            settled,
        }
    }
}

fn row(fault: &'static str, reason: &'static str, sorted: &[Duration]) -> Row {
    Row {
        fault,
        reason,
        count: sorted.len(),
        p50: percentile(sorted, 50.0).unwrap_or_default(),
        p99: percentile(sorted, 99.0).unwrap_or_default(),
        max: sorted.last().copied().unwrap_or_default(),
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

pub(super) fn print(report: &Report) {
    println!();
    println!("Losses by reason (time from the fault to the caller's typed ConnectionLost):");
    println!();
    println!(
        "  {:<30} {:<18} {:>6} {:>9} {:>9} {:>9}",
        "fault injected", "typed reason", "count", "p50", "p99", "max"
    );
    println!("  {}", "-".repeat(86));
    for r in &report.rows {
        println!(
            "  {:<30} {:<18} {:>6} {:>9} {:>9} {:>9}",
            r.fault,
            r.reason,
            r.count,
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
    }
    if let Some((count, p50, p99, max)) = report.all {
        println!("  {}", "-".repeat(86));
        println!(
            "  {:<30} {:<18} {:>6} {:>9} {:>9} {:>9}",
            "all faults",
            "",
            count,
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    println!();
    let line = |label: &str, value: String| println!("  {label:<34} {value}");
    line("clients", report.clients.to_string());
    line(
        "ran for",
        format!("{:.1?} (shutdown {:.1?})", report.elapsed, report.shutdown),
    );
    let provoked: usize = report.rows.iter().map(|r| r.count).sum();
    line(
        "faults injected",
        format!(
            "{} ({} still unfolding when the run ended)",
            report.faults,
            (report.faults as usize).saturating_sub(provoked)
        ),
    );
    line(
        "losses (typed ConnectionLost)",
        format!(
            "{} ({} without an injected fault)",
            provoked + report.unprovoked,
            report.unprovoked
        ),
    );
    line("connections opened", report.connected.to_string());
    line(
        "reconnects",
        format!(
            "{} ({} failed connects)",
            report.retries, report.connect_failures
        ),
    );
    line("messages echoed", report.echoed.to_string());
    line(
        "cleanups run",
        format!(
            "{} of {} connections closed ({} by the close timeout)",
            report.closes, report.connected, report.close_timeouts
        ),
    );
    line(
        "tasks left alive",
        format!(
            "{} (tokio num_alive_tasks, read {:.1?} after the last nursery returned)",
            report.alive, report.settled
        ),
    );
    println!();
    println!(
        "  Half-open peers are detected by the heartbeat (interval + timeout); after the external \
         trigger\n  the typed error waits for the slow close, bounded by the close timeout."
    );
}
