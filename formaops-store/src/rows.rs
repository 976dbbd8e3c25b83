//! Row <-> domain translation shared by both backends.
//!
//! Each backend implements [`RowAccess`] for its row type (Postgres decodes native
//! `timestamptz`, `uuid`, `jsonb`, `numeric`; SQLite decodes integer microseconds, BLOB
//! UUIDs, JSON text and decimal strings), and the functions here build domain values from
//! any of them, so the mapping of columns to fields is written once. In the other direction,
//! [`ExecutionColumns`] and [`FinishColumns`] flatten domain values into column values that
//! each backend binds in its own types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use formaops_core::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionError, ExecutionErrorCode, ExecutionMetrics,
    ExecutionStatus, Priority, TokenUsage,
};
use formaops_core::ids::{CredentialId, ExecutionId, PromptId, UserId};
use formaops_core::metrics::{
    MetricsReport, MetricsSummary, Percentiles, PromptMetrics, StatusCounts, TokenTotals, percentile_sorted,
};
use formaops_core::prompt::{ModelConfig, Prompt, PromptStatus, PromptVersion};
use formaops_core::user::{Credential, CredentialKind, User};
use formaops_core::validation::{ValidationRule, ValidationVerdict};
use formaops_core::variables::VariableDefinition;
use formaops_core::{Error, Result};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

/// Most prompts listed in a metrics report's `by_prompt`.
pub(crate) const MAX_PROMPTS_IN_REPORT: usize = 100;

/// Typed column access over a backend's row.
pub(crate) trait RowAccess {
    fn uuid(&self, col: &str) -> Result<Uuid>;
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>>;
    fn ts(&self, col: &str) -> Result<DateTime<Utc>>;
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn boolean(&self, col: &str) -> Result<bool>;
    fn opt_bool(&self, col: &str) -> Result<Option<bool>>;
    fn opt_json(&self, col: &str) -> Result<Option<Value>>;
    fn opt_decimal(&self, col: &str) -> Result<Option<Decimal>>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;

    fn json(&self, col: &str) -> Result<Value> {
        self.opt_json(col)?.ok_or_else(|| corrupt(col, "is NULL"))
    }
}

/// A stored value that does not decode: a bug or a hand-edited database.
pub(crate) fn corrupt(col: &str, what: impl std::fmt::Display) -> Error {
    Error::internal(format!("stored column {col} {what}"))
}

fn u32_col(row: &impl RowAccess, col: &str) -> Result<u32> {
    let v = row.int(col)?;
    u32::try_from(v).map_err(|_| corrupt(col, format!("is out of range: {v}")))
}

fn u64_of(col: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(col, format!("is negative: {v}")))
}

fn opt_u64(row: &impl RowAccess, col: &str) -> Result<u64> {
    row.opt_int(col)?.map(|v| u64_of(col, v)).transpose().map(Option::unwrap_or_default)
}

fn from_json<T: serde::de::DeserializeOwned>(col: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| corrupt(col, format!("does not decode: {e}")))
}

/// Converts a domain count to a column value; counts beyond `i64::MAX` are impossible in
/// practice but refused rather than wrapped.
pub(crate) fn i64_of(field: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid_argument(field, "is too large"))
}

pub(crate) fn to_json<T: serde::Serialize>(what: &str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::internal(format!("cannot encode {what}: {e}")))
}

// ----- users and credentials -----

pub(crate) fn user_from_row(row: &impl RowAccess) -> Result<User> {
    Ok(User {
        id: UserId(row.uuid("id")?),
        email: row.text("email")?,
        is_admin: row.boolean("is_admin")?,
        created_at: row.ts("created_at")?,
    })
}

pub(crate) fn credential_from_row(row: &impl RowAccess) -> Result<Credential> {
    let kind = row.text("kind")?;
    Ok(Credential {
        id: CredentialId(row.uuid("id")?),
        user_id: UserId(row.uuid("user_id")?),
        kind: CredentialKind::parse(&kind).ok_or_else(|| corrupt("kind", format!("is unknown: {kind}")))?,
        name: row.opt_text("name")?,
        token_hash: row.bytes("token_hash")?,
        created_at: row.ts("created_at")?,
        expires_at: row.opt_ts("expires_at")?,
        revoked_at: row.opt_ts("revoked_at")?,
    })
}

// ----- prompts -----

pub(crate) fn prompt_from_row(row: &impl RowAccess) -> Result<Prompt> {
    let status = row.text("status")?;
    Ok(Prompt {
        id: PromptId(row.uuid("id")?),
        user_id: UserId(row.uuid("user_id")?),
        name: row.text("name")?,
        description: row.opt_text("description")?,
        status: PromptStatus::parse(&status)
            .ok_or_else(|| corrupt("status", format!("is unknown: {status}")))?,
        current_version: u32_col(row, "current_version")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

pub(crate) fn version_from_row(row: &impl RowAccess) -> Result<PromptVersion> {
    let variables: Vec<VariableDefinition> = from_json("variables", row.json("variables")?)?;
    let validations: Vec<ValidationRule> = from_json("validations", row.json("validations")?)?;
    let model: ModelConfig = from_json("model", row.json("model")?)?;
    Ok(PromptVersion {
        prompt_id: PromptId(row.uuid("prompt_id")?),
        version: u32_col(row, "version")?,
        template: row.text("template")?,
        system_template: row.opt_text("system_template")?,
        variables,
        validations,
        model,
        created_at: row.ts("created_at")?,
        author: UserId(row.uuid("author")?),
    })
}

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

pub(crate) fn execution_from_row(row: &impl RowAccess) -> Result<Execution> {
    let status = row.text("status")?;
    let priority = row.text("priority")?;
    let inputs = match row.json("inputs")? {
        Value::Object(map) => map,
        _ => return Err(corrupt("inputs", "is not a JSON object")),
    };
    let metrics = match row.opt_int("latency_ms")? {
        None => None,
        Some(latency) => Some(ExecutionMetrics {
            latency_ms: u64_of("latency_ms", latency)?,
            provider_latency_ms: opt_u64(row, "provider_latency_ms")?,
            queue_ms: opt_u64(row, "queue_ms")?,
            token_usage: TokenUsage {
                input: opt_u64(row, "tokens_input")?,
                output: opt_u64(row, "tokens_output")?,
                cached: opt_u64(row, "tokens_cached")?,
                reasoning: opt_u64(row, "tokens_reasoning")?,
                total: opt_u64(row, "tokens_total")?,
                estimated: row.opt_bool("tokens_estimated")?.unwrap_or(false),
            },
            cost_usd: row.opt_decimal("cost_usd")?,
        }),
    };
    let validation: Option<ValidationVerdict> =
        row.opt_json("validation")?.map(|v| from_json("validation", v)).transpose()?;
    let error: Option<ExecutionError> = row.opt_json("error")?.map(|v| from_json("error", v)).transpose()?;
    Ok(Execution {
        id: ExecutionId(row.uuid("id")?),
        user_id: UserId(row.uuid("user_id")?),
        prompt_id: PromptId(row.uuid("prompt_id")?),
        prompt_version: u32_col(row, "prompt_version")?,
        inputs,
        priority: Priority::parse(&priority)
            .ok_or_else(|| corrupt("priority", format!("is unknown: {priority}")))?,
        status: ExecutionStatus::parse(&status)
            .ok_or_else(|| corrupt("status", format!("is unknown: {status}")))?,
        validate_output: row.boolean("validate_output")?,
        provider: row.text("provider")?,
        model: row.text("model")?,
        output: row.opt_text("output")?,
        validated_output: row.opt_json("validated_output")?,
        validation,
        error,
        metrics,
        attempts: u32_col(row, "attempts")?,
        max_attempts: u32_col(row, "max_attempts")?,
        retry_of: row.opt_uuid("retry_of")?.map(ExecutionId),
        idempotency_key: row.opt_text("idempotency_key")?,
        created_at: row.ts("created_at")?,
        run_after: row.ts("run_after")?,
        deadline_at: row.ts("deadline_at")?,
        started_at: row.opt_ts("started_at")?,
        finished_at: row.opt_ts("finished_at")?,
        queue_key: row.int("queue_key")?,
        lease_owner: row.opt_text("lease_owner")?,
        lease_expires_at: row.opt_ts("lease_expires_at")?,
    })
}

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
        Ok(Self { status: status.as_str(), run_after, finished_at, result })
    }
}

/// The error recorded on executions whose lease expired.
pub(crate) fn lease_expired_error() -> ExecutionError {
    ExecutionError {
        code: ExecutionErrorCode::LeaseExpired,
        message: "the worker running this execution stopped renewing its lease".to_string(),
        transient: true,
    }
}

/// Orders claimed rows as the contract says: ascending `queue_key`, then id.
pub(crate) fn sort_claimed(rows: &mut [Execution]) {
    rows.sort_by_key(|e| (e.queue_key, e.id));
}

// ----- metrics -----

/// The columns of one execution that metrics aggregate.
#[derive(Debug, Clone)]
pub(crate) struct MetricsRow {
    pub prompt_id: PromptId,
    pub status: ExecutionStatus,
    pub latency_ms: Option<i64>,
    pub provider_latency_ms: Option<i64>,
    pub tokens_input: Option<i64>,
    pub tokens_output: Option<i64>,
    pub tokens_cached: Option<i64>,
    pub tokens_total: Option<i64>,
    pub cost_usd: Option<Decimal>,
    pub validation_passed: Option<bool>,
}

impl MetricsRow {
    pub(crate) fn from_row(row: &impl RowAccess) -> Result<Self> {
        let status = row.text("status")?;
        Ok(Self {
            prompt_id: PromptId(row.uuid("prompt_id")?),
            status: ExecutionStatus::parse(&status)
                .ok_or_else(|| corrupt("status", format!("is unknown: {status}")))?,
            latency_ms: row.opt_int("latency_ms")?,
            provider_latency_ms: row.opt_int("provider_latency_ms")?,
            tokens_input: row.opt_int("tokens_input")?,
            tokens_output: row.opt_int("tokens_output")?,
            tokens_cached: row.opt_int("tokens_cached")?,
            tokens_total: row.opt_int("tokens_total")?,
            cost_usd: row.opt_decimal("cost_usd")?,
            validation_passed: row.opt_bool("validation_passed")?,
        })
    }
}

/// Running aggregates of one scope.
#[derive(Debug, Default)]
struct Accumulator {
    counts: StatusCounts,
    latency: Vec<f64>,
    provider_latency: Vec<f64>,
    tokens: TokenTotals,
    cost: Decimal,
    unpriced: u64,
    validated: u64,
    passed: u64,
}

fn add_tokens(total: &mut u64, v: Option<i64>) {
    let v = v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    *total = total.saturating_add(v);
}

impl Accumulator {
    fn add(&mut self, r: &MetricsRow) {
        let c = &mut self.counts;
        match r.status {
            ExecutionStatus::Queued => c.queued += 1,
            ExecutionStatus::Running => c.running += 1,
            ExecutionStatus::Completed => c.completed += 1,
            ExecutionStatus::Failed => c.failed += 1,
            ExecutionStatus::Cancelled => c.cancelled += 1,
        }
        c.total += 1;
        let is_final_run = matches!(r.status, ExecutionStatus::Completed | ExecutionStatus::Failed);
        if is_final_run && let Some(latency) = r.latency_ms {
            self.latency.push(latency as f64);
            self.provider_latency.push(r.provider_latency_ms.unwrap_or(0) as f64);
            add_tokens(&mut self.tokens.input, r.tokens_input);
            add_tokens(&mut self.tokens.output, r.tokens_output);
            add_tokens(&mut self.tokens.cached, r.tokens_cached);
            add_tokens(&mut self.tokens.total, r.tokens_total);
            match r.cost_usd {
                Some(cost) => self.cost = self.cost.saturating_add(cost),
                None => self.unpriced += 1,
            }
        }
        if r.status == ExecutionStatus::Completed
            && let Some(passed) = r.validation_passed
        {
            self.validated += 1;
            if passed {
                self.passed += 1;
            }
        }
    }

    fn finish(mut self) -> MetricsSummary {
        let percentiles = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            Percentiles {
                p50: percentile_sorted(v, 0.5),
                p95: percentile_sorted(v, 0.95),
                p99: percentile_sorted(v, 0.99),
            }
        };
        MetricsSummary {
            counts: self.counts,
            latency_ms: percentiles(&mut self.latency),
            provider_latency_ms: percentiles(&mut self.provider_latency),
            tokens: self.tokens,
            cost_usd: self.cost.normalize(),
            unpriced_executions: self.unpriced,
            validated: self.validated,
            validation_passed: self.passed,
            validation_pass_rate: (self.validated > 0).then(|| self.passed as f64 / self.validated as f64),
        }
    }
}

/// Aggregates rows into a report (everything but `since`, `until` and `queue_depth`).
#[derive(Debug, Default)]
pub(crate) struct MetricsBuilder {
    all: Accumulator,
    by_prompt: HashMap<PromptId, Accumulator>,
}

impl MetricsBuilder {
    pub(crate) fn add(&mut self, row: &MetricsRow) {
        self.all.add(row);
        self.by_prompt.entry(row.prompt_id).or_default().add(row);
    }

    pub(crate) fn finish(
        self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        queue_depth: u64,
    ) -> MetricsReport {
        let mut by_prompt: Vec<PromptMetrics> = self
            .by_prompt
            .into_iter()
            .map(|(prompt_id, acc)| PromptMetrics { prompt_id, summary: acc.finish() })
            .collect();
        by_prompt.sort_by(|a, b| {
            b.summary.counts.total.cmp(&a.summary.counts.total).then_with(|| a.prompt_id.cmp(&b.prompt_id))
        });
        by_prompt.truncate(MAX_PROMPTS_IN_REPORT);
        MetricsReport { since, until, summary: self.all.finish(), queue_depth, by_prompt }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        prompt: PromptId,
        status: ExecutionStatus,
        latency: Option<i64>,
        cost: Option<&str>,
    ) -> MetricsRow {
        MetricsRow {
            prompt_id: prompt,
            status,
            latency_ms: latency,
            provider_latency_ms: latency.map(|l| l / 2),
            tokens_input: Some(10),
            tokens_output: Some(5),
            tokens_cached: Some(1),
            tokens_total: Some(15),
            cost_usd: cost.map(|c| c.parse().unwrap()),
            validation_passed: (status == ExecutionStatus::Completed)
                .then_some(latency.unwrap_or(0) % 2 == 0),
        }
    }

    #[test]
    fn aggregates_only_final_runs_and_keeps_cost_exact() {
        let (p1, p2) = (PromptId::new(), PromptId::new());
        let mut b = MetricsBuilder::default();
        for i in 1..=10 {
            b.add(&row(p1, ExecutionStatus::Completed, Some(i * 10), Some("0.1")));
        }
        b.add(&row(p2, ExecutionStatus::Failed, Some(1000), None));
        b.add(&row(p2, ExecutionStatus::Queued, None, None));
        let r = b.finish(None, None, 1);
        assert_eq!(r.summary.counts.total, 12);
        assert_eq!(r.summary.counts.completed, 10);
        assert_eq!(r.summary.counts.queued, 1);
        // 10 x 0.1 is exactly 1 as a decimal (it would not be as f64).
        assert_eq!(r.summary.cost_usd, Decimal::ONE);
        assert_eq!(r.summary.unpriced_executions, 1);
        assert_eq!(r.summary.latency_ms.p50, Some(60.0));
        assert_eq!(r.summary.latency_ms.p99, Some(1000.0));
        assert_eq!(r.summary.tokens.input, 110);
        assert_eq!(r.summary.validated, 10);
        assert_eq!(r.summary.validation_passed, 10);
        assert_eq!(r.by_prompt.len(), 2);
        assert_eq!(r.by_prompt[0].prompt_id, p1);
        assert_eq!(r.by_prompt[1].summary.counts.total, 2);
        assert_eq!(r.queue_depth, 1);
    }
}
