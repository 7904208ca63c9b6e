//! Python `websockets` peers for the interop tests (`tests/peers/ws_peer.py`): find the
//! interpreter, spawn a peer, wait for the lines it logs, kill it (-9), stop and continue it
//! (half-open), and read its log.
//!
//! The interpreter comes from `NURSERY_PYTHON` (set by `.ci/run` to its virtualenv). Without it
//! a test prints a one-line skip notice and passes, unless `CI=true`, where it fails: CI must
//! never skip the interop tests silently.
//!
//! Include it with `#[path = "support/python.rs"] mod python;`.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nursery_net::tungstenite::Message;
use tokio::sync::Notify;

/// How long any wait on a peer may take before the test fails: a hang guard only (a healthy
/// run waits milliseconds), generous so that a loaded machine never trips it.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/ws_peer.py");

/// The Python interpreter of the interop virtualenv, or `None` (after a one-line notice) when
/// `NURSERY_PYTHON` is unset and `CI` is not `true`.
///
/// # Panics
///
/// When `NURSERY_PYTHON` is unset under `CI=true`, or names a file that does not exist.
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("NURSERY_PYTHON").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "NURSERY_PYTHON={} does not exist (create the virtualenv: see .ci/run)",
                path.display()
            );
            Some(path)
        }
        None if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "CI=true but NURSERY_PYTHON is not set: the interop tests need the Python \
             `websockets` virtualenv that .ci/run creates"
        ),
        None => {
            // Once per test binary, past the test harness's capture (a captured notice of a
            // passing test is never shown).
            static NOTICE: std::sync::Once = std::sync::Once::new();
            NOTICE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped Python interop tests ({test}, ...): NURSERY_PYTHON is not set"
                );
            });
            None
        }
    }
}

/// A line the peer logged: its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line(pub Vec<String>);

impl Line {
    pub fn kind(&self) -> &str {
        self.0.first().map_or("", String::as_str)
    }

    /// The `i`-th word after the kind.
    pub fn arg(&self, i: usize) -> &str {
        self.0.get(i + 1).map_or("", String::as_str)
    }

    /// Everything after the first `i` words following the kind, joined by spaces (a close
    /// reason with spaces in it).
    pub fn rest(&self, i: usize) -> String {
        self.0.get(i + 1..).unwrap_or_default().join(" ")
    }
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<Line>>,
    eof: std::sync::atomic::AtomicBool,
    changed: Notify,
}

/// A running Python peer. Dropping it continues (if stopped) and kills the process.
pub struct Peer {
    child: Child,
    log: Arc<Log>,
    reader: Option<JoinHandle<()>>,
    port: u16,
    stopped: bool,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .finish()
    }
}

/// Spawns `ws_peer.py server <mode> <args..>` and waits for its ready line; `None` when the
/// test is skipped (see [`python`]).
pub async fn server(test: &str, mode: &str, args: &[&str]) -> Option<Peer> {
    let python = python(test)?;
    let mut argv = vec!["server", mode];
    argv.extend_from_slice(args);
    Some(Peer::spawn(&python, &argv).await)
}

/// Spawns `ws_peer.py client <mode> <url> <args..>` and waits for its ready line (the
/// connection is then open, or for `silent`/`trickle` the TCP connection is).
pub async fn client(test: &str, mode: &str, url: &str, args: &[&str]) -> Option<Peer> {
    let python = python(test)?;
    let mut argv = vec!["client", mode, url];
    argv.extend_from_slice(args);
    Some(Peer::spawn(&python, &argv).await)
}

/// Spawns a client without waiting for its ready line: the test accepts the connection first
/// (the client's handshake needs the server).
pub fn client_unready(test: &str, mode: &str, url: &str, args: &[&str]) -> Option<Peer> {
    let python = python(test)?;
    let mut argv = vec!["client", mode, url];
    argv.extend_from_slice(args);
    Some(Peer::start(&python, &argv))
}

impl Peer {
    fn start(python: &PathBuf, argv: &[&str]) -> Peer {
        let mut child = Command::new(python)
            .arg("-u")
            .arg(SCRIPT)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {SCRIPT}: {e}", python.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(Log::default());
        let writer = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // A line without its newline was cut by a kill: not logged.
            while stdout.read_line(&mut line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
                let words = line.trim_end().split(' ').map(str::to_owned).collect();
                line.clear();
                writer.lines.lock().unwrap().push(Line(words));
                writer.changed.notify_waiters();
            }
            writer.eof.store(true, std::sync::atomic::Ordering::SeqCst);
            writer.changed.notify_waiters();
        });
        Peer {
            child,
            log,
            reader: Some(reader),
            port: 0,
            stopped: false,
        }
    }

    async fn spawn(python: &PathBuf, argv: &[&str]) -> Peer {
        let mut peer = Peer::start(python, argv);
        peer.ready().await;
        peer
    }

    /// Waits for the ready line and records the port it names.
    pub async fn ready(&mut self) -> u16 {
        let ready = self.wait_for(|l| l.kind() == "ready").await;
        self.port = ready.arg(0).parse().expect("ready <port>");
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port of the ready line (the server's listening port, a client's local port).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `ws://` URL of a server peer.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// The `wss://` URL of a server peer started with `--cert`/`--key` (a certificate for
    /// `localhost`).
    pub fn wss_url(&self) -> String {
        format!("wss://localhost:{}/", self.port)
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<Line> {
        self.log.lines.lock().unwrap().clone()
    }

    /// The lines of one kind.
    pub fn lines_of(&self, kind: &str) -> Vec<Line> {
        self.lines()
            .into_iter()
            .filter(|l| l.kind() == kind)
            .collect()
    }

    /// Waits (hang guard: [`HANG_GUARD`]) for the first line matching `pred`.
    pub async fn wait_for(&self, pred: impl Fn(&Line) -> bool) -> Line {
        self.wait_until(|lines| lines.iter().find(|l| pred(l)).cloned())
            .await
    }

    /// Waits (hang guard: [`HANG_GUARD`]) until `pred` on all lines so far gives a value.
    pub async fn wait_until<T>(&self, pred: impl Fn(&[Line]) -> Option<T>) -> T {
        let wait = async {
            loop {
                let changed = self.log.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if let Some(found) = pred(&self.log.lines.lock().unwrap()) {
                    return found;
                }
                if self.log.eof.load(std::sync::atomic::Ordering::SeqCst) {
                    panic!("the peer exited; it logged:\n{}", self.dump());
                }
                changed.await;
            }
        };
        match tokio::time::timeout(HANG_GUARD, wait).await {
            Ok(found) => found,
            Err(_) => panic!(
                "hang guard: waited {HANG_GUARD:?}; the peer logged:\n{}",
                self.dump()
            ),
        }
    }

    /// Waits until the peer has logged `n` lines of `kind`, and returns how many it has logged
    /// then (the reader thread may lag behind what the peer already did).
    pub async fn wait_count(&self, kind: &str, n: usize) -> usize {
        self.wait_until(|lines| {
            let count = lines.iter().filter(|l| l.kind() == kind).count();
            (count >= n).then_some(count)
        })
        .await
    }

    /// The log, for failure messages.
    pub fn dump(&self) -> String {
        self.lines()
            .iter()
            .map(|l| l.0.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `kill -9`, then waits for the process and for the last of its log.
    pub fn kill9(&mut self) {
        self.cont();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// `kill -STOP`: the process stops, its sockets stay open (a half-open connection).
    pub fn stop(&mut self) {
        self.signal("-STOP");
        self.stopped = true;
    }

    /// `kill -CONT`, if stopped.
    pub fn cont(&mut self) {
        if self.stopped {
            self.signal("-CONT");
            self.stopped = false;
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {} failed", self.child.id());
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The texts of the messages a peer logged with `kind` (`recv`, `sending`, `sent`).
pub fn texts(lines: &[Line], kind: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.kind() == kind)
        .map(|l| l.rest(1))
        .collect()
}

/// The `closed` line of connection `n`: (code, reason).
pub fn closed(lines: &[Line], n: &str) -> Option<(u16, String)> {
    lines
        .iter()
        .find(|l| l.kind() == "closed" && l.arg(0) == n)
        .map(|l| (l.arg(1).parse().expect("close code"), l.rest(2)))
}

/// What a supervised run hands back with its outcome: the messages the library received and
/// the body did not read, the messages `send` accepted that never reached the socket, and the
/// messages written to the kernel without an acknowledgement (DESIGN §5, "Nothing is lost at a loss").
#[derive(Debug, Default, Clone)]
pub struct Returned {
    pub unread: Vec<Message>,
    pub unsent: Vec<Message>,
    pub in_flight: Vec<Message>,
}

/// What the library handed back for one supervised connection: the connection's `Accounting`,
/// taken once after `supervise` returned (the outcome itself carries only the typed error).
pub fn returned<T, E>(outcome: &Result<T, E>, conn: &nursery_net::WsConnection) -> Returned {
    let _ = outcome;
    match conn.take_accounting() {
        Some(books) => Returned {
            unread: books.unread,
            unsent: books.unsent,
            in_flight: books.in_flight,
        },
        None => Returned::default(),
    }
}

/// The text of a message (binary as lossy UTF-8).
pub fn text_of(message: &Message) -> String {
    match message {
        Message::Text(text) => text.to_string(),
        other => String::from_utf8_lossy(&other.clone().into_data()).into_owned(),
    }
}
