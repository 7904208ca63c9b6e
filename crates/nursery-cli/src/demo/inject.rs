//! The fault injector: at random times it picks a connected client and tells its server
//! connection (or its loss signal) to fail. Beside the clients: both read the shared state,
//! neither calls the other.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::DemoError;
use super::fault::FaultKind;
use super::server::Command;
use super::state::Demo;
use super::stats::Stats;

/// Injects faults at `rate` per second (exponential inter-arrival times), each on a random
/// connected client that has no fault pending. Runs until cancelled.
pub(super) async fn inject(demo: Arc<Demo>, rate: f64, mut rng: StdRng) -> Result<(), DemoError> {
    if rate <= 0.0 {
        return std::future::pending().await;
    }
    loop {
        let uniform: f64 = rng.random_range(f64::EPSILON..1.0);
        tokio::time::sleep(Duration::from_secs_f64(-uniform.ln() / rate)).await;
        let kind = FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())];
        let candidates = demo.servers.connected();
        let candidates: Vec<_> = candidates
            .into_iter()
            .filter(|(id, _)| !demo.client(*id).has_fault())
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let (id, control) = candidates[rng.random_range(0..candidates.len())].clone();
        let client = demo.client(id);
        let injected = match kind {
            FaultKind::ServerClose | FaultKind::Reset | FaultKind::HalfOpen => {
                client.mark_fault(kind, Instant::now());
                let command = match kind {
                    FaultKind::ServerClose => Command::Close,
                    FaultKind::Reset => Command::Reset,
                    _ => Command::HalfOpen(None),
                };
                control.send(command).is_ok()
            }
            FaultKind::ExternalSlowClose => {
                // First the server stops reading (acknowledged), then the callback fires.
                let (ack_tx, ack_rx) = oneshot::channel();
                let muted =
                    control.send(Command::HalfOpen(Some(ack_tx))).is_ok() && ack_rx.await.is_ok();
                match client.signal() {
                    Some(signal) if muted => {
                        client.mark_fault(kind, Instant::now());
                        // The driver's state callback, on its own OS thread.
                        std::thread::scope(|s| {
                            s.spawn(|| signal.trigger("driver callback: connection dropped"));
                        });
                        true
                    }
                    // No callback to fire: the server still went silent.
                    _ if muted => {
                        client.mark_fault(FaultKind::HalfOpen, Instant::now());
                        true
                    }
                    _ => false,
                }
            }
        };
        if injected {
            Stats::add(&demo.stats.faults);
        } else {
            client.clear_fault();
        }
    }
}
