use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::ConnectionLost;
use crate::loss::reason::LossReason;
use crate::loss::signal::LossSignal;

/// The state every transport shares between the body, the driver and the close: the loss
/// latch, the queue of received messages, the traffic clock and the "closed here" flag.
///
/// Queued messages are boxed: a tokio channel allocates its first block of 32 slots when it is
/// created, so unboxed slots would cost every connection, idle or not, 32 messages' worth of
/// memory (1.8 KiB for WebSocket messages) against 256 bytes boxed.
#[derive(Debug)]
pub(crate) struct Link<T> {
    pub(crate) signal: LossSignal,
    inbound_tx: mpsc::Sender<Box<T>>,
    inbound_rx: tokio::sync::Mutex<mpsc::Receiver<Box<T>>>,
    traffic: Mutex<Instant>,
    closed: AtomicBool,
}

impl<T> Link<T> {
    pub(crate) fn new(inbound_capacity: usize) -> Self {
        let (inbound_tx, inbound_rx) = mpsc::channel(inbound_capacity.max(1));
        Link {
            signal: LossSignal::new(),
            inbound_tx,
            inbound_rx: tokio::sync::Mutex::new(inbound_rx),
            traffic: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
        }
    }

    /// An application message went one way or the other.
    pub(crate) fn touch(&self) {
        *self.traffic.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// When the last application message went.
    pub(crate) fn traffic(&self) -> Instant {
        *self.traffic.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The error for an operation on a connection that is lost or closed.
    pub(crate) fn lost(&self) -> ConnectionLost {
        ConnectionLost::new(self.signal.reason().unwrap_or(LossReason::LocallyClosed))
    }

    /// `Err` once the connection is lost or closed here.
    pub(crate) fn check(&self) -> Result<(), ConnectionLost> {
        if self.signal.is_fired() || self.closed.load(Ordering::Acquire) {
            Err(self.lost())
        } else {
            Ok(())
        }
    }

    /// Records a loss (the first report wins) and returns the error for it.
    pub(crate) fn fail(&self, reason: LossReason) -> ConnectionLost {
        self.signal.fire(reason);
        self.lost()
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Queues a received message for the body; gives it back if the queue is full.
    pub(crate) fn offer(&self, item: T) -> Result<(), T> {
        self.touch();
        self.inbound_tx
            .try_send(Box::new(item))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(item) | mpsc::error::TrySendError::Closed(item) => {
                    *item
                }
            })
    }

    /// Waits for room in the queue (the body has taken a message).
    pub(crate) async fn reserve(&self) -> Option<mpsc::Permit<'_, Box<T>>> {
        self.inbound_tx.reserve().await.ok()
    }

    /// The next received message; messages received before a loss are delivered first.
    pub(crate) async fn recv(&self) -> Result<T, ConnectionLost> {
        let mut rx = tokio::select! {
            rx = self.inbound_rx.lock() => rx,
            _ = self.signal.fired() => return Err(self.lost()),
        };
        if let Ok(item) = rx.try_recv() {
            self.touch();
            return Ok(*item);
        }
        self.check()?;
        tokio::select! {
            biased;
            item = rx.recv() => match item {
                Some(item) => {
                    self.touch();
                    Ok(*item)
                }
                None => Err(self.lost()),
            },
            _ = self.signal.fired() => Err(self.lost()),
        }
    }
}
