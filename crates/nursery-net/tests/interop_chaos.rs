//! A chaos run with an accounting check (DESIGN §5): numbered messages both ways between a
//! supervised `WsConnection` and the Python `websockets` peer (`ws_peer.py server chaos`),
//! across many injected losses of every kind — a clean close by the peer (1001), an abort (no
//! close frame, after the peer's kernel has everything), kill -9 of the peer, SIGSTOP (half-open,
//! found by the heartbeat), an invalid frame from the peer, and an external trigger.
//!
//! Each connection is one supervised run. The body sends `c<i>` (numbered across the whole
//! run), and reads the peer's answers `p<j>` (the peer answers each message with its next two
//! numbers, numbered across connections and peer processes). Past its share of messages the body
//! injects the connection's fault and keeps sending a little, so the loss lands on messages in
//! flight. Per fault kind the harness then checks:
//!
//! - inbound: sent by the peer = read by the body + returned unread + never fully received;
//!   the last term must be 0 for a clean close, an abort (the bytes had left the peer) and an
//!   invalid frame (everything before it was received), and is reported for the others;
//! - outbound: every message handed to `send` was logged by the peer, or returned unsent, or is
//!   in the in-flight report; unsent and logged at once is a failure (a replay would duplicate);
//! - no message twice, none out of order, on either side.
//!
//! It prints `unaccounted: N` per kind. What the library hands back (the connection's
//! `Accounting`) comes through one adapter, `python::returned`. Short run (2,000 messages, 42
//! losses) as a test, in `.ci/run`; the long run (10,500 messages, 240 losses):
//! `NURSERY_PYTHON=.ci/venv/bin/python cargo test -p nursery-net --test interop_chaos --
//! --ignored chaos_long --nocapture`.

#[path = "support/python.rs"]
mod python;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nursery_net::{supervise, Connection, Heartbeat, WsConfig, WsConnection};
use python::{returned, text_of, Line, Peer, HANG_GUARD};
use support::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Close,
    Abort,
    Kill,
    Stop,
    Invalid,
    External,
}

const FAULTS: [Fault; 6] = [
    Fault::Close,
    Fault::Abort,
    Fault::Kill,
    Fault::Stop,
    Fault::Invalid,
    Fault::External,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Close => "close",
            Fault::Abort => "abort",
            Fault::Kill => "kill -9",
            Fault::Stop => "SIGSTOP",
            Fault::Invalid => "invalid",
            Fault::External => "external",
        }
    }

    /// Whether everything the peer sent before the fault reached this side's kernel intact, so
    /// "never fully received" must be 0.
    fn delivers_everything(self) -> bool {
        matches!(self, Fault::Close | Fault::Abort | Fault::Invalid)
    }
}

/// What one connection's body did, and what the library handed back.
#[derive(Debug, Default)]
struct Attempt {
    read: Vec<u64>,
    attempted: Vec<u64>,
    unread: Vec<u64>,
    unsent: Vec<u64>,
    in_flight: Vec<u64>,
    reason: String,
}

/// The number in `c12` / `p34`.
fn seq(text: &str, prefix: char) -> u64 {
    text.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a {prefix}-numbered message: {text:?}"))
}

/// The peer answers each message with two of its own: about as many come in as go out, though
/// the peer stops answering at a fault.
const ANSWERS: &str = "2";

fn config() -> WsConfig {
    // Short, so a stopped peer is found quickly; generous next to a healthy peer's answer.
    let heartbeat = Heartbeat::new(Duration::from_millis(300), Duration::from_millis(700));
    WsConfig::new().heartbeat(heartbeat)
}

/// The body of connection `tag`: `share` numbered messages from `first`, then the fault, then up
/// to `share / 4` more, while reading every answer. Records into `rec` as it goes.
async fn body(
    conn: WsConnection,
    tag: usize,
    fault: Fault,
    (first, share): (u64, u64),
    rec: &Mutex<Attempt>,
    peer: &Mutex<Peer>,
) -> Result<(), AppError> {
    conn.send_text(format!("hello {tag}")).await?;
    let sender = async {
        for (i, n) in (first..).take((share + share / 4) as usize).enumerate() {
            if i as u64 == share {
                match fault {
                    Fault::Close | Fault::Abort | Fault::Invalid => {
                        let kind = format!("{fault:?}").to_lowercase();
                        conn.send_text(format!("!fault {kind}")).await?;
                    }
                    Fault::External => {
                        conn.loss_signal().trigger("chaos: external");
                    }
                    Fault::Kill => peer.lock().unwrap().kill9(),
                    Fault::Stop => peer.lock().unwrap().stop(),
                }
            }
            rec.lock().unwrap().attempted.push(n);
            conn.send_text(format!("c{n}")).await?;
        }
        std::future::pending::<Result<(), AppError>>().await
    };
    let reader = async {
        loop {
            let message = match conn.recv().await {
                Ok(message) => message,
                Err(lost) => return Err::<(), AppError>(lost.into()),
            };
            rec.lock().unwrap().read.push(seq(&text_of(&message), 'p'));
        }
    };
    tokio::try_join!(sender, reader).map(|_| ())
}

/// Everything a chaos run produced: the body's records per connection (with its fault) and
/// every line every peer process logged.
struct Run {
    attempts: Vec<(Fault, Attempt)>,
    lines: Vec<Line>,
    took: Duration,
}

/// The highest `p` number any peer logged as sent, plus one: where a respawned peer goes on.
fn next_peer_seq(lines: &[Line]) -> u64 {
    lines
        .iter()
        .filter(|l| l.kind() == "sending")
        .map(|l| seq(l.arg(1), 'p') + 1)
        .max()
        .unwrap_or(0)
}

async fn run_chaos(messages: u64, losses: usize) -> Option<Run> {
    let started = Instant::now();
    let peer = python::server("chaos", "chaos", &["--answers", ANSWERS]).await?;
    let mut peer = Mutex::new(peer);
    let mut lines = Vec::new();
    let share = messages.div_ceil(losses as u64);
    let mut next = 0u64;
    let mut attempts = Vec::new();
    for i in 0..losses {
        let (fault, tag) = (FAULTS[i % FAULTS.len()], i + 1);
        let url = peer.lock().unwrap().url();
        let conn = tokio::time::timeout(HANG_GUARD, WsConnection::connect(url, config()))
            .await
            .expect("hang guard: connect")
            .expect("connect");
        let rec = Mutex::new(Attempt::default());
        let supervised = supervise(conn.clone(), |c| {
            body(c, tag, fault, (next, share), &rec, &peer)
        });
        let out = tokio::time::timeout(HANG_GUARD, supervised)
            .await
            .unwrap_or_else(|_| {
                let lines = peer.lock().unwrap().lines();
                let tail: Vec<String> = lines
                    .iter()
                    .rev()
                    .take(12)
                    .map(|l| format!("{l:?}"))
                    .collect();
                panic!(
                    "hang guard: connection {tag} ({}); the peer's last lines: {tail:#?}",
                    fault.name()
                )
            });
        let mut rec = rec.into_inner().unwrap();
        record_returned(&mut rec, &out, &conn);
        next = rec.attempted.last().map_or(next, |n| n + 1);
        let current = peer.get_mut().unwrap();
        if fault == Fault::Kill {
            lines.extend(current.lines());
            let start = next_peer_seq(&lines).to_string();
            drop(std::mem::replace(current, respawn(&start).await));
        } else {
            current.cont();
            // Every message this connection delivered is logged before its `closed` line.
            let tag = tag.to_string();
            current
                .wait_for(|l| l.kind() == "closed" && l.arg(0) == tag)
                .await;
        }
        attempts.push((fault, rec));
    }
    lines.extend(peer.into_inner().unwrap().lines());
    Some(Run {
        attempts,
        lines,
        took: started.elapsed(),
    })
}

async fn respawn(start_seq: &str) -> Peer {
    python::server(
        "chaos",
        "chaos",
        &["--answers", ANSWERS, "--start-seq", start_seq],
    )
    .await
    .expect("the interpreter was found for the first peer")
}

fn record_returned(rec: &mut Attempt, out: &Result<(), AppError>, conn: &WsConnection) {
    rec.reason = match out {
        Ok(()) => "no loss".to_string(),
        Err(AppError::ConnectionLost(lost)) => lost.reason.label().to_string(),
        Err(other) => panic!("the body failed: {other}"),
    };
    let back = returned(out, conn);
    // Only numbered messages are counted; `hello <tag>` and `!fault <kind>` are the harness's
    // own control messages.
    let numbers = |list: &[nursery_net::tungstenite::Message], prefix: char| {
        list.iter()
            .map(text_of)
            .filter(|text| !text.starts_with("hello ") && !text.starts_with("!fault "))
            .map(|text| seq(&text, prefix))
            .collect::<Vec<_>>()
    };
    rec.unread = numbers(&back.unread, 'p');
    rec.unsent = numbers(&back.unsent, 'c');
    rec.in_flight = numbers(&back.in_flight, 'c');
}

/// The accounting of one fault kind.
#[derive(Debug, Default)]
struct Books {
    losses: usize,
    reasons: BTreeMap<String, usize>,
    peer_sent: usize,
    read: usize,
    returned_unread: usize,
    never_received: usize,
    body_sent: usize,
    peer_logged: usize,
    unsent: usize,
    in_flight: usize,
    max_in_flight: usize,
    twice: usize,
    out_of_order: usize,
    unaccounted: usize,
}

/// Counts of `n`s not strictly above their predecessor in `seen` (a message seen twice or out of
/// order), continuing from `last`.
fn disorder(seen: impl IntoIterator<Item = u64>, last: &mut Option<u64>) -> usize {
    let mut bad = 0;
    for n in seen {
        if last.is_some_and(|l| n <= l) {
            bad += 1;
        }
        *last = Some(n);
    }
    bad
}

/// The peer's logged numbers of `kind` lines with `prefix`, by connection tag.
fn peer_numbers(lines: &[Line], kind: &str, prefix: char) -> BTreeMap<String, Vec<u64>> {
    let mut by_tag: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.kind() == kind) {
        if line.arg(1).starts_with(prefix) {
            by_tag
                .entry(line.arg(0).to_string())
                .or_default()
                .push(seq(line.arg(1), prefix));
        }
    }
    by_tag
}

fn account(run: &Run) -> BTreeMap<Fault, Books> {
    let mut peer_sent = peer_numbers(&run.lines, "sending", 'p');
    // A send that failed (this side had closed) never went out.
    for (tag, failed) in peer_numbers(&run.lines, "unsent", 'p') {
        if let Some(sent) = peer_sent.get_mut(&tag) {
            sent.retain(|n| !failed.contains(n));
        }
    }
    let peer_recv = peer_numbers(&run.lines, "recv", 'c');
    let mut books: BTreeMap<Fault, Books> = BTreeMap::new();
    let (mut last_in, mut last_out) = (None, None);
    for (i, (fault, rec)) in run.attempts.iter().enumerate() {
        let tag = (i + 1).to_string();
        let b = books.entry(*fault).or_default();
        b.losses += 1;
        *b.reasons.entry(rec.reason.clone()).or_default() += 1;
        let sent: BTreeSet<u64> = peer_sent.get(&tag).into_iter().flatten().copied().collect();
        let logged = peer_recv.get(&tag).cloned().unwrap_or_default();
        b.out_of_order += disorder(rec.read.iter().chain(&rec.unread).copied(), &mut last_in);
        b.out_of_order += disorder(logged.iter().copied(), &mut last_out);
        let got: BTreeSet<u64> = rec.read.iter().chain(&rec.unread).copied().collect();
        b.twice += rec.read.len() + rec.unread.len() - got.len();
        let never = sent.difference(&got).count();
        let phantom = got.difference(&sent).count();
        b.peer_sent += sent.len();
        b.read += rec.read.len();
        b.returned_unread += rec.unread.len();
        b.never_received += never;
        b.unaccounted += phantom
            + if fault.delivers_everything() {
                never
            } else {
                0
            };
        let logged: BTreeSet<u64> = logged.into_iter().collect();
        let unsent: BTreeSet<u64> = rec.unsent.iter().copied().collect();
        let in_flight: BTreeSet<u64> = rec.in_flight.iter().copied().collect();
        let attempted: BTreeSet<u64> = rec.attempted.iter().copied().collect();
        b.body_sent += attempted.len();
        b.peer_logged += logged.len();
        b.unsent += unsent.len();
        b.in_flight += in_flight.len();
        b.max_in_flight = b.max_in_flight.max(in_flight.len());
        // Returned unsent but delivered: a replay would deliver it twice.
        b.twice += unsent.intersection(&logged).count();
        let accounted = |n: &u64| logged.contains(n) || unsent.contains(n) || in_flight.contains(n);
        b.unaccounted += attempted.iter().filter(|n| !accounted(n)).count();
        b.unaccounted += logged.difference(&attempted).count();
    }
    books
}

fn print_books(run: &Run, books: &BTreeMap<Fault, Books>) {
    let total_out: usize = books.values().map(|b| b.body_sent).sum();
    let total_in: usize = books.values().map(|b| b.peer_sent).sum();
    println!(
        "chaos: {} losses, {total_out} messages out, {total_in} in, in {:?}",
        run.attempts.len(),
        run.took
    );
    for (fault, b) in books {
        println!(
            "  {:>8}: losses {}, reasons {:?}; inbound: peer sent {}, read {}, returned unread \
             {}, never fully received {}; outbound: body sent {}, peer logged {}, unsent {}, \
             in flight {} (max {} per loss); twice {}, out of order {}; unaccounted: {}",
            fault.name(),
            b.losses,
            b.reasons,
            b.peer_sent,
            b.read,
            b.returned_unread,
            b.never_received,
            b.body_sent,
            b.peer_logged,
            b.unsent,
            b.in_flight,
            b.max_in_flight,
            b.twice,
            b.out_of_order,
            b.unaccounted
        );
    }
}

async fn chaos(messages: u64, losses: usize) {
    assert_eq!(losses % FAULTS.len(), 0, "as many losses of each kind");
    let Some(run) = run_chaos(messages, losses).await else {
        return;
    };
    let books = account(&run);
    print_books(&run, &books);
    let mut failures = Vec::new();
    for (fault, b) in &books {
        let per_kind = losses / FAULTS.len();
        assert_eq!(b.losses, per_kind, "{}: every kind as often", fault.name());
        for (what, n) in [
            ("seen twice", b.twice),
            ("out of order", b.out_of_order),
            ("unaccounted", b.unaccounted),
        ] {
            if n > 0 {
                failures.push(format!("{}: {n} {what}", fault.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    let out: usize = books.values().map(|b| b.body_sent).sum();
    assert!(
        out as u64 >= messages,
        "{out} messages sent, {messages} planned"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn chaos_short() {
    chaos(2_000, 42).await;
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "long chaos run, by hand (see the module docs)"]
async fn chaos_long() {
    chaos(10_500, 240).await;
}
