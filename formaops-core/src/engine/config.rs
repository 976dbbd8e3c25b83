//! Engine configuration, its checks, and the engine's limits.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::page::MAX_PAGE_SIZE;
use crate::pricing::PriceTable;
use crate::provider::config::MAX_CONCURRENCY as MAX_PROVIDER_CONCURRENCY;
use crate::template::TemplateLimits;
use crate::variables::InputLimits;

/// Retry backoff: exponential from `base`, capped at `max`, with full jitter; a provider's
/// Retry-After replaces the computed delay (a retry that would not start before the
/// execution's deadline is not made). See [`retry`](crate::engine::retry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Upper bound of the first retry's delay; it doubles with each further attempt
    /// (default 500 ms).
    pub base: Duration,
    /// Cap of the computed delay (default 30 s). A provider's Retry-After is not capped by
    /// it; any retry that would not start before the execution's deadline is not made.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// Engine configuration. Every field has a production default.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Provider used when a version names none.
    pub default_provider: String,
    /// Attempts per execution, first included.
    pub max_attempts: u32,
    /// Deadline shared by all attempts, from acceptance.
    pub execution_timeout: Duration,
    /// Deadline of one provider call (capped by the execution deadline).
    pub attempt_timeout: Duration,
    /// Delay before each retry of a transient failure.
    pub backoff: BackoffPolicy,
    /// How long a claim is held without a heartbeat before another worker may rescue it.
    pub lease: Duration,
    /// Aging step of the scheduler: HIGH is ordered as if it arrived `2 * step` earlier,
    /// NORMAL `step` earlier, LOW as it arrived. So LOW never waits behind work that arrived
    /// more than `2 * step` after it.
    pub priority_step: Duration,
    /// Concurrent provider calls per provider, unless set for a provider at registration.
    pub provider_concurrency: usize,
    /// This process's worker id (lease owner). Unique per process.
    pub worker_id: String,
    /// Whether this engine runs workers (an API-only node can submit without executing).
    pub run_workers: bool,
    /// How long `shutdown` lets running executions finish.
    pub shutdown_grace: Duration,
    /// Model prices (USD per 1M tokens) used to compute each execution's `costUsd`.
    pub prices: PriceTable,
    /// Limits on template size, nesting, fuel and rendered output, checked when a version is
    /// stored and when it renders.
    pub template_limits: TemplateLimits,
    /// Limits on execution inputs (sizes, depth), checked at submission.
    pub input_limits: InputLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_provider: "mock".to_string(),
            max_attempts: 3,
            execution_timeout: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(60),
            backoff: BackoffPolicy::default(),
            lease: Duration::from_secs(30),
            priority_step: Duration::from_secs(30),
            provider_concurrency: 16,
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            run_workers: true,
            shutdown_grace: Duration::from_secs(30),
            prices: PriceTable::default(),
            template_limits: TemplateLimits::default(),
            input_limits: InputLimits::default(),
        }
    }
}

/// Most attempts per execution accepted in [`EngineConfig::max_attempts`].
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Most attempts of one prompt update without `expected_version` that keeps losing the race
/// for the next version number to concurrent updates.
pub const MAX_UPDATE_ATTEMPTS: u32 = 64;
/// Longest idempotency key, in bytes. A key is 1 to this many visible ASCII characters (`!`
/// to `~`), so it travels unchanged in an HTTP header; see [`check_idempotency_key`].
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// The one rule for idempotency keys, for every adapter: 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`]
/// visible ASCII characters.
///
/// # Errors
/// [`Error::InvalidArgument`] on `idempotencyKey`.
pub fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_argument(
            "idempotencyKey",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"),
        ));
    }
    Ok(())
}
/// Longest prompt name, in characters.
pub const MAX_PROMPT_NAME_CHARS: usize = 200;
/// Longest prompt description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Compiled versions kept in the engine's cache.
pub const COMPILED_CACHE_SIZE: usize = 4_096;
/// Submissions waiting for a group commit before `submit` callers wait for room.
pub(super) const ENQUEUE_QUEUE: usize = 65_536;
/// Largest group commit.
pub(super) const MAX_BATCH: usize = 512;
/// How often `wait` re-reads state even without an event (events from other processes are
/// best effort).
pub(super) const WAIT_RECHECK: Duration = Duration::from_secs(2);

impl EngineConfig {
    pub(super) fn check(&self) -> Result<()> {
        let bad = |field: &str, message: &str| Err(Error::invalid_argument(field, message));
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return bad("max_attempts", "must be between 1 and 100");
        }
        if self.provider_concurrency == 0 || self.provider_concurrency > MAX_PROVIDER_CONCURRENCY {
            return Err(Error::invalid_argument(
                "provider_concurrency",
                format!("must be between 1 and {MAX_PROVIDER_CONCURRENCY}"),
            ));
        }
        if self.execution_timeout.is_zero() || self.attempt_timeout.is_zero() || self.lease.is_zero() {
            return bad("timeouts", "execution_timeout, attempt_timeout and lease must be positive");
        }
        if self.worker_id.is_empty() {
            return bad("worker_id", "must not be empty");
        }
        Ok(())
    }
}

/// A page size within 1 to [`MAX_PAGE_SIZE`].
pub(super) fn check_page(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::invalid_argument("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")));
    }
    Ok(())
}
