use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Exponential backoff with jitter, for [`Reconnect`](crate::Reconnect).
///
/// The `n`-th delay (from 0) is `initial × factor^n`, capped at `max`, then reduced by a random
/// fraction of up to `jitter` (0 = no jitter, 1 = "full jitter": anywhere in `[0, delay]`).
/// Jitter spreads the reconnects of many clients that lost the same server. With a seed the
/// sequence is reproducible.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use nursery_net::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
/// let delays: Vec<_> = backoff.delays().take(5).collect();
/// assert_eq!(delays, [100, 200, 400, 800, 1000].map(Duration::from_millis));
///
/// let jittered = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).seed(7);
/// let a: Vec<_> = jittered.delays().take(3).collect();
/// let b: Vec<_> = jittered.delays().take(3).collect();
/// assert_eq!(a, b); // same seed, same delays
/// assert!(a[0] <= Duration::from_millis(100) && a[0] >= Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    seed: Option<u64>,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s, jitter 0.5, unseeded.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles, caps at `max`; jitter 0.5; unseeded.
    ///
    /// ```
    /// use std::time::Duration;
    /// let _b = nursery_net::Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    /// ```
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            factor: 2.0,
            jitter: 0.5,
            seed: None,
        }
    }

    /// The growth factor (at least 1; default 2).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = nursery_net::Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    ///     .factor(3.0)
    ///     .jitter(0.0);
    /// assert_eq!(b.delays().nth(2), Some(Duration::from_secs(9)));
    /// ```
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The largest fraction removed at random from each delay, clamped to `[0, 1]`
    /// (default 0.5).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = nursery_net::Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).jitter(0.0);
    /// assert_eq!(b.delays().next(), Some(Duration::from_secs(1)));
    /// ```
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// Seeds the jitter, for reproducible runs (tests, the demo's `--seed`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = nursery_net::Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).seed(42);
    /// assert_eq!(b.delays().nth(3), b.delays().nth(3));
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The sequence of delays, starting from the first.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = nursery_net::Backoff::new(Duration::from_millis(10), Duration::from_millis(30));
    /// assert!(b.delays().take(10).all(|d| d <= Duration::from_millis(30)));
    /// ```
    pub fn delays(&self) -> Delays {
        let rng = match self.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Delays {
            backoff: self.clone(),
            rng,
            step: 0,
        }
    }

    fn base(&self, step: u32) -> Duration {
        let scaled = self.initial.as_secs_f64() * self.factor.powi(step.min(1024) as i32);
        if !scaled.is_finite() || scaled >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(scaled)
        }
    }
}

/// The delays of a [`Backoff`]: an endless iterator, resettable after a success.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let backoff = nursery_net::Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// let mut delays = backoff.jitter(0.0).delays();
/// assert_eq!(delays.next(), Some(Duration::from_millis(100)));
/// assert_eq!(delays.next(), Some(Duration::from_millis(200)));
/// delays.reset();
/// assert_eq!(delays.next(), Some(Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone)]
pub struct Delays {
    backoff: Backoff,
    rng: StdRng,
    step: u32,
}

impl Delays {
    /// Starts again from the first delay (the random sequence goes on).
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut d = nursery_net::Backoff::new(Duration::from_secs(1), Duration::from_secs(4))
    ///     .jitter(0.0)
    ///     .delays();
    /// d.next();
    /// d.reset();
    /// assert_eq!(d.next(), Some(Duration::from_secs(1)));
    /// ```
    pub fn reset(&mut self) {
        self.step = 0;
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.backoff.base(self.step);
        self.step = self.step.saturating_add(1);
        let cut = if self.backoff.jitter > 0.0 {
            self.backoff.jitter * self.rng.random::<f64>()
        } else {
            0.0
        };
        Some(base.mul_f64(1.0 - cut))
    }
}
