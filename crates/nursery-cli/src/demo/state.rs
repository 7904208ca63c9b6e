//! Everything the demo's tasks share: the options, the server's registry, the counters, and
//! one slot per client. Above the server and the statistics, below the clients, the injector
//! and the report, which all read it.

use std::sync::{Arc, Mutex};

use nursery_net::LossSignal;
use tokio::time::Instant;

use super::fault::FaultKind;
use super::server::Registry;
use super::stats::Stats;
use crate::cli::DemoOptions;

/// Everything the demo's tasks share.
#[derive(Debug)]
pub(super) struct Demo {
    pub(super) options: DemoOptions,
    pub(super) url: String,
    pub(super) stats: Stats,
    pub(super) servers: Arc<Registry>,
    clients: Vec<ClientSlot>,
}

impl Demo {
    /// The shared state of a demo against `url`, with one slot per client.
    pub(super) fn new(options: DemoOptions, url: String) -> Self {
        Demo {
            clients: (0..options.clients)
                .map(|_| ClientSlot::default())
                .collect(),
            options,
            url,
            stats: Stats::default(),
            servers: Arc::default(),
        }
    }

    /// The slot of client `id` (ids run from 0 to `options.clients - 1`).
    pub(super) fn client(&self, id: u32) -> &ClientSlot {
        &self.clients[id as usize]
    }
}

/// What the demo knows about one client: its current connection's loss signal (for the
/// external trigger) and the fault injected on it, if one is pending.
#[derive(Debug, Default)]
pub(super) struct ClientSlot {
    signal: Mutex<Option<LossSignal>>,
    fault: Mutex<Option<(FaultKind, Instant)>>,
}

impl ClientSlot {
    pub(super) fn signal(&self) -> Option<LossSignal> {
        self.signal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn set_signal(&self, signal: LossSignal) {
        *self.signal.lock().unwrap_or_else(|e| e.into_inner()) = Some(signal);
    }

    pub(super) fn has_fault(&self) -> bool {
        self.fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub(super) fn mark_fault(&self, kind: FaultKind, at: Instant) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some((kind, at));
    }

    pub(super) fn clear_fault(&self) {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub(super) fn take_fault(&self) -> Option<(FaultKind, Instant)> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}
