//! The performance targets and their evaluation, per case, on every runtime present.

use crate::data::{Case, Cell, Results, Table, SUBJECT};
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
    /// `subject value / peer value` against `limit`, in the cases whose parameter contains
    /// `case` (every case if empty): for tables whose implementations are not [`SUBJECT`] and
    /// peers (a policy against a plain nursery) or that hold several workloads (the
    /// instruction counts).
    Pair {
        case: &'static str,
        subject: &'static str,
        peer: &'static str,
    },
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

/// `subject / peer` in every case of a timed workload, at most `limit`.
const fn pair(
    workload: &'static str,
    subject: &'static str,
    peer: &'static str,
    limit: f64,
) -> Target {
    Target {
        workload,
        rule: Rule::Pair {
            case: "",
            subject,
            peer,
        },
        cmp: Cmp::Le,
        limit,
    }
}

/// `subject / peer` in the instruction counts of the workload named by `case`.
const fn counted(
    case: &'static str,
    subject: &'static str,
    peer: &'static str,
    cmp: Cmp,
    limit: f64,
) -> Target {
    Target {
        workload: "instructions",
        rule: Rule::Pair {
            case,
            subject,
            peer,
        },
        cmp,
        limit,
    }
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
    // Timed: a supervisor and a limited nursery against a plain one, per child.
    pair("policy", "supervisor", "plain", 1.1),
    pair("policy", "limit_unreached", "plain", 1.1),
    Target {
        workload: "local_get",
        rule: Rule::Ratio { peer: "task_local" },
        cmp: Cmp::Le,
        limit: 1.2,
    },
    // Instructions (callgrind), identical on every run: the gate wherever a count applies.
    counted("spawn_join,", "nursery", "joinset", Cmp::Le, 1.0),
    counted("spawn_join_typical,", "nursery", "joinset", Cmp::Le, 1.0),
    counted("scope_ready,", "nursery", "timeout", Cmp::Le, 1.5),
    counted("scope_ready,", "nursery_plain", "timeout", Cmp::Le, 1.5),
    counted("borrowing,", "nursery", "futures_unordered", Cmp::Le, 1.5),
    counted("borrowing,", "nursery", "moro", Cmp::Lt, 1.0),
    counted("policy,", "supervisor", "plain", Cmp::Le, 1.1),
    counted("policy,", "limit_unreached", "plain", Cmp::Le, 1.1),
    counted("locals,", "get", "task_local_get", Cmp::Le, 1.2),
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

/// One case's figure: the ratio checked against the limit, and what it was computed from.
#[derive(Debug, Clone)]
struct Figure {
    ratio: f64,
    /// E.g. `(373 µs / 412 µs)`.
    detail: String,
}

impl Target {
    fn name(&self) -> String {
        let what = match self.rule {
            Rule::Ratio { peer } => format!("{SUBJECT} / {peer}"),
            Rule::Pair { subject, peer, .. } => format!("{subject} / {peer}"),
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

    /// The outcome of one case from the figure of the (merged) results and the ratios of
    /// each run: the median ratio with its spread, met only if every run meets the limit.
    fn outcome(&self, case: String, merged: Option<Figure>, per_run: Option<Vec<f64>>) -> Outcome {
        let (status, measured) = match (merged, per_run) {
            (None, _) => (Status::NotMeasured, "not measured".to_string()),
            (Some(figure), None) => {
                let met = self.cmp.holds(figure.ratio, self.limit);
                (
                    met_or_missed(met),
                    format!("{:.2}× {}", figure.ratio, figure.detail),
                )
            }
            (Some(figure), Some(ratios)) => {
                let median = crate::median::median(&ratios).unwrap_or(figure.ratio);
                let worst = ratios.iter().copied().fold(f64::MIN, f64::max);
                let best = ratios.iter().copied().fold(f64::MAX, f64::min);
                let met = self.cmp.holds(worst, self.limit);
                let spread = if (worst - best).abs() < 0.005 {
                    String::new()
                } else {
                    format!(" [{best:.2}–{worst:.2}×]")
                };
                let text = format!("{median:.2}×{spread} {}", figure.detail);
                (met_or_missed(met), text)
            }
        };
        Outcome {
            target: self.name(),
            case,
            measured,
            limit: self.limit_text(),
            status,
        }
    }

    /// `(case label, figure)` per case of the workload that concerns this target (`None`:
    /// only half the data).
    fn figures(&self, results: &Results) -> Vec<(String, Option<Figure>)> {
        let Some(table) = results.primary(self.workload) else {
            return Vec::new();
        };
        match self.rule {
            Rule::Linear { small, large, per } => self.linear(table, (small, large), per),
            _ => table
                .cases
                .iter()
                .filter_map(|case| Some((case_label(table, case), self.figure(table, case)?)))
                .collect(),
        }
    }

    /// One outcome per case of the workload (one "not measured" if there is none).
    fn evaluate(&self, results: &Results) -> Vec<Outcome> {
        let runs: Vec<Vec<(String, Option<Figure>)>> =
            results.runs.iter().map(|run| self.figures(run)).collect();
        let mut outcomes: Vec<Outcome> = self
            .figures(results)
            .into_iter()
            .map(|(case, merged)| {
                let per_run = (!runs.is_empty()).then(|| {
                    runs.iter()
                        .map(|run| {
                            run.iter()
                                .find(|(c, _)| *c == case)
                                .and_then(|(_, f)| f.as_ref())
                                // A run without the figure (its bench failed) cannot meet it.
                                .map_or(f64::INFINITY, |f| f.ratio)
                        })
                        .collect()
                });
                self.outcome(case, merged, per_run)
            })
            .collect();
        if outcomes.is_empty() {
            outcomes.push(self.outcome("—".into(), None, None));
        }
        outcomes
    }

    /// `None`: the case has nothing to do with this target; `Some(None)`: half the data.
    #[allow(clippy::option_option)]
    fn figure(&self, table: &Table, case: &Case) -> Option<Option<Figure>> {
        let fmt = |v: f64| {
            if table.is_timing() {
                fmt_time(v)
            } else {
                fmt_num(v)
            }
        };
        let ratio_of = |subject: Option<&Cell>, peer: Option<&Cell>| {
            if subject.is_none() && peer.is_none() {
                return None;
            }
            Some(subject.zip(peer).map(|(s, p)| Figure {
                ratio: s.value / p.value,
                detail: format!("({} / {})", fmt(s.value), fmt(p.value)),
            }))
        };
        match self.rule {
            Rule::Ratio { peer } => ratio_of(table.get(case, SUBJECT), table.get(case, peer)),
            Rule::Pair {
                case: wanted,
                subject,
                peer,
            } => {
                if !case.param.contains(wanted) {
                    return None;
                }
                ratio_of(table.get(case, subject), table.get(case, peer))
            }
            Rule::ExtraRatio { key, peer } => {
                let subject = table.get(case, SUBJECT);
                let peer = table.get(case, peer);
                if subject.is_none() && peer.is_none() {
                    return None;
                }
                let pick = |cell: Option<&Cell>| cell?.extra.get(key).copied();
                Some(pick(subject).zip(pick(peer)).map(|(s, p)| Figure {
                    ratio: s / p,
                    detail: format!("({} / {})", fmt_num(s), fmt_num(p)),
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
    ) -> Vec<(String, Option<Figure>)> {
        let mut runtimes: Vec<&str> = table.cases.iter().map(|c| c.runtime.as_str()).collect();
        runtimes.dedup();
        let mut figures = Vec::new();
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
            let figure = match (at(small), at(large)) {
                (Some(s), Some(l)) => Some(Figure {
                    ratio: l / s,
                    detail: format!(
                        "({}/{per} at {} vs {}/{per} at {})",
                        fmt_time(l),
                        fmt_num(large),
                        fmt_time(s),
                        fmt_num(small)
                    ),
                }),
                (None, None) => continue,
                _ => None,
            };
            figures.push((label.to_string(), figure));
        }
        figures
    }
}

fn met_or_missed(met: bool) -> Status {
    if met {
        Status::Met
    } else {
        Status::Missed
    }
}

/// Every target, in [`TARGETS`] order.
pub(crate) fn evaluate(results: &Results) -> Vec<Outcome> {
    TARGETS.iter().flat_map(|t| t.evaluate(results)).collect()
}
