//! The command line: subcommands, their options, and the parsers of durations and rates.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Structured concurrency for connections: force-exit on loss, typed errors, cleanup that
/// always runs.
#[derive(Debug, Parser)]
#[command(name = "nursery", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run supervised WebSocket clients against an embedded server that injects faults, then
    /// print what happened.
    Demo(DemoOptions),
    /// Supervise a real WebSocket endpoint with reconnects, print its events and messages, and
    /// send it the lines typed or piped on stdin (Ctrl-C to stop).
    #[command(after_help = WATCH_AFTER_HELP)]
    Watch(WatchOptions),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DemoOptions {
    /// Number of supervised clients.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub(crate) clients: u32,
    /// How long the clients run, e.g. `10s`, `1500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Faults injected per second, across all clients.
    #[arg(long, default_value_t = 5.0, value_parser = parse_rate)]
    pub(crate) fault_rate: f64,
    /// Seed of the fault schedule and of the reconnect jitter.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Bound on each connection's close.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub(crate) close_timeout: Duration,
    /// Silence from the server before the client pings it.
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub(crate) heartbeat_interval: Duration,
    /// How long an unanswered ping is given before the connection counts as lost.
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub(crate) heartbeat_timeout: Duration,
    /// Do not draw the progress bar.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// The end of `nursery watch --help`: signals, sending, and what the exit status means.
const WATCH_AFTER_HELP: &str = "\
Sending:
  Each `--send` message is sent on every connect, in order (to subscribe, or re-subscribe after
  a reconnect); then each line read from stdin is sent once, as a text message (a line that is
  not UTF-8 goes as a binary message). Lines typed while no connection is up wait for the next
  one. A line whose send a lost connection cut short is sent again on the next connection, so
  it may arrive twice but is never dropped. The end of stdin ends sending, not watching.

Stopping:
  The first Ctrl-C (SIGINT) or SIGTERM closes the connection gracefully (close code 1000,
  bounded by --close-timeout); a second one exits at once, without waiting for the close.

Exit status:
  0    stopped by Ctrl-C or SIGTERM, after the close (answered, or dropped at --close-timeout)
  1    gave up: --max-attempts reached, or a permanent connect error (the server answered the
       upgrade with an HTTP status other than 408, 429 or 5xx, or a URL error); not retried.
       Connect timeouts (--connect-timeout), refusals and resets are retried
  2    the command line is wrong (unknown option, bad value, a URL that is not ws:// or wss://)
  130  a second Ctrl-C: exited without waiting for the close
  143  a second SIGTERM: exited without waiting for the close";

#[derive(Debug, Clone, Args)]
pub(crate) struct WatchOptions {
    /// The endpoint, e.g. `ws://127.0.0.1:9000/feed`.
    pub(crate) url: String,
    /// A text message to send on every connect, before the stdin lines (repeatable; sent in the
    /// order given).
    #[arg(long = "send", value_name = "TEXT")]
    pub(crate) send: Vec<String>,
    /// Do not read stdin (nothing but `--send` messages is sent).
    #[arg(long)]
    pub(crate) no_stdin: bool,
    /// Bound on each connect attempt (TCP connect and the WebSocket upgrade): a stalled server
    /// is reported as a timeout and retried.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// For `wss://`: trust the CA certificates in this PEM file (a private CA) instead of the
    /// bundled public roots.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// Silence from the endpoint before a ping is sent.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) heartbeat_interval: Duration,
    /// How long an unanswered ping is given before the connection counts as lost.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) heartbeat_timeout: Duration,
    /// Bound on the close handshake.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) close_timeout: Duration,
    /// Stop after this many connect attempts (default: never).
    #[arg(long)]
    pub(crate) max_attempts: Option<u32>,
    /// Print at most this many bytes of each message, received or sent.
    #[arg(long, default_value_t = 120)]
    pub(crate) max_print: usize,
}

/// Parses `250ms`, `10s`, `2m`, or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 500ms, 10s or 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if rate.is_finite() && rate >= 0.0 {
        Ok(rate)
    } else {
        Err("the fault rate must be a finite number >= 0".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
