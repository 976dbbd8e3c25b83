//! The engine's one retry loop: which failures are retried, and when.
//!
//! Exponential backoff from `base`, doubling per attempt, capped at `max`, with *full jitter*
//! (a uniform draw in `[0, cap]`). A provider's Retry-After replaces the computed delay. Either
//! way the retry must start before the execution's shared deadline, and no more than
//! `max_attempts` attempts run in total.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::config::BackoffPolicy;
use crate::provider::ProviderError;

/// The upper bound of the backoff before attempt `failed_attempt + 1` (`failed_attempt` is
/// 1-based): `min(max, base * 2^(failed_attempt - 1))`.
pub fn backoff_cap(policy: &BackoffPolicy, failed_attempt: u32) -> Duration {
    let exp = failed_attempt.saturating_sub(1).min(31);
    policy.base.saturating_mul(1u32 << exp).min(policy.max)
}

/// The delay before the next attempt: a Retry-After when the provider sent one, else full
/// jitter over [`backoff_cap`]; `unit` is a uniform draw in `[0, 1]`.
pub fn retry_delay(
    policy: &BackoffPolicy,
    failed_attempt: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    match retry_after {
        Some(d) => d,
        None => backoff_cap(policy, failed_attempt).mul_f64(if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        }),
    }
}

/// Why an error is not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// The failure is not transient: the same attempt would fail the same way.
    Permanent,
    /// The execution has used its `max_attempts`.
    AttemptsExhausted,
    /// The retry's delay would end at or after the execution's deadline.
    DeadlineExceeded,
}

impl GiveUp {
    /// `message` with the reason appended, as a final error reports it (`attempts` is the
    /// number of attempts made).
    pub fn explain(self, message: &str, attempts: u32) -> String {
        match self {
            GiveUp::Permanent => message.to_string(),
            GiveUp::AttemptsExhausted => format!("{message} (after {attempts} attempts)"),
            GiveUp::DeadlineExceeded => {
                format!("{message} (no time left before the execution deadline to retry)")
            }
        }
    }
}

/// When to retry after the provider `error` ended attempt `attempts` (1-based) at `now`; or
/// why not. See [`decide_failure`].
pub fn decide(
    policy: &BackoffPolicy,
    error: &ProviderError,
    attempts: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
    deadline_at: DateTime<Utc>,
    unit: f64,
) -> Result<DateTime<Utc>, GiveUp> {
    let failure = Failure { transient: error.is_transient(), retry_after: error.retry_after };
    decide_failure(policy, failure, attempts, max_attempts, now, deadline_at, unit)
}

/// What the retry decision needs to know about any failed attempt (a provider error, a store
/// outage, an expired lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Whether the same attempt may succeed later.
    pub transient: bool,
    /// A delay the failing party asked for (a provider's Retry-After), replacing the backoff.
    pub retry_after: Option<Duration>,
}

/// When to retry after `failure` ended attempt `attempts` (1-based) at `now`; or why not.
pub fn decide_failure(
    policy: &BackoffPolicy,
    failure: Failure,
    attempts: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
    deadline_at: DateTime<Utc>,
    unit: f64,
) -> Result<DateTime<Utc>, GiveUp> {
    if !failure.transient {
        return Err(GiveUp::Permanent);
    }
    schedule(policy, attempts, max_attempts, now, deadline_at, failure.retry_after, unit)
}

/// When to run the next attempt after attempt `attempts` (1-based) ended at `now` with a
/// transient failure (a provider's, or a lost lease); or why not: no attempts left, or the
/// retry would not start before `deadline_at`.
pub fn schedule(
    policy: &BackoffPolicy,
    attempts: u32,
    max_attempts: u32,
    now: DateTime<Utc>,
    deadline_at: DateTime<Utc>,
    retry_after: Option<Duration>,
    unit: f64,
) -> Result<DateTime<Utc>, GiveUp> {
    if attempts >= max_attempts {
        return Err(GiveUp::AttemptsExhausted);
    }
    let delay = retry_delay(policy, attempts, retry_after, unit);
    let run_after = chrono::Duration::from_std(delay).ok().and_then(|d| now.checked_add_signed(d));
    match run_after {
        Some(t) if t < deadline_at => Ok(t),
        _ => Err(GiveUp::DeadlineExceeded),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::provider::ProviderErrorKind;

    fn policy() -> BackoffPolicy {
        BackoffPolicy { base: Duration::from_millis(500), max: Duration::from_secs(30) }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn cap_doubles_then_saturates() {
        let p = policy();
        assert_eq!(backoff_cap(&p, 1), Duration::from_millis(500));
        assert_eq!(backoff_cap(&p, 2), Duration::from_secs(1));
        assert_eq!(backoff_cap(&p, 4), Duration::from_secs(4));
        assert_eq!(backoff_cap(&p, 10), Duration::from_secs(30));
        assert_eq!(backoff_cap(&p, u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_replaces_backoff() {
        let e = ProviderError::new(ProviderErrorKind::RateLimited, "x")
            .with_retry_after(Some(Duration::from_secs(7)));
        let at = decide(&policy(), &e, 1, 3, t0(), t0() + chrono::Duration::seconds(60), 0.9).unwrap();
        assert_eq!(at, t0() + chrono::Duration::seconds(7));
    }

    #[test]
    fn permanent_exhausted_and_deadline() {
        let p = policy();
        let dl = t0() + chrono::Duration::seconds(60);
        let bad = ProviderError::new(ProviderErrorKind::BadRequest, "x");
        assert_eq!(decide(&p, &bad, 1, 3, t0(), dl, 0.5), Err(GiveUp::Permanent));
        let busy = ProviderError::new(ProviderErrorKind::ServerError, "x");
        assert_eq!(decide(&p, &busy, 3, 3, t0(), dl, 0.5), Err(GiveUp::AttemptsExhausted));
        let late = busy.clone().with_retry_after(Some(Duration::from_secs(60)));
        assert_eq!(decide(&p, &late, 1, 3, t0(), dl, 0.5), Err(GiveUp::DeadlineExceeded));
    }

    #[test]
    fn any_failure_is_decided_without_posing_as_a_provider_error() {
        let p = policy();
        let dl = t0() + chrono::Duration::seconds(60);
        let outage = Failure { transient: true, retry_after: None };
        let at = decide_failure(&p, outage, 2, 3, t0(), dl, 1.0).unwrap();
        assert_eq!(at, t0() + chrono::Duration::seconds(1));
        assert_eq!(decide_failure(&p, outage, 3, 3, t0(), dl, 1.0), Err(GiveUp::AttemptsExhausted));
        let broken = Failure { transient: false, retry_after: None };
        assert_eq!(decide_failure(&p, broken, 1, 3, t0(), dl, 1.0), Err(GiveUp::Permanent));
    }

    proptest! {
        #[test]
        fn delay_within_full_jitter_bounds(attempt in 1u32..64, unit in 0.0f64..=1.0, base_ms in 1u64..5_000, max_ms in 1u64..120_000) {
            let p = BackoffPolicy { base: Duration::from_millis(base_ms), max: Duration::from_millis(max_ms) };
            let d = retry_delay(&p, attempt, None, unit);
            prop_assert!(d <= backoff_cap(&p, attempt));
            prop_assert!(d <= p.max);
            prop_assert!(backoff_cap(&p, attempt) <= backoff_cap(&p, attempt + 1));
        }

        #[test]
        fn retry_always_before_the_deadline(attempt in 1u32..10, max in 1u32..10, unit in 0.0f64..=1.0,
                                            ra in proptest::option::of(0u64..200_000), left_ms in 0i64..100_000) {
            let e = ProviderError::new(ProviderErrorKind::Timeout, "x").with_retry_after(ra.map(Duration::from_millis));
            let dl = t0() + chrono::Duration::milliseconds(left_ms);
            match decide(&policy(), &e, attempt, max, t0(), dl, unit) {
                Ok(at) => {
                    prop_assert!(at < dl && at >= t0());
                    prop_assert!(attempt < max);
                    if let Some(ms) = ra { prop_assert_eq!(at, t0() + chrono::Duration::milliseconds(ms as i64)); }
                }
                Err(GiveUp::AttemptsExhausted) => prop_assert!(attempt >= max),
                Err(GiveUp::DeadlineExceeded) => prop_assert!(attempt < max),
                Err(GiveUp::Permanent) => prop_assert!(false, "timeout is transient"),
            }
        }
    }
}
