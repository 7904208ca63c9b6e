//! Shared helpers for the integration tests: drop probes, ordered event logs, error types and a
//! `tracing` capture.
#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Counts drops of the guards it hands out: proves "dropped" and "cleanup ran exactly once".
#[derive(Clone, Default, Debug)]
pub struct DropProbe(Arc<AtomicUsize>);

impl DropProbe {
    pub fn new() -> Self {
        Self::default()
    }

    /// A guard whose `Drop` increments the probe.
    pub fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> bool {
        self.count() > 0
    }
}

#[derive(Debug)]
pub struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A counter shared with futures: `hit()` from inside, `get()` in the assertion.
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// An ordered log of events, each with the (paused) time it happened.
#[derive(Clone, Debug)]
pub struct Log {
    start: Instant,
    events: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl Log {
    pub fn new() -> Self {
        Log {
            start: Instant::now(),
            events: Arc::default(),
        }
    }

    pub fn push(&self, event: impl Into<String>) {
        let at = self.start.elapsed();
        self.events.lock().unwrap().push((event.into(), at));
    }

    pub fn names(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// When `event` was first logged.
    pub fn at(&self, event: &str) -> Option<Duration> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e == event)
            .map(|(_, t)| *t)
    }

    pub fn contains(&self, event: &str) -> bool {
        self.at(event).is_some()
    }
}

/// Logs `event` when dropped, so a test can tell when (on the paused clock) a future was dropped.
#[derive(Debug)]
pub struct LogOnDrop {
    log: Log,
    event: &'static str,
}

impl LogOnDrop {
    pub fn new(log: &Log, event: &'static str) -> Self {
        LogOnDrop {
            log: log.clone(),
            event,
        }
    }
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.log.push(self.event);
    }
}

/// A small error type carrying an id, as a user's would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestError(pub &'static str);

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test error {}", self.0)
    }
}

impl std::error::Error for TestError {}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Captures `tracing` output of the current thread while the guard lives.
///
/// One global subscriber (installed once per test binary) writes into the buffer of whichever
/// capture is active on the emitting thread. A global subscriber keeps callsite interest
/// "enabled" process-wide; scoped subscribers race with other test threads that register the
/// same callsites first.
pub struct TraceCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    previous: Option<Arc<Mutex<Vec<u8>>>>,
}

thread_local! {
    static ACTIVE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        ACTIVE.with(|active| {
            if let Some(buffer) = active.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TraceCapture {
    /// Starts capturing for the current thread (use with the current-thread runtime).
    pub fn start() -> Self {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let previous = ACTIVE.with(|active| active.borrow_mut().replace(buffer.clone()));
        TraceCapture { buffer, previous }
    }

    /// Everything logged so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.output().contains(needle)
    }
}

impl Drop for TraceCapture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        ACTIVE.with(|active| *active.borrow_mut() = previous);
    }
}
