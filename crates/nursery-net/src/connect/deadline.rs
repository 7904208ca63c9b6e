// One deadline for a whole connect: each stage runs against what is left of it, and a stage
// cut short reports itself with the whole timeout (what the user configured), not its share.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::connect::error::{ConnectError, ConnectStage};

/// The deadline of a connect or a handshake that started now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// `None` when the timeout is too long to be a point in time: no bound.
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Self {
        Deadline {
            at: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    /// Runs `stage` until it finishes or the deadline passes.
    pub(crate) async fn run<T>(
        &self,
        stage: ConnectStage,
        work: impl Future<Output = Result<T, ConnectError>>,
    ) -> Result<T, ConnectError> {
        let Some(at) = self.at else {
            return work.await;
        };
        match tokio::time::timeout_at(at, work).await {
            Ok(out) => out,
            Err(_elapsed) => Err(ConnectError::Timeout {
                after: self.timeout,
                stage,
            }),
        }
    }
}
