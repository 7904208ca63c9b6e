//! SVG charts for the report, drawn with plotters' SVG backend (text is left to the viewer, so
//! no font library is needed): the cost per child against N for `nursery` and each peer, and
//! the force-exit latency per fault kind.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::data::{Results, Table, SUBJECT};
use crate::render::fmt_num;

/// A chart written next to the report.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    pub(crate) title: String,
    /// Relative to the report's directory.
    pub(crate) path: String,
}

/// `report` with a "Charts" section (the SVG files embedded as images) before the notes.
pub(crate) fn with_charts(report: String, charts: &[Chart]) -> String {
    if charts.is_empty() {
        return report;
    }
    let mut section = String::from("## Charts\n\n");
    for chart in charts {
        let _ = writeln!(section, "![{}]({})\n", chart.title, chart.path);
    }
    match report.find("## Notes on misses") {
        Some(at) => format!("{}{section}{}", &report[..at], &report[at..]),
        None => report + "\n" + &section,
    }
}

/// Where the charts go, relative to the report.
const DIR: &str = "docs/bench";
const SIZE: (u32, u32) = (720, 420);
const PALETTE: [RGBColor; 6] = [
    RGBColor(200, 40, 40),
    RGBColor(30, 100, 200),
    RGBColor(40, 150, 70),
    RGBColor(150, 80, 180),
    RGBColor(220, 140, 20),
    RGBColor(90, 90, 90),
];

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Draws every chart the results allow into `<report dir>/docs/bench/`; problems are returned
/// as warnings, a chart that cannot be drawn is left out.
pub(crate) fn write_all(results: &Results, report_dir: &Path) -> (Vec<Chart>, Vec<String>) {
    let dir = report_dir.join(DIR);
    let (mut charts, mut warnings) = (Vec::new(), Vec::new());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        warnings.push(format!("charts: cannot create {}: {e}", dir.display()));
        return (charts, warnings);
    }
    let mut plans: Vec<(String, String, &str, &str, Series)> = Vec::new();
    for runtime in ["current_thread", "multi_thread"] {
        if let Some(series) = results.primary("spawn_join").map(|t| per_child(t, runtime)) {
            plans.push((
                format!("spawn + join, time per child ({runtime})"),
                format!("spawn_join_{runtime}.svg"),
                "ns per child",
                "children",
                series,
            ));
        }
    }
    if let Some(series) = results.primary("rss_scale").map(|t| per_child(t, "")) {
        plans.push((
            "resident memory per live child".into(),
            "rss_per_child.svg".into(),
            "bytes per child",
            "children",
            series,
        ));
    }
    for (title, name, y, x, series) in plans {
        if series.iter().all(|(_, points)| points.is_empty()) {
            continue;
        }
        match line_chart(&dir.join(&name), &title, x, y, &series) {
            Ok(()) => charts.push(Chart {
                title,
                path: format!("{DIR}/{name}"),
            }),
            Err(e) => warnings.push(format!("chart {title:?}: {e}")),
        }
    }
    if let Some(table) = results.primary("force_exit") {
        let name = "force_exit.svg";
        let title = "force-exit latency per fault kind (p50, p99, max)".to_string();
        match latency_chart(&dir.join(name), &title, table) {
            Ok(()) => charts.push(Chart {
                title,
                path: format!("{DIR}/{name}"),
            }),
            Err(e) => warnings.push(format!("chart {title:?}: {e}")),
        }
    }
    (charts, warnings)
}

/// One series per implementation: (N, value / N) for criterion timings, (N, value) for custom
/// rows that are already per child, over the cases of `runtime`.
fn per_child(table: &Table, runtime: &str) -> Series {
    table
        .implementations
        .iter()
        .map(|implementation| {
            let points = table
                .cases
                .iter()
                .filter(|case| case.runtime == runtime)
                .filter_map(|case| {
                    let n = case.number()?;
                    let cell = table.get(case, implementation)?;
                    let y = if table.is_timing() {
                        cell.value / n
                    } else {
                        cell.value
                    };
                    Some((n, y))
                })
                .collect();
            (implementation.clone(), points)
        })
        .collect()
}

fn color(index: usize, implementation: &str) -> RGBColor {
    if implementation == SUBJECT {
        PALETTE[0]
    } else {
        PALETTE[1 + index % (PALETTE.len() - 1)]
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn line_chart(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &Series) -> DrawResult {
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x));
    let (x_min, x_max) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(0.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0.0..y_max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| fmt_num(*x))
        .y_label_formatter(&|y| fmt_num(*y))
        .draw()?;
    for (index, (implementation, points)) in series.iter().enumerate() {
        let c = color(index, implementation);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
            .label(implementation.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Per case (runtime and fault), per implementation: a bar from p50 to max on a log axis,
/// with p99 marked.
fn latency_chart(path: &Path, title: &str, table: &Table) -> DrawResult {
    let cases = &table.cases;
    let implementations = &table.implementations;
    let width = implementations.len().max(1) as f64;
    let y_max = table
        .cells
        .values()
        .filter_map(|cell| cell.extra.get("max_us").copied())
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (SIZE.0 + 180, SIZE.1 + 60)).into_drawing_area();
    root.fill(&WHITE)?;
    let labels: Vec<String> = cases
        .iter()
        .map(|c| c.param.replace("_thread", ""))
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..cases.len() as f64, (5.0..y_max * 8.0).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(cases.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (*x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("µs from the fault to the typed error")
        .y_label_formatter(&|y| fmt_num(*y))
        .draw()?;
    for (index, implementation) in implementations.iter().enumerate() {
        let c = color(index, implementation);
        let mut marks = Vec::new();
        for (i, case) in cases.iter().enumerate() {
            let Some(cell) = table.get(case, implementation) else {
                continue;
            };
            let x = i as f64 + (index as f64 + 0.5) / width * 0.8 + 0.1;
            let (Some(&p50), Some(&max)) = (cell.extra.get("p50_us"), cell.extra.get("max_us"))
            else {
                continue;
            };
            marks.push((x, p50, cell.value, max));
        }
        chart
            .draw_series(marks.iter().map(|&(x, p50, _, max)| {
                PathElement::new(vec![(x, p50), (x, max)], c.stroke_width(3))
            }))?
            .label(implementation.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        chart.draw_series(
            marks
                .iter()
                .map(|&(x, _, p99, _)| Circle::new((x, p99), 4, c.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
