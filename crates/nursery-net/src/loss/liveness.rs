use std::time::Duration;

use tokio::time::Instant;

use crate::loss::reason::LossReason;

/// Heartbeat settings: detect half-open connections (a peer that vanished without closing).
///
/// When nothing has come from the peer for `interval`, a ping is sent (a WebSocket ping, or the
/// TCP connection's application-level ping). If still nothing has come `timeout` later, the
/// connection is lost with [`LossReason::HeartbeatTimeout`]. Any traffic from the peer — a
/// pong, a message, a ping — proves it alive; the timeout also fires when the ping cannot even
/// be written (a peer that stopped reading).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::Heartbeat;
///
/// let heartbeat = Heartbeat::new(Duration::from_secs(15), Duration::from_secs(5));
/// assert_eq!(heartbeat.interval() + heartbeat.timeout(), Duration::from_secs(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    interval: Duration,
    timeout: Duration,
}

impl Heartbeat {
    /// Ping after `interval` of silence from the peer; give up `timeout` after the ping.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _hb = nursery_net::Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2));
    /// ```
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Heartbeat { interval, timeout }
    }

    /// How long the peer may stay silent before a ping is sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// let hb = nursery_net::Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2));
    /// assert_eq!(hb.interval(), Duration::from_secs(1));
    /// ```
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long after the ping the peer has to answer.
    ///
    /// ```
    /// use std::time::Duration;
    /// let hb = nursery_net::Heartbeat::new(Duration::from_secs(1), Duration::from_secs(2));
    /// assert_eq!(hb.timeout(), Duration::from_secs(2));
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// What a transport's driver must do when its liveness deadline passes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing yet (woken early: traffic moved a deadline).
    Nothing,
    /// Send a heartbeat ping.
    Ping,
    /// The connection is lost.
    Lost(LossReason),
}

/// The heartbeat and idle clocks of one connection, owned by its driver.
///
/// `traffic` (the last application message either way) is passed in, because the body's sends
/// update it outside the driver.
#[derive(Debug)]
pub(crate) struct Liveness {
    heartbeat: Option<Heartbeat>,
    idle: Option<Duration>,
    last_inbound: Instant,
    pinged: bool,
    paused: bool,
}

fn add(at: Instant, d: Duration) -> Option<Instant> {
    at.checked_add(d)
}

impl Liveness {
    pub(crate) fn new(heartbeat: Option<Heartbeat>, idle: Option<Duration>) -> Self {
        Liveness {
            heartbeat,
            idle,
            last_inbound: Instant::now(),
            pinged: false,
            paused: false,
        }
    }

    /// Something came from the peer.
    pub(crate) fn inbound(&mut self) {
        self.last_inbound = Instant::now();
        self.pinged = false;
    }

    /// Whether the driver can read this turn. While it cannot (the body is not reading, the
    /// read-ahead is full) inbound traffic cannot be observed, so heartbeats are suspended; they
    /// restart from now the first turn it can read again, however the room was found.
    pub(crate) fn set_reading(&mut self, reading: bool) {
        if !reading {
            self.paused = true;
        } else if self.paused {
            self.paused = false;
            self.inbound();
        }
    }

    /// When the peer is declared dead if nothing comes (heartbeats only).
    pub(crate) fn dead_at(&self) -> Option<Instant> {
        let hb = self.heartbeat.filter(|_| !self.paused)?;
        add(self.last_inbound, hb.interval.saturating_add(hb.timeout))
    }

    /// The next instant the driver must wake at, if any.
    pub(crate) fn next_deadline(&self, traffic: Instant) -> Option<Instant> {
        let heartbeat = self.heartbeat.filter(|_| !self.paused).and_then(|hb| {
            if self.pinged {
                self.dead_at()
            } else {
                add(self.last_inbound, hb.interval)
            }
        });
        let idle = self.idle.and_then(|idle| add(traffic, idle));
        match (heartbeat, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Called when the deadline from [`next_deadline`](Self::next_deadline) passed.
    pub(crate) fn on_deadline(&mut self, traffic: Instant) -> Tick {
        let now = Instant::now();
        if let Some(idle) = self.idle {
            if add(traffic, idle).is_some_and(|at| now >= at) {
                return Tick::Lost(LossReason::IdleTimeout { idle });
            }
        }
        let Some(hb) = self.heartbeat.filter(|_| !self.paused) else {
            return Tick::Nothing;
        };
        if self.dead_at().is_some_and(|at| now >= at) {
            return Tick::Lost(LossReason::HeartbeatTimeout {
                timeout: hb.timeout,
            });
        }
        if !self.pinged && add(self.last_inbound, hb.interval).is_some_and(|at| now >= at) {
            self.pinged = true;
            return Tick::Ping;
        }
        Tick::Nothing
    }
}

/// The driver's timer for [`Liveness::next_deadline`]. Every inbound message pushes the
/// heartbeat deadline later, so re-arming a timer per message would put a timer-wheel update
/// (a lock on the multi-thread runtime) on every message. This one is re-armed only when the
/// deadline moves *earlier* than the one armed; when it fires at an earlier instant than the
/// current deadline the driver's [`Liveness::on_deadline`] finds nothing due, and the next
/// [`arm`](Self::arm) sets the later one.
#[derive(Debug)]
pub(crate) struct DeadlineTimer {
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl DeadlineTimer {
    pub(crate) fn new() -> Self {
        DeadlineTimer {
            // Not registered with the timer until it is armed and polled.
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Makes sure the timer fires no later than `deadline`.
    pub(crate) fn arm(&mut self, deadline: Option<Instant>) {
        match (deadline, self.armed) {
            (Some(at), Some(armed)) if at >= armed => {}
            (Some(at), _) => {
                self.sleep.as_mut().reset(at);
                self.armed = Some(at);
            }
            // No deadline now: an armed one fires once more and finds nothing due.
            (None, _) => {}
        }
    }

    /// Completes when the armed instant passes (never while nothing is armed).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it completes, the timer stays armed.
    pub(crate) async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
