//! Why `nursery watch` stops: the first Ctrl-C or SIGTERM (a permanent connect error ends the
//! reconnect loop itself). The first signal cancels the session's scope, so the open
//! connection (if any) closes gracefully; a second signal exits the process at once.

use std::sync::Mutex;

use tokio_nursery::CancelHandle;

use super::error::WatchError;
use super::log::Log;

/// A signal that stops the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// SIGINT, from Ctrl-C.
    Interrupt,
    /// SIGTERM, from `kill` or a service manager.
    Terminate,
}

impl Signal {
    /// The signal's name as a user knows it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit status after a second signal: 128 + the signal's number, as a shell reports a
    /// process the signal ended.
    fn forced_exit(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Why the watch stopped.
#[derive(Debug)]
pub(super) enum Why {
    /// A signal, and whether a connection was open when it came.
    Signal {
        /// Which signal.
        signal: Signal,
        /// Whether a connection was open (and so is being closed).
        open: bool,
    },
}

/// The first reason to stop, and the scope it cancels.
#[derive(Debug)]
pub(super) struct Stop {
    scope: CancelHandle,
    why: Mutex<Option<Why>>,
}

impl Stop {
    /// A stop that cancels `scope`.
    pub(super) fn new(scope: CancelHandle) -> Self {
        Stop {
            scope,
            why: Mutex::new(None),
        }
    }

    /// Records `why` (unless a reason came first) and cancels the scope.
    pub(super) fn request(&self, why: Why) {
        let mut slot = self.why.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(why);
        }
        drop(slot);
        self.scope.cancel_with("nursery watch is stopping");
    }

    /// The reason recorded, if any.
    pub(super) fn take(&self) -> Option<Why> {
        self.why.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Waits for the first signal and requests a graceful stop; waits for a second one and exits
/// the process at once (the close may be hanging on a silent peer).
pub(super) async fn on_signals(stop: &Stop, log: &Log) -> Result<(), WatchError> {
    let mut signals = Signals::new().map_err(WatchError::Signals)?;
    let first = signals.next().await;
    let open = log.is_open();
    let closing = if open {
        "closing the connection"
    } else {
        "stopping (no connection is open)"
    };
    log.line(format!(
        "{}: {closing}; a second Ctrl-C or SIGTERM exits at once",
        first.name()
    ));
    stop.request(Why::Signal {
        signal: first,
        open,
    });
    let second = signals.next().await;
    log.line(format!(
        "{}: exiting without waiting for the close",
        second.name()
    ));
    std::process::exit(second.forced_exit());
}

/// SIGINT and SIGTERM as one stream.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }
}

/// Ctrl-C only: there is no SIGTERM to catch.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Signal {
        // An error means no Ctrl-C can come: wait forever rather than stop.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        Signal::Interrupt
    }
}
