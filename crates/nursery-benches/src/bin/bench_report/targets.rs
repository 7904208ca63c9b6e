//! The performance targets and their evaluation, per case, on every runtime present.

use crate::data::{Case, Results, Table, SUBJECT};
use crate::render::{case_label, fmt_num, fmt_time};

/// How a measured figure is compared with its limit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmp {
    /// `≤`
    Le,
    /// `<`
    Lt,
}

impl Cmp {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Cmp::Le => measured <= limit,
            Cmp::Lt => measured < limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Le => "≤",
            Cmp::Lt => "<",
        }
    }
}

/// What a target checks, in each case of its workload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule {
    /// `nursery value / peer value` against `limit`.
    Ratio { peer: &'static str },
    /// `nursery extra[key] / peer extra[key]` against `limit`.
    ExtraRatio {
        key: &'static str,
        peer: &'static str,
    },
    /// Per runtime: `(value at large / large)` against `limit ×` `(value at small / small)`;
    /// `per` names the unit (a level, a child).
    Linear {
        small: f64,
        large: f64,
        per: &'static str,
    },
}

/// One target.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) workload: &'static str,
    pub(crate) rule: Rule,
    pub(crate) cmp: Cmp,
    pub(crate) limit: f64,
}

/// The targets. Edit here.
pub(crate) const TARGETS: &[Target] = &[
    Target {
        workload: "spawn_join",
        rule: Rule::Ratio { peer: "joinset" },
        cmp: Cmp::Le,
        limit: 1.0,
    },
    Target {
        workload: "spawn_join",
        rule: Rule::Ratio { peer: "raw_spawn" },
        cmp: Cmp::Le,
        limit: 1.3,
    },
    Target {
        workload: "spawn_join_typical",
        rule: Rule::Ratio { peer: "joinset" },
        cmp: Cmp::Le,
        limit: 1.0,
    },
    Target {
        workload: "spawn_join_typical",
        rule: Rule::Ratio { peer: "raw_spawn" },
        cmp: Cmp::Le,
        limit: 1.3,
    },
    Target {
        workload: "cancel_fanout",
        rule: Rule::Ratio {
            peer: "tracker_token",
        },
        cmp: Cmp::Le,
        limit: 1.0,
    },
    Target {
        workload: "cancel_nested",
        rule: Rule::Linear {
            small: 1000.0,
            large: 5000.0,
            per: "level",
        },
        cmp: Cmp::Le,
        limit: 1.25,
    },
    Target {
        workload: "scope_ready",
        rule: Rule::Ratio { peer: "timeout" },
        cmp: Cmp::Le,
        limit: 1.5,
    },
    Target {
        workload: "borrowing",
        rule: Rule::Ratio {
            peer: "futures_unordered",
        },
        cmp: Cmp::Le,
        limit: 1.5,
    },
    Target {
        workload: "borrowing",
        rule: Rule::Ratio { peer: "moro" },
        cmp: Cmp::Lt,
        limit: 1.0,
    },
    Target {
        workload: "heap_per_child",
        rule: Rule::Ratio { peer: "joinset" },
        cmp: Cmp::Le,
        limit: 1.0,
    },
    // p99 from the fault to the caller holding the typed error, against a hand-written
    // `select!` that also closes the connection, in the same run (an absolute bound is out of
    // reach of the hand-written baseline itself on a shared 2-core machine).
    Target {
        workload: "force_exit",
        rule: Rule::Ratio {
            peer: "select_baseline",
        },
        cmp: Cmp::Le,
        limit: 1.25,
    },
    Target {
        workload: "echo_throughput",
        rule: Rule::Ratio {
            peer: "ws_baseline",
        },
        cmp: Cmp::Le,
        limit: 1.05,
    },
    // CPU and resident memory of 10 000 idle connections against the hand-written client with
    // the same read buffer, in the same run (the kernel's share alone is beyond an absolute 5 %).
    Target {
        workload: "idle_connections",
        rule: Rule::Ratio {
            peer: "ws_baseline_4k",
        },
        cmp: Cmp::Le,
        limit: 1.1,
    },
    Target {
        workload: "idle_connections",
        rule: Rule::ExtraRatio {
            key: "rss_mb",
            peer: "ws_baseline_4k",
        },
        cmp: Cmp::Le,
        limit: 1.2,
    },
    Target {
        workload: "rss_scale",
        rule: Rule::Ratio { peer: "joinset" },
        cmp: Cmp::Le,
        limit: 1.1,
    },
    Target {
        workload: "cancel_scale",
        rule: Rule::Linear {
            small: 10_000.0,
            large: 1_000_000.0,
            per: "child",
        },
        cmp: Cmp::Le,
        limit: 1.25,
    },
    Target {
        workload: "tower_layer",
        rule: Rule::Ratio { peer: "bare" },
        cmp: Cmp::Le,
        limit: 1.1,
    },
];

/// Met, missed, or no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Met,
    Missed,
    NotMeasured,
}

/// One target in one case.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// E.g. `spawn_join: nursery / joinset`.
    pub(crate) target: String,
    /// E.g. `multi_thread, children=1000`, or `—`.
    pub(crate) case: String,
    pub(crate) measured: String,
    /// E.g. `≤ 1.00×`.
    pub(crate) limit: String,
    pub(crate) status: Status,
}

impl Target {
    fn name(&self) -> String {
        let what = match self.rule {
            Rule::Ratio { peer } => format!("{SUBJECT} / {peer}"),
            Rule::ExtraRatio { key, peer } => format!("{SUBJECT} / {peer} {key}"),
            Rule::Linear { small, large, per } => format!(
                "{SUBJECT} per {per}, {} vs {}",
                fmt_num(large),
                fmt_num(small)
            ),
        };
        format!("{}: {what}", self.workload)
    }

    fn limit_text(&self) -> String {
        format!("{} {:.2}×", self.cmp.symbol(), self.limit)
    }

    fn outcome(&self, case: String, measured: Option<(f64, String)>) -> Outcome {
        let (status, measured) = match measured {
            Some((figure, text)) if self.cmp.holds(figure, self.limit) => (Status::Met, text),
            Some((_, text)) => (Status::Missed, text),
            None => (Status::NotMeasured, "not measured".into()),
        };
        Outcome {
            target: self.name(),
            case,
            measured,
            limit: self.limit_text(),
            status,
        }
    }

    /// One outcome per case of the workload (one "not measured" if there is none).
    fn evaluate(&self, results: &Results) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        if let Some(table) = results.primary(self.workload) {
            match self.rule {
                Rule::Linear { small, large, per } => {
                    self.linear(table, (small, large), per, &mut outcomes);
                }
                _ => {
                    for case in &table.cases {
                        if let Some(measured) = self.figure(table, case) {
                            outcomes.push(self.outcome(case_label(table, case), measured));
                        }
                    }
                }
            }
        }
        if outcomes.is_empty() {
            outcomes.push(self.outcome("—".into(), None));
        }
        outcomes
    }

    /// `None`: the case has nothing to do with this target; `Some(None)`: half the data.
    #[allow(clippy::option_option)]
    fn figure(&self, table: &Table, case: &Case) -> Option<Option<(f64, String)>> {
        let subject = table.get(case, SUBJECT);
        let fmt = |v: f64| {
            if table.is_timing() {
                fmt_time(v)
            } else {
                fmt_num(v)
            }
        };
        match self.rule {
            Rule::Ratio { peer } => {
                let peer = table.get(case, peer);
                if subject.is_none() && peer.is_none() {
                    return None;
                }
                Some(subject.zip(peer).map(|(s, p)| {
                    let ratio = s.value / p.value;
                    (
                        ratio,
                        format!("{ratio:.2}× ({} / {})", fmt(s.value), fmt(p.value)),
                    )
                }))
            }
            Rule::ExtraRatio { key, peer } => {
                let peer = table.get(case, peer);
                if subject.is_none() && peer.is_none() {
                    return None;
                }
                let pick = |cell: Option<&crate::data::Cell>| cell?.extra.get(key).copied();
                Some(pick(subject).zip(pick(peer)).map(|(s, p)| {
                    let ratio = s / p;
                    (
                        ratio,
                        format!("{ratio:.2}× ({} / {})", fmt_num(s), fmt_num(p)),
                    )
                }))
            }
            Rule::Linear { .. } => None,
        }
    }

    fn linear(
        &self,
        table: &Table,
        (small, large): (f64, f64),
        per: &str,
        outcomes: &mut Vec<Outcome>,
    ) {
        let mut runtimes: Vec<&str> = table.cases.iter().map(|c| c.runtime.as_str()).collect();
        runtimes.dedup();
        for runtime in runtimes {
            let at = |depth: f64| {
                table
                    .cases
                    .iter()
                    .filter(|c| c.runtime == runtime && c.number() == Some(depth))
                    .find_map(|c| table.get(c, SUBJECT))
                    .map(|cell| cell.value / depth)
            };
            let label = if runtime.is_empty() { "—" } else { runtime };
            let measured = match (at(small), at(large)) {
                (Some(s), Some(l)) => {
                    let ratio = l / s;
                    let text = format!(
                        "{ratio:.2}× ({}/{per} at {} vs {}/{per} at {})",
                        fmt_time(l),
                        fmt_num(large),
                        fmt_time(s),
                        fmt_num(small)
                    );
                    Some((ratio, text))
                }
                (None, None) => continue,
                _ => None,
            };
            outcomes.push(self.outcome(label.to_string(), measured));
        }
    }
}

/// Every target, in [`TARGETS`] order.
pub(crate) fn evaluate(results: &Results) -> Vec<Outcome> {
    TARGETS.iter().flat_map(|t| t.evaluate(results)).collect()
}
