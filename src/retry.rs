//! Time budget and retry schedule for one invocation.
//!
//! Pure apart from reading the clock (no tokio: a deadline is a std `Instant`): the backoff is a
//! schedule (attempt → delay) so tests can use zero delays, and the deadline is a value passed
//! in.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The point by which the invocation must have returned its response (already minus a safety
/// margin for building and sending the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline (replay CLI); retries are still bounded by attempts.
    pub fn unbounded() -> Self {
        Deadline(None)
    }

    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Deadline(Some(Instant::now() + budget))
    }

    /// From the Lambda context's deadline (epoch milliseconds), keeping `margin` in reserve.
    /// A zero deadline (a hand-built context) means no deadline.
    pub fn from_lambda(deadline_epoch_ms: u64, margin: Duration) -> Self {
        if deadline_epoch_ms == 0 {
            return Deadline::unbounded();
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let left = Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms));
        Deadline(Some(Instant::now() + left.saturating_sub(margin)))
    }

    /// Time left, or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether `needed` still fits before the deadline.
    pub fn allows(&self, needed: Duration) -> bool {
        self.remaining().is_none_or(|left| left >= needed)
    }

    /// The timeout for one request: `preferred`, shortened to what is left. `None` when less
    /// than `minimum` is left (do not start the request).
    pub fn request_timeout(&self, preferred: Duration, minimum: Duration) -> Option<Duration> {
        match self.remaining() {
            None => Some(preferred),
            Some(left) if left >= minimum => Some(preferred.min(left)),
            Some(_) => None,
        }
    }
}

/// Bounded retries with capped, jittered exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per record, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry (before jitter).
    pub base_delay: Duration,
    /// Largest delay between attempts.
    pub max_delay: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Do not start a request with less time than this left.
    pub min_request_time: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            min_request_time: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1 = first retry), scaled by `jitter` in
    /// `[0, 1]`: half of the exponential delay is fixed, half is random ("equal jitter"), so
    /// delays never collapse to zero and concurrent containers spread out.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A random number in `[0, 1)` for jitter, from the standard library's per-process random
/// hasher keys (no RNG crate needed for jitter).
pub fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_caps() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.delay(4, 1.0), Duration::from_millis(700));
        assert_eq!(p.delay(40, 1.0), Duration::from_millis(700));
        assert_eq!(p.delay(2, 0.0), Duration::from_millis(100));
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let samples: Vec<f64> = (0..50).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }

    #[tokio::test]
    async fn deadline_shortens_request_timeouts() {
        let d = Deadline::after(Duration::from_secs(2));
        let t = d
            .request_timeout(Duration::from_secs(10), Duration::from_millis(100))
            .unwrap();
        assert!(t <= Duration::from_secs(2));
        let past = Deadline::after(Duration::ZERO);
        assert_eq!(
            past.request_timeout(Duration::from_secs(10), Duration::from_millis(1)),
            None
        );
        assert!(!past.allows(Duration::from_millis(1)));
        assert!(Deadline::unbounded().allows(Duration::from_secs(1_000_000)));
    }

    #[tokio::test]
    async fn lambda_deadline_keeps_margin() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let d = Deadline::from_lambda(now_ms + 10_000, Duration::from_secs(3));
        let left = d.remaining().unwrap();
        assert!(
            left <= Duration::from_secs(7) && left > Duration::from_secs(6),
            "{left:?}"
        );
        assert_eq!(
            Deadline::from_lambda(0, Duration::ZERO),
            Deadline::unbounded()
        );
    }
}
