use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::faults::FaultKind;

/// One loss seen by a client's caller: which fault caused it, the typed reason, and the time
/// from the fault to the typed error.
#[derive(Debug, Clone)]
pub(crate) struct Loss {
    pub(crate) fault: Option<FaultKind>,
    pub(crate) reason: &'static str,
    pub(crate) latency: Duration,
}

/// Counters shared by the clients, the server and the fault injector.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connected: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) closes: AtomicU64,
    pub(crate) close_timeouts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) echoed: AtomicU64,
    pub(crate) faults: AtomicU64,
    losses: Mutex<Vec<Loss>>,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn record_loss(&self, loss: Loss) {
        self.losses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(loss);
    }

    pub(crate) fn losses(&self) -> Vec<Loss> {
        self.losses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn loss_count(&self) -> usize {
        self.losses.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The `p`-th percentile (0–100) of sorted samples, nearest rank.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
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
