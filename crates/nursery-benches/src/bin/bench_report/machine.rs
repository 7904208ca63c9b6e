//! What the numbers were measured on: CPU, memory, kernel, toolchain, dependency versions.

use std::path::Path;
use std::process::Command;

use nursery_benches::workspace_root;

/// Dependencies whose resolved versions the report lists (from `Cargo.lock`).
const LOCKED: &[&str] = &[
    "tokio",
    "tokio-util",
    "futures-util",
    "moro",
    "criterion",
    "tokio-tungstenite",
    "tungstenite",
];

/// `(label, value)` lines of the machine section.
pub(crate) fn describe() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let model = field("model name")
        .or_else(|| field("Hardware"))
        .or_else(|| field("uarch"))
        .unwrap_or_else(|| "unknown".into());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut cores = format!("{logical} logical CPUs in /proc/cpuinfo");
    if usable != logical {
        cores.push_str(&format!(", {usable} usable by this process"));
    }

    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "unknown".into());

    let mut lines = vec![
        ("CPU".to_string(), model),
        ("Cores".to_string(), cores),
        ("Memory".to_string(), memory),
        (
            "Kernel".to_string(),
            output("uname", &["-sr"]).unwrap_or_else(|| "unknown".into()),
        ),
        (
            "Compiler".to_string(),
            output("rustc", &["-V"]).unwrap_or_else(|| "unknown".into()),
        ),
    ];
    if let Some(commit) = output("git", &["rev-parse", "--short", "HEAD"]) {
        lines.push(("Commit".to_string(), commit));
    }
    let versions = locked_versions(&workspace_root().join("Cargo.lock"));
    lines.push(("Dependencies (Cargo.lock)".to_string(), versions));
    lines.push((
        "Tracing subscriber".to_string(),
        "none installed (benches run without tracing output)".to_string(),
    ));
    lines
}

/// The first line of a command's output, run in the workspace root.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(text.lines().next()?.trim().to_string()).filter(|s| !s.is_empty())
}

/// `tokio 1.54.1, tokio-util 0.7.20, ...`: every version of each [`LOCKED`] package.
fn locked_versions(lock: &Path) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut found: Vec<(String, String)> = Vec::new();
    for block in text.split("[[package]]").skip(1) {
        let value = |key: &str| {
            block.lines().find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        if let (Some(name), Some(version)) = (value("name"), value("version")) {
            found.push((name, version));
        }
    }
    LOCKED
        .iter()
        .map(|name| {
            let versions: Vec<&str> = found
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            if versions.is_empty() {
                format!("{name} (not in Cargo.lock)")
            } else {
                format!("{name} {}", versions.join(" + "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub(crate) fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}
