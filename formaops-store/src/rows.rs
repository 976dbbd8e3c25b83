//! Domain -> column translation shared by both backends: [`ExecutionColumns`],
//! [`FinishColumns`], [`RescueColumns`] and [`VersionJson`] flatten domain values into column
//! values that each backend binds (rows are decoded by the `FromRow` types in `sql`).

use chrono::{DateTime, Utc};
use formaops_core::execution::{AttemptOutcome, AttemptResult, Execution, ExecutionMetrics, ExecutionStatus};
use formaops_core::prompt::PromptVersion;
use formaops_core::store::{RescueDecision, RescueFate};
use formaops_core::validation::ValidationVerdict;
use formaops_core::{Error, Result};
use rust_decimal::Decimal;
use serde_json::Value;

/// Converts a domain count to a column value; counts beyond `i64::MAX` are impossible in
/// practice but refused rather than wrapped.
pub(crate) fn i64_of(field: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid_argument(field, "is too large"))
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::internal(format!("cannot encode {what}: {e}")))
}

// ----- prompts -----

/// A version's JSON columns.
pub(crate) struct VersionJson {
    pub variables: Value,
    pub validations: Value,
    pub model: Value,
}

impl VersionJson {
    pub(crate) fn of(v: &PromptVersion) -> Result<Self> {
        Ok(Self {
            variables: to_json("variables", &v.variables)?,
            validations: to_json("validations", &v.validations)?,
            model: to_json("model", &v.model)?,
        })
    }
}

// ----- executions -----

/// Result columns of an execution (output, validation, error, metrics), flattened.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResultColumns {
    pub output: Option<String>,
    pub validated_output: Option<Value>,
    pub validation: Option<Value>,
    pub validation_passed: Option<bool>,
    pub error: Option<Value>,
    pub latency_ms: Option<i64>,
    pub provider_latency_ms: Option<i64>,
    pub queue_ms: Option<i64>,
    pub tokens_input: Option<i64>,
    pub tokens_output: Option<i64>,
    pub tokens_cached: Option<i64>,
    pub tokens_reasoning: Option<i64>,
    pub tokens_total: Option<i64>,
    pub tokens_estimated: Option<bool>,
    pub cost_usd: Option<Decimal>,
}

impl ResultColumns {
    fn set_metrics(&mut self, m: Option<&ExecutionMetrics>) -> Result<()> {
        let Some(m) = m else { return Ok(()) };
        self.latency_ms = Some(i64_of("metrics.latencyMs", m.latency_ms)?);
        self.provider_latency_ms = Some(i64_of("metrics.providerLatencyMs", m.provider_latency_ms)?);
        self.queue_ms = Some(i64_of("metrics.queueMs", m.queue_ms)?);
        let t = &m.token_usage;
        self.tokens_input = Some(i64_of("metrics.tokenUsage.input", t.input)?);
        self.tokens_output = Some(i64_of("metrics.tokenUsage.output", t.output)?);
        self.tokens_cached = Some(i64_of("metrics.tokenUsage.cached", t.cached)?);
        self.tokens_reasoning = Some(i64_of("metrics.tokenUsage.reasoning", t.reasoning)?);
        self.tokens_total = Some(i64_of("metrics.tokenUsage.total", t.total)?);
        self.tokens_estimated = Some(t.estimated);
        self.cost_usd = m.cost_usd;
        Ok(())
    }

    fn set_validation(&mut self, v: Option<&ValidationVerdict>) -> Result<()> {
        if let Some(v) = v {
            self.validation = Some(to_json("validation", v)?);
            self.validation_passed = Some(v.passed);
        }
        Ok(())
    }
}

/// Every column of a new execution, flattened for binding.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionColumns {
    pub inputs: Value,
    pub priority: &'static str,
    pub status: &'static str,
    pub prompt_version: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub result: ResultColumns,
}

impl ExecutionColumns {
    pub(crate) fn of(e: &Execution) -> Result<Self> {
        let mut result = ResultColumns {
            output: e.output.clone(),
            validated_output: e.validated_output.clone(),
            error: e.error.as_ref().map(|err| to_json("error", err)).transpose()?,
            ..ResultColumns::default()
        };
        result.set_validation(e.validation.as_ref())?;
        result.set_metrics(e.metrics.as_ref())?;
        Ok(Self {
            inputs: Value::Object(e.inputs.clone()),
            priority: e.priority.as_str(),
            status: e.status.as_str(),
            prompt_version: i64::from(e.prompt_version),
            attempts: i64::from(e.attempts),
            max_attempts: i64::from(e.max_attempts),
            result,
        })
    }
}

/// What one finished attempt writes.
#[derive(Debug, Clone)]
pub(crate) struct FinishColumns {
    pub status: &'static str,
    /// For a retry: when it becomes claimable again.
    pub run_after: Option<DateTime<Utc>>,
    /// For a final outcome: when it finished.
    pub finished_at: Option<DateTime<Utc>>,
    pub result: ResultColumns,
    /// The reply's finish reason (`None` when no reply was read).
    pub finish_reason: Option<String>,
}

impl FinishColumns {
    pub(crate) fn of(r: &AttemptResult) -> Result<Self> {
        let mut result = ResultColumns::default();
        let (status, run_after, finished_at) = match &r.outcome {
            AttemptOutcome::Completed { output, validated_output, validation, metrics } => {
                result.output = Some(output.clone());
                result.validated_output = validated_output.clone();
                result.set_validation(validation.as_ref())?;
                result.set_metrics(Some(metrics))?;
                (ExecutionStatus::Completed, None, Some(r.finished_at))
            }
            AttemptOutcome::Failed { error, metrics } => {
                result.error = Some(to_json("error", error)?);
                result.set_metrics(metrics.as_ref())?;
                (ExecutionStatus::Failed, None, Some(r.finished_at))
            }
            AttemptOutcome::Retry { error, run_after } => {
                result.error = Some(to_json("error", error)?);
                (ExecutionStatus::Queued, Some(*run_after), None)
            }
        };
        Ok(Self {
            status: status.as_str(),
            run_after,
            finished_at,
            result,
            finish_reason: r.finish_reason.clone(),
        })
    }
}

/// The columns a rescue decision writes.
pub(crate) struct RescueColumns {
    pub status: &'static str,
    pub run_after: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Value,
}

impl RescueColumns {
    pub(crate) fn of(d: &RescueDecision) -> Result<Self> {
        let (status, run_after, finished_at) = match d.fate {
            RescueFate::Requeue { run_after } => (ExecutionStatus::Queued, Some(run_after), None),
            RescueFate::Fail { finished_at } => (ExecutionStatus::Failed, None, Some(finished_at)),
        };
        Ok(Self { status: status.as_str(), run_after, finished_at, error: to_json("error", &d.error)? })
    }
}
