use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::loss::reason::LossReason;

/// A connection's loss latch: records the first reason the connection was lost, and wakes its
/// supervisor.
///
/// `Send + Sync + Clone`, and [`fire`](Self::fire) is a plain synchronous call that needs no
/// runtime: a state callback on a driver's OS thread (the originating scenario's
/// `connection_state_callback`) can report the loss directly, and the supervised body is
/// force-exited with [`LossReason::External`]. It is the safe form of asyncio's
/// `Event.set()`: safe from any thread, and it carries the reason.
///
/// Every connection has one ([`Connection::loss_signal`](crate::Connection::loss_signal));
/// transports fire it themselves when they detect a loss, so it also tells, after the fact,
/// whether and why a connection was lost. The first reason wins; later calls return `false`.
///
/// # Examples
///
/// ```
/// use nursery_net::{LossReason, LossSignal};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let signal = LossSignal::new();
/// let callback = {
///     let signal = signal.clone();
///     move |connected: bool| {
///         if !connected {
///             signal.trigger("driver reported the link down");
///         }
///     }
/// };
/// std::thread::spawn(move || callback(false)).join().unwrap();
/// assert_eq!(signal.fired().await, LossReason::external("driver reported the link down"));
/// assert!(!signal.trigger("a second report")); // the first reason wins
/// # }
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct LossSignal {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    reason: Mutex<Option<LossReason>>,
    notify: Notify,
}

impl fmt::Debug for LossSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LossSignal")
            .field("reason", &self.reason())
            .finish()
    }
}

impl LossSignal {
    /// A signal that has not fired.
    ///
    /// ```
    /// assert!(!nursery_net::LossSignal::new().is_fired());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `reason` and wakes the supervisor; `true` if this was the first report.
    /// Synchronous, non-blocking, callable from any thread, with or without a runtime.
    ///
    /// ```
    /// use nursery_net::{LossReason, LossSignal};
    /// let signal = LossSignal::new();
    /// assert!(signal.fire(LossReason::eof()));
    /// assert!(!signal.fire(LossReason::external("late")));
    /// assert_eq!(signal.reason(), Some(LossReason::eof()));
    /// ```
    pub fn fire(&self, reason: LossReason) -> bool {
        {
            let mut slot = self.inner.reason.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_some() {
                return false;
            }
            *slot = Some(reason);
            // Set under the lock, so that `fired` implies a reason is readable.
            self.inner.fired.store(true, Ordering::Release);
        }
        self.inner.notify.notify_waiters();
        true
    }

    /// Reports an external loss: [`fire`](Self::fire) with [`LossReason::External`].
    ///
    /// ```
    /// let signal = nursery_net::LossSignal::new();
    /// assert!(signal.trigger("operator pulled the plug"));
    /// assert!(signal.reason().unwrap().is_external());
    /// ```
    pub fn trigger(&self, message: impl Into<String>) -> bool {
        self.fire(LossReason::External(message.into()))
    }

    /// Whether a loss was reported.
    ///
    /// ```
    /// let signal = nursery_net::LossSignal::new();
    /// signal.trigger("x");
    /// assert!(signal.is_fired());
    /// ```
    pub fn is_fired(&self) -> bool {
        self.inner.fired.load(Ordering::Acquire)
    }

    /// The first reported reason, if any.
    ///
    /// ```
    /// assert_eq!(nursery_net::LossSignal::new().reason(), None);
    /// ```
    pub fn reason(&self) -> Option<LossReason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Completes with the first reported reason, at once if one was already reported.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it loses nothing; the reason stays recorded.
    ///
    /// # Drop behavior
    ///
    /// Dropping it only deregisters the waiter.
    ///
    /// ```
    /// use nursery_net::LossSignal;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let signal = LossSignal::new();
    /// let s = signal.clone();
    /// tokio::spawn(async move { s.trigger("gone") });
    /// assert!(signal.fired().await.is_external());
    /// # }
    /// ```
    pub async fn fired(&self) -> LossReason {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking: a `fire` between the check and the await wakes us.
            notified.as_mut().enable();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
        }
    }
}
