use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::error::ConnectionLost;
use crate::loss::cleanup::Cleanups;
use crate::loss::reason::LossReason;
use crate::loss::signal::LossSignal;

/// The size of a received item, for the read-ahead bound in bytes.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Vec<u8> {
    fn weight(&self) -> usize {
        self.len()
    }
}

/// The state every transport shares between the body, the driver and the close: the loss
/// latch, the read-ahead queue of received messages, the traffic clock, the "closed here"
/// flag and the body's cleanups.
///
/// The read-ahead is bounded twice: at most `capacity` messages wait, and the driver stops
/// reading once the waiting messages hold `max_bytes` or more (so at most `max_bytes` plus one
/// message are held). Below the bound the driver keeps reading while the body is busy, so a
/// close frame, a ping or a protocol error is seen when it arrives.
///
/// Queued messages are boxed: a tokio channel allocates its first block of 32 slots when it is
/// created, so unboxed slots would cost every connection, idle or not, 32 messages' worth of
/// memory (1.8 KiB for WebSocket messages) against 256 bytes boxed.
#[derive(Debug)]
pub(crate) struct Link<T> {
    pub(crate) signal: LossSignal,
    pub(crate) cleanups: Cleanups,
    inbound_tx: mpsc::Sender<Box<T>>,
    inbound_rx: tokio::sync::Mutex<mpsc::Receiver<Box<T>>>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    room: Notify,
    received: AtomicU64,
    read: AtomicU64,
    traffic: Mutex<Instant>,
    closed: AtomicBool,
    /// Messages taken off the socket after the connection was already lost (see
    /// [`deliver_after_loss`](Self::deliver_after_loss)), after everything in the queue.
    after_loss: Mutex<Vec<T>>,
}

impl<T: Weigh> Link<T> {
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        let (inbound_tx, inbound_rx) = mpsc::channel(capacity.max(1));
        Link {
            signal: LossSignal::new(),
            cleanups: Cleanups::default(),
            inbound_tx,
            inbound_rx: tokio::sync::Mutex::new(inbound_rx),
            queued_bytes: AtomicUsize::new(0),
            max_bytes: max_bytes.max(1),
            room: Notify::new(),
            received: AtomicU64::new(0),
            read: AtomicU64::new(0),
            traffic: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            after_loss: Mutex::new(Vec::new()),
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

    /// Whether the connection is lost or closed here.
    pub(crate) fn is_down(&self) -> bool {
        self.signal.is_fired() || self.closed.load(Ordering::Acquire)
    }

    /// `Err` once the connection is lost or closed here.
    pub(crate) fn check(&self) -> Result<(), ConnectionLost> {
        if self.is_down() {
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

    /// Waits until the read-ahead has room for one more message, and reserves its slot.
    ///
    /// Cancel safe: dropping the permit returns the slot.
    pub(crate) async fn room(&self) -> Option<mpsc::Permit<'_, Box<T>>> {
        loop {
            // `notify_one` stores a wakeup when nobody waits, so a `recv` between this check
            // and the wait is not missed.
            if self.queued_bytes.load(Ordering::Acquire) < self.max_bytes {
                return self.inbound_tx.reserve().await.ok();
            }
            self.room.notified().await;
        }
    }

    /// Reserves a slot at once if the read-ahead has room.
    pub(crate) fn try_room(&self) -> Option<mpsc::Permit<'_, Box<T>>> {
        if self.queued_bytes.load(Ordering::Acquire) < self.max_bytes {
            self.inbound_tx.try_reserve().ok()
        } else {
            None
        }
    }

    /// Queues a received message for the body in the slot `room` reserved.
    pub(crate) fn deliver(&self, permit: mpsc::Permit<'_, Box<T>>, item: T) {
        self.touch();
        self.queued_bytes.fetch_add(item.weight(), Ordering::AcqRel);
        self.received.fetch_add(1, Ordering::Relaxed);
        permit.send(Box::new(item));
    }

    /// Records a message the driver took off the socket once the connection was lost (a write
    /// failed because the peer reset it, while what the peer sent before still sat in the
    /// kernel): nobody reads it any more, but it is handed back as unread, after the queue.
    pub(crate) fn deliver_after_loss(&self, item: T) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.after_loss
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(item);
    }

    fn taken(&self, item: &T) {
        let weight = item.weight();
        let before = self.queued_bytes.fetch_sub(weight, Ordering::AcqRel);
        if before >= self.max_bytes && before - weight < self.max_bytes {
            self.room.notify_one();
        }
        self.read.fetch_add(1, Ordering::Relaxed);
    }

    /// The next received message. Messages received before a loss are delivered first, then
    /// the loss: a body that keeps calling `recv` after a clean close reads everything that
    /// arrived.
    pub(crate) async fn recv(&self) -> Result<T, ConnectionLost> {
        // Whoever holds the lock is in `recv` below, which ends at the loss: no hang.
        let mut rx = self.inbound_rx.lock().await;
        if let Ok(item) = rx.try_recv() {
            self.taken(&item);
            self.touch();
            return Ok(*item);
        }
        self.check()?;
        tokio::select! {
            biased;
            item = rx.recv() => match item {
                Some(item) => {
                    self.taken(&item);
                    self.touch();
                    Ok(*item)
                }
                None => Err(self.lost()),
            },
            _ = self.signal.fired() => match rx.try_recv() {
                // Queued between the failed `try_recv` and the loss.
                Ok(item) => {
                    self.taken(&item);
                    Ok(*item)
                }
                Err(_) => Err(self.lost()),
            },
        }
    }

    /// Takes every message still waiting, in order, with the counts of messages received and
    /// read so far. `None` if a `recv` holds the queue.
    pub(crate) fn take_unread(&self) -> Option<(Vec<T>, u64, u64)> {
        let mut rx = self.inbound_rx.try_lock().ok()?;
        let mut unread = Vec::new();
        while let Ok(item) = rx.try_recv() {
            self.queued_bytes.fetch_sub(item.weight(), Ordering::AcqRel);
            unread.push(*item);
        }
        unread.append(&mut self.after_loss.lock().unwrap_or_else(|e| e.into_inner()));
        let received = self.received.load(Ordering::Relaxed);
        let read = self.read.load(Ordering::Relaxed);
        Some((unread, received, read))
    }
}
