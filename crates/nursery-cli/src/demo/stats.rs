//! What the demo counts: connects, faults, losses with their latencies; and the percentile
//! the report reads them with. Written by the clients and the injector, read by the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::fault::FaultKind;

/// One loss seen by a client's caller: which fault caused it, the typed reason, and the time
/// from the fault to the typed error.
#[derive(Debug, Clone)]
pub(super) struct Loss {
    pub(super) fault: Option<FaultKind>,
    pub(super) reason: &'static str,
    pub(super) latency: Duration,
}

/// Counters shared by the clients, the server and the fault injector.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) connected: AtomicU64,
    pub(super) connect_failures: AtomicU64,
    pub(super) closes: AtomicU64,
    pub(super) close_timeouts: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) echoed: AtomicU64,
    pub(super) faults: AtomicU64,
    losses: Mutex<Vec<Loss>>,
}

impl Stats {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(super) fn record_loss(&self, loss: Loss) {
        self.losses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(loss);
    }

    pub(super) fn losses(&self) -> Vec<Loss> {
        self.losses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn loss_count(&self) -> usize {
        self.losses.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The `p`-th percentile (0–100) of sorted samples, nearest rank.
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&ms, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&ms, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&ms[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
