//! Executions: one run of a pinned prompt version, its state, result and metrics.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ExecutionId, PromptId, UserId};
use crate::validation::ValidationVerdict;

/// Scheduling priority (the spec's `LOW | NORMAL | HIGH`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "UPPERCASE")]
#[strum(serialize_all = "UPPERCASE")]
pub enum Priority {
    /// Claimed last: ordered as it arrived, behind NORMAL and HIGH work of the same age.
    Low,
    /// The default when a request gives none.
    #[default]
    Normal,
    /// Claimed first: ordered as if it arrived two aging steps earlier (see
    /// [`EngineConfig::priority_step`](crate::engine::EngineConfig::priority_step)).
    High,
}

impl Priority {
    /// The word as serialised (`LOW`, `NORMAL`, `HIGH`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The priority named by its serialised word (case-sensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// 0 for LOW, 1 for NORMAL, 2 for HIGH.
    pub fn rank(self) -> i64 {
        match self {
            Self::Low => 0,
            Self::Normal => 1,
            Self::High => 2,
        }
    }
}

/// Where an execution is in its life.
///
/// `QUEUED -> RUNNING -> COMPLETED | FAILED`, with `RUNNING -> QUEUED` when a transient
/// failure schedules a retry or a lease expires, and `QUEUED -> CANCELLED`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "UPPERCASE")]
#[strum(serialize_all = "UPPERCASE")]
pub enum ExecutionStatus {
    /// Waiting to be claimed (at first, and again while a retry backs off).
    Queued,
    /// Claimed by a worker that holds its lease; an attempt is in progress.
    Running,
    /// Final: the provider answered. The output may still have failed its validation rules
    /// (see [`Execution::validation`]).
    Completed,
    /// Final: a permanent failure, or the attempts or the deadline used up (see
    /// [`Execution::error`]).
    Failed,
    /// Final: cancelled by its owner while QUEUED.
    Cancelled,
}

impl ExecutionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 5] = [Self::Queued, Self::Running, Self::Completed, Self::Failed, Self::Cancelled];

    /// The word as serialised (`QUEUED`, `RUNNING`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status named by its serialised word (case-sensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// Whether no further transition can happen.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Token counts of one completion. `cached` is part of `input`, `reasoning` part of `output`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Prompt tokens sent to the model (the provider's `prompt_tokens`), cached ones
    /// included.
    pub input: u64,
    /// Tokens the model generated (the provider's `completion_tokens`), reasoning ones
    /// included.
    pub output: u64,
    /// Of `input`, the tokens the provider served from its prompt cache (priced at the
    /// model's cached-input rate); 0 when not reported.
    #[serde(default)]
    pub cached: u64,
    /// Of `output`, the tokens spent on reasoning the reply does not show; 0 when not
    /// reported.
    #[serde(default)]
    pub reasoning: u64,
    /// The provider's total, or `input + output` when it reports none.
    pub total: u64,
    /// True when the provider reported no usage and these are local estimates.
    #[serde(default)]
    pub estimated: bool,
}

/// Per-execution metrics (the spec's `metrics`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionMetrics {
    /// From acceptance to the final state, in milliseconds.
    pub latency_ms: u64,
    /// Time spent in the provider call of the successful (or last) attempt, in milliseconds.
    pub provider_latency_ms: u64,
    /// Time between acceptance and the first claim, in milliseconds.
    pub queue_ms: u64,
    /// Tokens of the successful (or last) attempt's completion.
    pub token_usage: TokenUsage,
    /// Cost in USD. `null` means *unpriced*: the model is not in the price table (never a
    /// silent 0).
    #[serde(with = "rust_decimal::serde::float_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cost_usd: Option<Decimal>,
}

/// The stable word naming why an execution (or one attempt) failed.
///
/// Serialised (JSON, `Display`, [`ExecutionErrorCode::as_str`]) as the snake_case word, e.g.
/// `rate_limited`; the first eight mirror [`ProviderErrorKind`](crate::provider::error::ProviderErrorKind).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum ExecutionErrorCode {
    /// The provider answered 429.
    RateLimited,
    /// The provider answered 5xx, 408 or 409.
    ServerError,
    /// The provider did not answer by the attempt's deadline.
    Timeout,
    /// The provider could not be reached, or the connection broke.
    Connection,
    /// The provider's reply could not be understood.
    MalformedResponse,
    /// The provider refused the credentials (401, 403).
    Auth,
    /// The provider refused the request itself (400, 404, 422, ...).
    BadRequest,
    /// No provider is configured under the execution's provider name.
    NotConfigured,
    /// The template failed to render with the execution's inputs.
    Render,
    /// The execution's deadline passed before an attempt could start.
    DeadlineExceeded,
    /// The worker running the execution stopped renewing its lease.
    LeaseExpired,
    /// The store (database) was unavailable while the attempt ran; transient.
    StoreUnavailable,
    /// The execution's prompt version could not be loaded.
    PromptUnavailable,
    /// The model's output holds a character no store can keep (NUL); permanent.
    UnstorableOutput,
    /// The model declined to answer (`refusal`); the text is in the error's details.
    Refused,
    /// The provider's content filter stopped the output (`finish_reason: "content_filter"`).
    ContentFiltered,
    /// The model answered only with tool calls; they are in the error's details.
    ToolCallsOnly,
    /// The reply carried no answer text (empty, or only reasoning).
    EmptyOutput,
}

impl ExecutionErrorCode {
    /// The code's word, as serialised.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PartialEq<str> for ExecutionErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ExecutionErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<crate::provider::error::ProviderErrorKind> for ExecutionErrorCode {
    fn from(kind: crate::provider::error::ProviderErrorKind) -> Self {
        use crate::provider::error::ProviderErrorKind as K;
        match kind {
            K::RateLimited => Self::RateLimited,
            K::ServerError => Self::ServerError,
            K::Timeout => Self::Timeout,
            K::Connection => Self::Connection,
            K::MalformedResponse => Self::MalformedResponse,
            K::Auth => Self::Auth,
            K::BadRequest => Self::BadRequest,
            K::Refused => Self::Refused,
            K::ContentFiltered => Self::ContentFiltered,
            K::ToolCallsOnly => Self::ToolCallsOnly,
            K::EmptyOutput => Self::EmptyOutput,
            K::NotConfigured => Self::NotConfigured,
        }
    }
}

/// Why an execution (or one attempt) failed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionError {
    /// What kind of failure it was.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub code: ExecutionErrorCode,
    /// A sentence for people (the provider's own message where there is one).
    pub message: String,
    /// Whether a later attempt may succeed.
    pub transient: bool,
    /// What the reply carried that explains the failure, when there was a reply: a refusal's
    /// text (`refusal`), the tool calls (`toolCalls`), the finish reason (`finishReason`),
    /// reasoning without an answer (`reasoning`), an excerpt of an unreadable reply
    /// (`excerpt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<Value>,
}

/// One execution of a pinned prompt version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    /// Assigned at submission (a time-ordered UUID v7).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: ExecutionId,
    /// The owner: only this user can read, cancel or retry it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub user_id: UserId,
    /// The prompt the execution runs.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    /// The version it is pinned to (from 1); later versions do not change it.
    pub prompt_version: u32,
    /// The label the version was resolved through when the caller executed by label
    /// (`production`, ...); `None` when it ran by version number or the current version.
    #[serde(default)]
    pub label: Option<String>,
    /// The validated inputs, defaults filled in: exactly what was rendered.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub inputs: Map<String, Value>,
    /// Claim order class (LOW, NORMAL, HIGH).
    pub priority: Priority,
    /// Where the execution is in its life.
    pub status: ExecutionStatus,
    /// Whether the version's validation rules are checked on the output (the verdict goes to
    /// `validation`; a failed verdict does not fail the execution).
    pub validate_output: bool,
    /// Why the model stopped, as the provider reported it for the last attempt that got a
    /// reply: `stop`, `length` (the output was cut at the token limit), `content_filter`,
    /// `tool_calls`, ... `None` when no reply was read.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Provider name the execution runs on (resolved at submission).
    pub provider: String,
    /// Model name sent to the provider, from the pinned version.
    pub model: String,
    /// The model's answer text, once COMPLETED; `None` before and on failure.
    pub output: Option<String>,
    /// The parsed JSON output, when a JSON rule applies and the output parsed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub validated_output: Option<Value>,
    /// The output's verdict against the version's rules, when `validate_output` is set and
    /// the execution COMPLETED.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub validation: Option<ValidationVerdict>,
    /// Why the execution FAILED; while a retry is QUEUED, why the last attempt failed.
    pub error: Option<ExecutionError>,
    /// Latency, tokens and cost, set by the worker that finished the execution; `None` while
    /// not final, when CANCELLED, and when FAILED by the lease rescuer.
    pub metrics: Option<ExecutionMetrics>,
    /// Attempts started so far (claims).
    pub attempts: u32,
    /// Most attempts this execution may take, first included (from the engine's
    /// [`EngineConfig::max_attempts`](crate::engine::EngineConfig::max_attempts) at
    /// submission).
    pub max_attempts: u32,
    /// The failed execution this one retries, if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub retry_of: Option<ExecutionId>,
    /// The caller's idempotency key, when the request gave one (1 to 255 visible ASCII
    /// characters, see [`check_idempotency_key`](crate::engine::check_idempotency_key)).
    pub idempotency_key: Option<String>,
    /// Acceptance instant (UTC).
    pub created_at: DateTime<Utc>,
    /// Not claimable before this instant (retry backoff).
    pub run_after: DateTime<Utc>,
    /// All attempts together must finish by this instant.
    pub deadline_at: DateTime<Utc>,
    /// When the first attempt was claimed (UTC); `None` while never claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// When the execution became final (UTC); `None` until then.
    pub finished_at: Option<DateTime<Utc>>,
    /// Claim order: smaller first. Computed by the engine's scheduler from priority and
    /// arrival (see `engine::scheduler`); stores only sort by it.
    #[serde(skip)]
    pub queue_key: i64,
    /// The worker holding the lease while RUNNING.
    #[serde(skip)]
    pub lease_owner: Option<String>,
    /// When the lease lapses unless renewed (UTC); after it, the rescuer may requeue or fail
    /// the execution. `None` unless RUNNING.
    #[serde(skip)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// What a new execution is made of: the caller's request, resolved against the version and
/// the engine's configuration. Everything else starts empty (see [`Execution::queued`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    /// The owner ([`Execution::user_id`]).
    pub user_id: UserId,
    /// The prompt to run.
    pub prompt_id: PromptId,
    /// The version to pin (from 1).
    pub prompt_version: u32,
    /// The validated inputs, defaults filled in.
    pub inputs: Map<String, Value>,
    /// Claim order class.
    pub priority: Priority,
    /// Whether to check the version's rules on the output.
    pub validate_output: bool,
    /// The resolved provider name (the version's, else the engine's default).
    pub provider: String,
    /// Model name, from the version.
    pub model: String,
    /// Most attempts, first included.
    pub max_attempts: u32,
    /// The FAILED execution this one retries, if any.
    pub retry_of: Option<ExecutionId>,
    /// The caller's idempotency key, already checked.
    pub idempotency_key: Option<String>,
    /// Acceptance instant; the execution is claimable from then on.
    pub created_at: DateTime<Utc>,
    /// All attempts must finish by this instant (`created_at` plus the engine's
    /// [`EngineConfig::execution_timeout`](crate::engine::EngineConfig::execution_timeout)).
    pub deadline_at: DateTime<Utc>,
    /// Claim order (see [`Execution::queue_key`]).
    pub queue_key: i64,
}

impl Execution {
    /// A new QUEUED execution with a fresh id: claimable from `created_at`, no attempt yet,
    /// no output, error, metrics or lease.
    pub fn queued(new: NewExecution) -> Self {
        let NewExecution {
            user_id,
            prompt_id,
            prompt_version,
            inputs,
            priority,
            validate_output,
            provider,
            model,
            max_attempts,
            retry_of,
            idempotency_key,
            created_at,
            deadline_at,
            queue_key,
        } = new;
        Self {
            id: ExecutionId::new(),
            user_id,
            prompt_id,
            prompt_version,
            label: None,
            inputs,
            priority,
            status: ExecutionStatus::Queued,
            validate_output,
            finish_reason: None,
            provider,
            model,
            output: None,
            validated_output: None,
            validation: None,
            error: None,
            metrics: None,
            attempts: 0,
            max_attempts,
            retry_of,
            idempotency_key,
            created_at,
            run_after: created_at,
            deadline_at,
            started_at: None,
            finished_at: None,
            queue_key,
            lease_owner: None,
            lease_expires_at: None,
        }
    }

    /// Starts an attempt: RUNNING, one more attempt, leased by `worker` until `lease_until`,
    /// `started_at` set on the first attempt. What a claim does to a QUEUED execution, and
    /// what the fast path does before writing a new one.
    pub fn start_attempt(&mut self, worker: &str, now: DateTime<Utc>, lease_until: DateTime<Utc>) {
        self.status = ExecutionStatus::Running;
        self.attempts = self.attempts.saturating_add(1);
        self.lease_owner = Some(worker.to_string());
        self.lease_expires_at = Some(lease_until);
        if self.started_at.is_none() {
            self.started_at = Some(now);
        }
    }

    /// Applies a committed attempt result to this RUNNING execution: the state every store's
    /// `finish` leaves it in (lease released; output, verdict and metrics of a completion;
    /// error and metrics of a failure; QUEUED until `run_after` for a retry, keeping the
    /// error). The caller checks the lease first.
    pub fn apply_attempt(&mut self, r: &AttemptResult) {
        self.lease_owner = None;
        self.lease_expires_at = None;
        self.finish_reason.clone_from(&r.finish_reason);
        match &r.outcome {
            AttemptOutcome::Completed { output, validated_output, validation, metrics } => {
                self.status = ExecutionStatus::Completed;
                self.output = Some(output.clone());
                self.validated_output = validated_output.clone();
                self.validation = validation.clone();
                self.metrics = Some(metrics.clone());
                self.error = None;
                self.finished_at = Some(r.finished_at);
            }
            AttemptOutcome::Failed { error, metrics } => {
                self.status = ExecutionStatus::Failed;
                self.error = Some(error.clone());
                self.metrics = metrics.clone();
                self.finished_at = Some(r.finished_at);
            }
            AttemptOutcome::Retry { error, run_after } => {
                self.status = ExecutionStatus::Queued;
                self.error = Some(error.clone());
                self.run_after = *run_after;
            }
        }
    }
}

/// What a worker reports when an attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// Final success (validation verdict may still say the output failed its rules).
    Completed {
        /// The answer text ([`Execution::output`]).
        output: String,
        /// The parsed JSON output, when a JSON rule applies and it parsed.
        validated_output: Option<Value>,
        /// The verdict, when the execution asked for validation.
        validation: Option<ValidationVerdict>,
        /// Latency, tokens and cost of the execution.
        metrics: ExecutionMetrics,
    },
    /// Final failure.
    Failed {
        /// Why it failed.
        error: ExecutionError,
        /// Latency and provider time of the execution (token usage zero: a failed call
        /// reports none); `None` when nothing was measured.
        metrics: Option<ExecutionMetrics>,
    },
    /// Transient failure: back to QUEUED, claimable from `run_after`.
    Retry {
        /// Why this attempt failed (kept on the execution while it waits).
        error: ExecutionError,
        /// Backoff end (UTC): not claimable before it.
        run_after: DateTime<Utc>,
    },
}

/// One finished attempt, as handed to [`crate::store::Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    /// The execution the attempt belongs to.
    pub id: ExecutionId,
    /// Its owner (every store write is scoped by user).
    pub user_id: UserId,
    /// The worker that held the lease; a result from a worker that lost its lease is refused.
    pub worker: String,
    /// How the attempt ended.
    pub outcome: AttemptOutcome,
    /// When the attempt ended (UTC); becomes [`Execution::finished_at`] for a final outcome.
    pub finished_at: DateTime<Utc>,
    /// The reply's finish reason, when the attempt read a reply.
    pub finish_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderErrorKind;

    #[test]
    fn string_forms_match_serde() {
        for p in [Priority::Low, Priority::Normal, Priority::High] {
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        for s in [
            ExecutionStatus::Queued,
            ExecutionStatus::Running,
            ExecutionStatus::Completed,
            ExecutionStatus::Failed,
            ExecutionStatus::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ExecutionStatus::Cancelled.as_str(), "CANCELLED");
        assert_eq!(Priority::parse("low"), None);
    }

    #[test]
    fn execution_error_codes_keep_their_words() {
        for (code, word) in [
            (ExecutionErrorCode::RateLimited, "rate_limited"),
            (ExecutionErrorCode::MalformedResponse, "malformed_response"),
            (ExecutionErrorCode::DeadlineExceeded, "deadline_exceeded"),
            (ExecutionErrorCode::LeaseExpired, "lease_expired"),
            (ExecutionErrorCode::StoreUnavailable, "store_unavailable"),
            (ExecutionErrorCode::PromptUnavailable, "prompt_unavailable"),
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(word));
            assert_eq!(code, word);
            assert_eq!(word.parse::<ExecutionErrorCode>().unwrap(), code);
        }
        for kind in [
            ProviderErrorKind::RateLimited,
            ProviderErrorKind::ServerError,
            ProviderErrorKind::Timeout,
            ProviderErrorKind::Connection,
            ProviderErrorKind::MalformedResponse,
            ProviderErrorKind::Auth,
            ProviderErrorKind::BadRequest,
            ProviderErrorKind::NotConfigured,
        ] {
            assert_eq!(ExecutionErrorCode::from(kind).as_str(), kind.as_str());
        }
        let e: ExecutionError =
            serde_json::from_str(r#"{"code":"timeout","message":"slow","transient":true}"#).unwrap();
        assert_eq!(e.code, ExecutionErrorCode::Timeout);
    }
}
