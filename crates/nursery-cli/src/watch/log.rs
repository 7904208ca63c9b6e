//! What `nursery watch` prints: every line stamped with the time since start, the events of
//! the reconnect loop in words that match what happened (with the real elapsed times), and
//! the messages both ways. It also remembers whether a connection is open, for the last line.

use std::sync::Mutex;
use std::time::Duration;

use nursery_net::tungstenite::Message;
use nursery_net::{Event, GiveUp, LossReason};
use tokio::time::Instant;

/// The printer, shared by the event callback, the bodies and the signal task.
#[derive(Debug)]
pub(super) struct Log {
    started: Instant,
    max_print: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    attempt_started: Option<Instant>,
    connected_at: Option<Instant>,
    last_message: Option<Instant>,
    open: bool,
    attempt: u32,
    last_close: Option<(Duration, bool)>,
}

impl Log {
    /// A printer whose clock starts now, showing at most `max_print` bytes of a message.
    pub(super) fn new(max_print: usize) -> Self {
        Log {
            started: Instant::now(),
            max_print,
            state: Mutex::default(),
        }
    }

    /// Prints `text` to stdout after the time stamp.
    pub(super) fn line(&self, text: impl std::fmt::Display) {
        println!("[{:>9.3}s] {text}", self.started.elapsed().as_secs_f64());
    }

    /// How long since the printer started.
    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether a connection is open (connected and not yet closed).
    pub(super) fn is_open(&self) -> bool {
        self.state().open
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the last close took, and whether it timed out.
    pub(super) fn last_close(&self) -> Option<(Duration, bool)> {
        self.state().last_close
    }

    /// Prints a message that arrived.
    pub(super) fn received(&self, message: &Message) {
        self.state().last_message = Some(Instant::now());
        self.line(format!("received {}", render(message, self.max_print)));
    }

    /// Prints a message that was sent.
    pub(super) fn sent(&self, message: &Message) {
        self.line(format!("sent {}", render(message, self.max_print)));
    }

    /// Prints an event of the reconnect loop.
    pub(super) fn event(&self, event: &Event) {
        let now = Instant::now();
        let since = |at: Option<Instant>| at.map(|at| now - at).unwrap_or_default();
        let text = {
            let mut state = self.state();
            match event {
                Event::Connecting { attempt } => {
                    (state.attempt_started, state.attempt) = (Some(now), *attempt);
                    format!("attempt {attempt}: connecting")
                }
                Event::Connected { attempt } => {
                    let took = since(state.attempt_started);
                    (state.connected_at, state.last_message, state.open) = (Some(now), None, true);
                    format!("attempt {attempt}: connected in {}", secs(took))
                }
                Event::ConnectFailed { attempt, error } => format!(
                    "attempt {attempt}: connect failed after {}: {error}",
                    secs(since(state.attempt_started))
                ),
                Event::Closed {
                    attempt,
                    took,
                    timed_out,
                } => {
                    (state.open, state.last_close) = (false, Some((*took, *timed_out)));
                    match timed_out {
                        false => format!("attempt {attempt}: closed in {}", secs(*took)),
                        true => format!("attempt {attempt}: close timed out after {}", secs(*took)),
                    }
                }
                Event::Lost { attempt, reason } => format!(
                    "attempt {attempt}: connection lost after {} connected: {}",
                    secs(since(state.connected_at)),
                    loss(reason, &state, now)
                ),
                Event::Retrying { attempt, delay } => {
                    format!("attempt {attempt}: reconnecting in {}", secs(*delay))
                }
                Event::GaveUp {
                    attempts,
                    why: GiveUp::Permanent,
                    error,
                } => format!("attempt {attempts}: {error} (permanent, not retried)",),
                Event::GaveUp {
                    attempts,
                    why,
                    error,
                } => format!(
                    "gave up after {attempts} attempts in {} ({why}): {error}",
                    secs(self.started.elapsed())
                ),
                other => other.to_string(),
            }
        };
        self.line(text);
    }
}

/// The loss in words; for a heartbeat timeout, the real silence rather than the timeout alone
/// (the ping is sent only after the heartbeat interval of silence).
fn loss(reason: &LossReason, state: &State, now: Instant) -> String {
    match reason {
        LossReason::HeartbeatTimeout { timeout } => {
            let silence = match (state.last_message, state.connected_at) {
                (Some(at), _) => format!("last message received {} ago", secs(now - at)),
                (None, Some(at)) => format!("no message since connecting {} ago", secs(now - at)),
                (None, None) => "no message".to_owned(),
            };
            format!(
                "heartbeat timeout: a ping went unanswered for {}; {silence}",
                secs(*timeout)
            )
        }
        other => other.to_string(),
    }
}

/// A duration for people: `850ms`, `3.2ms`, `15.0s`.
pub(super) fn secs(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else if d >= Duration::from_millis(10) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    }
}

fn render(message: &Message, max: usize) -> String {
    let (kind, bytes) = match message {
        Message::Text(text) => ("text", text.as_bytes()),
        Message::Binary(data) => ("binary", &data[..]),
        _ => ("other", &[][..]),
    };
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    let more = if bytes.len() > max { "…" } else { "" };
    format!("{kind} ({} bytes): {shown}{more}", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(secs(Duration::from_millis(15_040)), "15.0s");
        assert_eq!(secs(Duration::from_millis(850)), "850ms");
        assert_eq!(secs(Duration::from_micros(3_200)), "3.2ms");
    }

    #[test]
    fn a_heartbeat_loss_names_the_real_silence() {
        let now = Instant::now();
        let state = State {
            connected_at: Some(now - Duration::from_secs(15)),
            ..State::default()
        };
        let reason = LossReason::HeartbeatTimeout {
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            loss(&reason, &state, now),
            "heartbeat timeout: a ping went unanswered for 5.0s; no message since connecting 15.0s ago"
        );
    }

    #[test]
    fn messages_are_cut_at_the_limit() {
        assert_eq!(render(&Message::text("hello"), 3), "text (5 bytes): hel…");
        assert_eq!(
            render(&Message::binary(vec![b'a']), 3),
            "binary (1 bytes): a"
        );
    }
}
