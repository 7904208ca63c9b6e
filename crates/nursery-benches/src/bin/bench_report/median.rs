//! Combining the timed runs: each cell's median over the runs for the tables, and each target's
//! ratios run by run (subject and peer always from the same run) for the summary.

use std::collections::BTreeMap;

use crate::data::{Cell, Results, Table};

/// The median of `values` (the mean of the middle two for an even count); `None` if empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// One table per workload and source, each cell the median of that cell over `runs` (its
/// confidence interval is the one of the run closest to the median); tables and cells present
/// in only some runs are kept with the runs that have them.
pub(crate) fn of_runs(runs: &[Results]) -> Results {
    let mut merged = Results::default();
    for run in runs {
        for warning in &run.warnings {
            if !merged.warnings.contains(warning) {
                merged.warnings.push(warning.clone());
            }
        }
        for table in &run.tables {
            let known = merged.tables.iter().any(|t| same_table(t, table));
            if !known {
                merged.tables.push(merge_table(table, runs));
            }
        }
    }
    merged
}

fn same_table(a: &Table, b: &Table) -> bool {
    a.workload == b.workload && a.is_timing() == b.is_timing()
}

/// `first`'s layout, with every cell (of any run) replaced by its median over the runs.
fn merge_table(first: &Table, runs: &[Results]) -> Table {
    let same: Vec<&Table> = runs
        .iter()
        .filter_map(|run| run.tables.iter().find(|t| same_table(t, first)))
        .collect();
    let mut table = Table::new(&first.workload, first.source.clone());
    for other in &same {
        for case in &other.cases {
            for implementation in &other.implementations {
                if table.get(case, implementation).is_some() {
                    continue;
                }
                let cells: Vec<&Cell> = same
                    .iter()
                    .filter_map(|t| t.get(case, implementation))
                    .collect();
                if let Some(cell) = median_cell(&cells) {
                    table.insert(case.clone(), implementation.clone(), cell);
                }
            }
        }
    }
    // Keep the display order the first run's table was sorted into.
    order_like(&mut table.cases, &first.cases);
    order_like(&mut table.implementations, &first.implementations);
    table
}

/// Sorts `items` into the order they have in `reference`; items it lacks go last.
fn order_like<T: PartialEq>(items: &mut [T], reference: &[T]) {
    items.sort_by_key(|item| {
        reference
            .iter()
            .position(|r| r == item)
            .unwrap_or(usize::MAX)
    });
}

fn median_cell(cells: &[&Cell]) -> Option<Cell> {
    let values: Vec<f64> = cells.iter().map(|c| c.value).collect();
    let value = median(&values)?;
    let closest = cells
        .iter()
        .min_by(|a, b| (a.value - value).abs().total_cmp(&(b.value - value).abs()))?;
    let keys: Vec<&String> = cells.iter().flat_map(|c| c.extra.keys()).collect();
    let mut extra = BTreeMap::new();
    for key in keys {
        let values: Vec<f64> = cells
            .iter()
            .filter_map(|c| c.extra.get(key).copied())
            .collect();
        if let Some(m) = median(&values) {
            extra.insert(key.clone(), m);
        }
    }
    Some(Cell {
        value,
        ci: closest.ci,
        extra,
    })
}

/// The report's header line saying how timed targets were decided.
pub(crate) fn header_line(timed_runs: usize) -> String {
    if timed_runs < 2 {
        return "- **Timed runs**: one; a timed ratio here is a single run's and may move by \
10–30 % on another.\n"
            .to_string();
    }
    format!(
        "- **Timed runs**: every timed bench ran {timed_runs} times, in {timed_runs} passes over \
all of them. A timed target shows the median of the {timed_runs} runs' ratios (nursery and peer \
always from the same run) and, in brackets, the lowest and highest; it is met only if every run \
meets it. Tables show each cell's median over the runs. Instruction counts and requested bytes \
repeat exactly and ran once.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
        assert_eq!(median(&[]), None);
    }
}
