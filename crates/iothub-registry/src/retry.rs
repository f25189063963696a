//! Retry policy, the retry classifier and the backoff schedule. No IO here: the client's
//! request loop asks [`classify`] whether an error is worth another attempt and
//! [`RetryPolicy::delay`] how long to wait first.

use std::time::Duration;

use crate::error::Error;

/// How a [`RegistryManager`](crate::RegistryManager) retries failed requests.
///
/// Retries use exponential backoff with jitter, honour IoT Hub's `Retry-After`, and stop at
/// whichever comes first: `max_attempts` attempts or the `total_timeout` deadline (which also
/// bounds the last attempt). Which failures are retried is described in the
/// [crate docs](crate#retries).
///
/// ```
/// use std::time::Duration;
/// use iothub_registry::RetryPolicy;
/// let policy = RetryPolicy::default()
///     .with_max_attempts(5)
///     .with_initial_backoff(Duration::from_millis(100))
///     .with_total_timeout(Some(Duration::from_secs(30)));
/// assert_eq!(policy.max_attempts(), 5);
/// let never = RetryPolicy::disabled();
/// assert_eq!(never.max_attempts(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    total_timeout: Option<Duration>,
    jitter: bool,
}

impl Default for RetryPolicy {
    /// 10 attempts, backoff from 200 ms doubling up to 10 s, with jitter, within 2 minutes.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            total_timeout: Some(Duration::from_secs(120)),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, never retried (the total timeout of the default policy still applies).
    pub fn disabled() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Attempts per operation, the first included (default 10; `0` is treated as `1`).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Backoff before the first retry; it doubles for each later one (default 200 ms).
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Upper bound of the computed backoff (default 10 s). A longer `Retry-After` from IoT Hub
    /// is still honoured, within the total timeout.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Deadline for the whole operation, retries and waits included (default 120 s; `None`
    /// for no deadline beyond the per-attempt timeout and `max_attempts`).
    #[must_use]
    pub fn with_total_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.total_timeout = timeout;
        self
    }

    /// Randomises each backoff between half and all of its value (default on), so that many
    /// clients throttled together do not retry together.
    #[must_use]
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The configured number of attempts.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The configured total timeout (`None`: no deadline).
    pub fn total_timeout(&self) -> Option<Duration> {
        self.total_timeout
    }

    /// The configured backoff before the first retry.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The configured upper bound of the computed backoff.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// Whether backoffs are randomised.
    pub fn jitter(&self) -> bool {
        self.jitter
    }

    /// The wait before retry number `retry` (1 for the first retry). `hint` is the server's
    /// `Retry-After`; `unit_random` is a number in `[0, 1)` used for jitter.
    pub(crate) fn delay(&self, retry: u32, hint: Option<Duration>, unit_random: f64) -> Duration {
        let unit_random = unit_random.clamp(0.0, 1.0);
        if let Some(hint) = hint {
            // Honour the server; add up to 10% so throttled clients spread out.
            let extra = if self.jitter {
                hint.mul_f64(0.1 * unit_random)
            } else {
                Duration::ZERO
            };
            return hint.saturating_add(extra);
        }
        let exponent = retry.saturating_sub(1).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        if self.jitter {
            base.mul_f64(0.5 + 0.5 * unit_random)
        } else {
            base
        }
    }
}

/// Whether repeating a request can change the outcome beyond what the first attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, queries, deletes, conditional or unconditional updates and replaces.
    Safe,
    /// Creates without `If-Match`, direct methods and bulk writes: retried only when the
    /// request certainly was not applied (throttled, or the connection was never made).
    Unsafe,
}

/// The classifier's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try again, after the server's hint if it gave one.
    Retry { hint: Option<Duration> },
    /// Give the error to the caller.
    Stop,
}

/// Decides whether `error` is worth another attempt for an operation of the given idempotency.
pub(crate) fn classify(error: &Error, idempotency: Idempotency) -> Decision {
    let safe = idempotency == Idempotency::Safe;
    match error {
        // Throttled requests are rejected before they are processed: always safe to repeat.
        Error::Service(e) if e.status == 429 => Decision::Retry {
            hint: e.retry_after,
        },
        Error::Service(e) if safe && matches!(e.status, 503 | 504) => Decision::Retry {
            hint: e.retry_after,
        },
        // Never connected: nothing was sent.
        Error::Transport(e) if e.is_connect() => Decision::Retry { hint: None },
        Error::Transport(_) if safe => Decision::Retry { hint: None },
        Error::Timeout { .. } if safe => Decision::Retry { hint: None },
        _ => Decision::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorCode, ServiceError};
    use reqwest::header::HeaderMap;

    fn service(status: u16, retry_after: Option<&str>) -> Error {
        let mut h = HeaderMap::new();
        if let Some(r) = retry_after {
            h.insert("retry-after", r.parse().unwrap());
        }
        Error::Service(ServiceError::from_parts(status, &h, b""))
    }

    #[test]
    fn throttling_is_retried_for_every_operation() {
        for idem in [Idempotency::Safe, Idempotency::Unsafe] {
            assert_eq!(
                classify(&service(429, Some("3")), idem),
                Decision::Retry {
                    hint: Some(Duration::from_secs(3))
                }
            );
        }
    }

    #[test]
    fn gateway_errors_only_for_safe_operations() {
        for status in [503, 504] {
            assert_eq!(
                classify(&service(status, None), Idempotency::Safe),
                Decision::Retry { hint: None }
            );
            assert_eq!(
                classify(&service(status, None), Idempotency::Unsafe),
                Decision::Stop
            );
        }
        let timeout = Error::Timeout {
            elapsed: Duration::from_secs(1),
            attempts: 1,
        };
        assert_eq!(
            classify(&timeout, Idempotency::Safe),
            Decision::Retry { hint: None }
        );
        assert_eq!(classify(&timeout, Idempotency::Unsafe), Decision::Stop);
    }

    #[test]
    fn client_errors_are_final() {
        for status in [400, 401, 404, 409, 412, 413, 500] {
            assert_eq!(
                classify(&service(status, None), Idempotency::Safe),
                Decision::Stop,
                "{status}"
            );
        }
        let e = ServiceError::from_parts(404, &HeaderMap::new(), b"");
        assert!(matches!(e.code, ErrorCode::Unknown { .. }));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default()
            .with_jitter(false)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(1));
        let d: Vec<_> = (1..=6).map(|r| p.delay(r, None, 0.5)).collect();
        assert_eq!(
            d,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert_eq!(p.delay(100, None, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let p = RetryPolicy::default().with_initial_backoff(Duration::from_millis(400));
        assert_eq!(p.delay(1, None, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(1, None, 1.0), Duration::from_millis(400));
        let mid = p.delay(1, None, 0.5);
        assert!(mid > Duration::from_millis(200) && mid < Duration::from_millis(400));
    }

    #[test]
    fn retry_after_is_honoured() {
        let p = RetryPolicy::default().with_max_backoff(Duration::from_secs(1));
        let d = p.delay(1, Some(Duration::from_secs(5)), 0.5);
        assert!(d >= Duration::from_secs(5) && d <= Duration::from_millis(5500));
        assert_eq!(p.delay(1, Some(Duration::MAX), 1.0), Duration::MAX);
        let p = p.with_jitter(false);
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(2)), 0.9),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn disabled_means_one_attempt() {
        assert_eq!(RetryPolicy::disabled().max_attempts(), 1);
        assert_eq!(
            RetryPolicy::default().with_max_attempts(0).max_attempts(),
            1
        );
    }
}
