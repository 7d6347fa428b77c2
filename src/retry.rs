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
    ///
    /// A deadline that is not a plausible one (see [`lambda_time_left`]: 0 from a hand-built
    /// context, cargo-lambda's `600000`, a time in the past) is unknown: the invocation then has
    /// `budget` (the function's own timeout) from now. The source says which was used, so the
    /// caller can warn.
    pub fn from_lambda(
        deadline_epoch_ms: u64,
        budget: Duration,
        margin: Duration,
    ) -> (Self, DeadlineSource) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (left, source) = lambda_time_left(deadline_epoch_ms, now_ms, budget);
        (
            Deadline(Some(Instant::now() + left.saturating_sub(margin))),
            source,
        )
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

/// The longest a Lambda invocation can run (the largest function timeout, 15 minutes): a
/// Runtime API deadline further away than this cannot be a real one.
pub const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// Where an invocation's time budget came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineSource {
    /// The Runtime API's `Lambda-Runtime-Deadline-Ms`, a plausible epoch-milliseconds time.
    Runtime,
    /// The Runtime API's deadline was not plausible (a local emulator's duration, 0, the past):
    /// the function's own timeout was used instead.
    OwnBudget,
}

/// The time an invocation has left, from the Runtime API's deadline `deadline_epoch_ms` and the
/// clock `now_epoch_ms`: the difference when the deadline is in (now, now + 15 minutes],
/// otherwise `budget` ([`DeadlineSource::OwnBudget`]). Lambda sends the deadline as epoch
/// milliseconds; local emulators send other things (cargo-lambda 1.9 sends `600000`, a
/// duration), and taking those literally would leave no time at all.
pub fn lambda_time_left(
    deadline_epoch_ms: u64,
    now_epoch_ms: u64,
    budget: Duration,
) -> (Duration, DeadlineSource) {
    let max_ms = MAX_INVOCATION.as_millis() as u64;
    match deadline_epoch_ms.checked_sub(now_epoch_ms) {
        Some(left_ms) if left_ms > 0 && left_ms <= max_ms => {
            (Duration::from_millis(left_ms), DeadlineSource::Runtime)
        }
        _ => (budget, DeadlineSource::OwnBudget),
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

/// The wall clock as epoch seconds (0 before 1970): the time an entry point hands the pure
/// report, which compares it with Kinesis arrival times to park records about to expire.
pub fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
    fn epoch_secs_is_the_wall_clock() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let got = epoch_secs();
        assert!((got - now).abs() < 60.0, "{got} is not {now}");
    }

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
        let (d, source) = Deadline::from_lambda(
            now_ms + 10_000,
            Duration::from_secs(60),
            Duration::from_secs(3),
        );
        assert_eq!(source, DeadlineSource::Runtime);
        let left = d.remaining().unwrap();
        assert!(
            left <= Duration::from_secs(7) && left > Duration::from_secs(6),
            "{left:?}"
        );
        // A zero deadline (a hand-built context) is unknown: the function's own budget applies.
        let (d, source) = Deadline::from_lambda(0, Duration::from_secs(8), Duration::ZERO);
        assert_eq!(source, DeadlineSource::OwnBudget);
        let left = d.remaining().unwrap();
        assert!(
            left <= Duration::from_secs(8) && left > Duration::from_secs(7),
            "{left:?}"
        );
    }

    /// See: issue "Real orgs" (cargo-lambda sends `Lambda-Runtime-Deadline-Ms: 600000`).
    #[test]
    fn implausible_runtime_deadlines_fall_back_to_the_budget() {
        let now = 1_780_000_000_000;
        let budget = Duration::from_secs(60);
        for deadline in [600_000, 0, now - 1, now, now + 15 * 60_000 + 1, u64::MAX] {
            assert_eq!(
                lambda_time_left(deadline, now, budget),
                (budget, DeadlineSource::OwnBudget),
                "{deadline}"
            );
        }
        assert_eq!(
            lambda_time_left(now + 1, now, budget),
            (Duration::from_millis(1), DeadlineSource::Runtime)
        );
        assert_eq!(
            lambda_time_left(now + 15 * 60_000, now, budget),
            (MAX_INVOCATION, DeadlineSource::Runtime)
        );
        assert_eq!(
            lambda_time_left(now + 2_500, now, budget),
            (Duration::from_millis(2_500), DeadlineSource::Runtime)
        );
    }
}
