//! Experiments: versions of a prompt run over a dataset, compared side by side.
//!
//! An [`Experiment`] records the versions it runs (labels resolved when it starts), the
//! dataset, the queue priority (LOW by default) and a concurrency cap. Each (row, version)
//! pair becomes one execution through the normal queue, recorded as an [`ExperimentRun`];
//! its idempotency key ([`run_key`]) makes a resubmission return the existing execution, so a
//! restarted runner never pays twice. [`progress`] counts what is done; [`compare`] builds the
//! side-by-side result, and [`export_jsonl`] / [`export_csv`] write it out.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dataset::DatasetRow;
use crate::error::{Error, Result};
use crate::execution::{Execution, ExecutionError, ExecutionStatus, Priority};
use crate::ids::{DatasetId, ExecutionId, ExperimentId, PromptId, UserId};
use crate::metrics::{MetricsAggregator, MetricsQuery, MetricsSample, MetricsSummary};
use crate::validation::ValidationVerdict;

/// Most versions (targets) in one experiment.
pub const MAX_TARGETS: usize = 10;
/// Most executions of one experiment in flight at once (the cap's upper bound).
pub const MAX_CONCURRENCY: u32 = 256;
/// The concurrency cap when none is given.
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// Largest compiled `regex` match pattern, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Where an experiment is.
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
    strum::IntoStaticStr,
)]
#[serde(rename_all = "UPPERCASE")]
#[strum(serialize_all = "UPPERCASE")]
pub enum ExperimentStatus {
    /// Rows are being submitted or are still running.
    Running,
    /// Every row of every version is final.
    Completed,
    /// Cancelled: queued rows were cancelled, finished ones kept.
    Cancelled,
}

/// How a row's output is matched against its expected output.
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
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MatchRule {
    /// The output equals the expected text (a non-string expected value: its JSON text).
    Exact,
    /// Output and expected parse as JSON and are equal (an expected string is parsed too).
    JsonEqual,
    /// The output contains the expected text.
    Contains,
    /// The expected text is a regular expression the output matches (anywhere).
    Regex,
}

impl MatchRule {
    /// Whether `output` matches `expected` under this rule.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `expected` when a `regex` pattern does not compile.
    pub fn check(self, output: &str, expected: &Value) -> Result<bool> {
        let text = match expected {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(match self {
            Self::Exact => output == text,
            Self::Contains => output.contains(&text),
            Self::JsonEqual => {
                let want = match expected {
                    Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                    other => Some(other.clone()),
                };
                match (serde_json::from_str::<Value>(output), want) {
                    (Ok(got), Some(want)) => got == want,
                    _ => false,
                }
            }
            Self::Regex => regex::RegexBuilder::new(&text)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    Error::invalid_argument("expected", format!("is not a regular expression: {e}"))
                })?
                .is_match(output),
        })
    }
}

/// A version the experiment runs: as asked (a number or a label) and as resolved at start.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentTarget {
    /// What the caller gave: a version number (`"3"`) or a label (`"production"`).
    pub requested: String,
    /// The version it resolved to when the experiment started.
    pub version: u32,
}

/// An experiment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// The experiment's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: ExperimentId,
    /// The owner.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub user_id: UserId,
    /// The prompt whose versions run.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    /// The rows.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub dataset_id: DatasetId,
    /// The versions, in the order given (distinct versions).
    pub targets: Vec<ExperimentTarget>,
    /// Queue priority of its executions (LOW by default).
    pub priority: Priority,
    /// Most of its executions in flight at once, 1 to [`MAX_CONCURRENCY`].
    pub concurrency: u32,
    /// How outputs are matched against expected outputs; none when `None`.
    pub match_rule: Option<MatchRule>,
    /// Whether outputs are checked against each version's validation rules.
    pub validate_output: bool,
    /// Where it is.
    pub status: ExperimentStatus,
    /// Rows in the dataset when it started.
    pub row_count: u32,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it completed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Experiment {
    /// Executions it runs in all: rows times versions.
    pub fn total(&self) -> u64 {
        u64::from(self.row_count) * self.targets.len() as u64
    }
}

/// A version as a caller names it: a number (`3`, or `"3"`) or a label (`"production"`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetRef {
    /// A version number.
    Number(u32),
    /// A version number as text, or a label name.
    Name(String),
}

impl TargetRef {
    /// As text (`"3"`, `"production"`): what [`ExperimentTarget::requested`] records.
    pub fn as_text(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Name(s) => s.clone(),
        }
    }
}

/// What starting an experiment takes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The prompt whose versions run (ACTIVE).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    /// The dataset whose rows are the inputs.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub dataset_id: DatasetId,
    /// 1 to [`MAX_TARGETS`] versions or labels, resolved when the experiment starts; two
    /// naming the same version run it once.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub versions: Vec<TargetRef>,
    /// Queue priority of its executions; LOW when omitted.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Most executions in flight, 1 to [`MAX_CONCURRENCY`]; [`DEFAULT_CONCURRENCY`] when
    /// omitted.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Match outputs against the rows' expected outputs with this rule.
    #[serde(default, rename = "match")]
    pub match_rule: Option<MatchRule>,
    /// Check outputs against each version's validation rules; false when omitted.
    #[serde(default)]
    pub validate_output: bool,
}

impl ExperimentSpec {
    /// Checks the counts and the cap; returns the concurrency to use.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `versions` (none, or over [`MAX_TARGETS`]) or
    /// `concurrency` (0 or over [`MAX_CONCURRENCY`]).
    pub fn check(&self) -> Result<u32> {
        if self.versions.is_empty() || self.versions.len() > MAX_TARGETS {
            return Err(Error::invalid_argument(
                "versions",
                format!("give 1 to {MAX_TARGETS} versions or labels"),
            ));
        }
        let c = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if c == 0 || c > MAX_CONCURRENCY {
            return Err(Error::invalid_argument(
                "concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        Ok(c)
    }
}

/// One (row, version) pair of an experiment and the execution that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentRun {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// The dataset row's index.
    pub row: u32,
    /// The version.
    pub version: u32,
    /// The execution (created with the idempotency key [`run_key`]).
    pub execution_id: ExecutionId,
}

/// The idempotency key of one (row, version) pair: a resubmission returns the execution the
/// first submission created.
pub fn run_key(experiment: ExperimentId, row: u32, version: u32) -> String {
    format!("experiment:{experiment}:{row}:{version}")
}

/// How far an experiment is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentProgress {
    /// The experiment.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub experiment_id: ExperimentId,
    /// Its status.
    pub status: ExperimentStatus,
    /// Executions in all (rows times versions).
    pub total: u64,
    /// COMPLETED executions.
    pub done: u64,
    /// FAILED or CANCELLED executions.
    pub failed: u64,
    /// Submitted and not final yet.
    pub in_flight: u64,
    /// Cost so far in USD, over priced executions; `None` when none is priced.
    #[serde(with = "rust_decimal::serde::float_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cost_usd: Option<Decimal>,
}

/// How far `experiment` is, from its runs' executions.
pub fn progress(experiment: &Experiment, runs: &[(ExperimentRun, Execution)]) -> ExperimentProgress {
    let mut p = ExperimentProgress {
        experiment_id: experiment.id,
        status: experiment.status,
        total: experiment.total(),
        done: 0,
        failed: 0,
        in_flight: 0,
        cost_usd: None,
    };
    for (_, e) in runs {
        match e.status {
            ExecutionStatus::Completed => p.done += 1,
            ExecutionStatus::Failed | ExecutionStatus::Cancelled => p.failed += 1,
            ExecutionStatus::Queued | ExecutionStatus::Running => p.in_flight += 1,
        }
        if let Some(c) = e.metrics.as_ref().and_then(|m| m.cost_usd) {
            p.cost_usd = Some(p.cost_usd.unwrap_or_default() + c);
        }
    }
    p.cost_usd = p.cost_usd.map(|c| c.normalize());
    p
}

/// One version's result on one row.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowResult {
    /// The version.
    pub version: u32,
    /// The execution; `None` when it was not submitted (cancelled experiment).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub execution_id: Option<ExecutionId>,
    /// The execution's status; `None` when not submitted.
    pub status: Option<ExecutionStatus>,
    /// The model's output.
    pub output: Option<String>,
    /// The validation verdict, when validated.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub validation: Option<ValidationVerdict>,
    /// Whether the output matched the expected output; `None` without a match rule, an
    /// expected output or an output.
    pub matched: Option<bool>,
    /// Why the match could not be decided (a bad regular expression).
    pub match_error: Option<String>,
    /// Total latency in ms.
    pub latency_ms: Option<u64>,
    /// Input plus output tokens.
    pub total_tokens: Option<u64>,
    /// Cost in USD; `None` when unpriced or not run.
    #[serde(with = "rust_decimal::serde::float_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cost_usd: Option<Decimal>,
    /// The execution's error, when it failed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub error: Option<ExecutionError>,
}

/// One row, every version side by side.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RowComparison {
    /// The row's index.
    pub index: u32,
    /// The row's inputs.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub inputs: Map<String, Value>,
    /// The row's expected output.
    pub expected: Option<Value>,
    /// One result per version, in target order.
    pub results: Vec<RowResult>,
}

/// One version's aggregates over the experiment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionComparison {
    /// The version.
    pub version: u32,
    /// As requested (a number or a label).
    pub requested: String,
    /// Counts, latency percentiles (ms), tokens, cost and validation pass rate, as in metrics.
    pub summary: MetricsSummary,
    /// Rows whose match was decided.
    pub match_checked: u64,
    /// Of those, how many matched.
    pub matched: u64,
    /// `matched / match_checked`; `None` when nothing was checked.
    pub match_rate: Option<f64>,
}

/// The side-by-side result of an experiment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The experiment, as stored.
    pub experiment: Experiment,
    /// Progress when the comparison was built.
    pub progress: ExperimentProgress,
    /// Per version, in target order.
    pub versions: Vec<VersionComparison>,
    /// Per row, by index.
    pub rows: Vec<RowComparison>,
}

fn row_result(
    version: u32,
    e: Option<&Execution>,
    expected: Option<&Value>,
    rule: Option<MatchRule>,
) -> RowResult {
    let Some(e) = e else {
        return RowResult {
            version,
            execution_id: None,
            status: None,
            output: None,
            validation: None,
            matched: None,
            match_error: None,
            latency_ms: None,
            total_tokens: None,
            cost_usd: None,
            error: None,
        };
    };
    let (matched, match_error) = match (rule, expected, e.output.as_deref()) {
        (Some(rule), Some(want), Some(out)) if e.status == ExecutionStatus::Completed => {
            match rule.check(out, want) {
                Ok(m) => (Some(m), None),
                Err(err) => (None, Some(err.to_string())),
            }
        }
        _ => (None, None),
    };
    let m = e.metrics.as_ref();
    RowResult {
        version,
        execution_id: Some(e.id),
        status: Some(e.status),
        output: e.output.clone(),
        validation: e.validation.clone(),
        matched,
        match_error,
        latency_ms: m.map(|m| m.latency_ms),
        total_tokens: m.map(|m| m.token_usage.total),
        cost_usd: m.and_then(|m| m.cost_usd),
        error: e.error.clone(),
    }
}

/// The side-by-side result: `rows` are the dataset's rows (any order), `runs` the
/// experiment's runs with their executions.
pub fn compare(
    experiment: &Experiment,
    rows: &[DatasetRow],
    runs: &[(ExperimentRun, Execution)],
) -> Comparison {
    let by_pair: HashMap<(u32, u32), &Execution> =
        runs.iter().map(|(r, e)| ((r.row, r.version), e)).collect();
    let mut aggregators: Vec<(MetricsAggregator, u64, u64)> =
        experiment.targets.iter().map(|_| (MetricsAggregator::new(), 0, 0)).collect();
    let mut sorted: Vec<&DatasetRow> = rows.iter().collect();
    sorted.sort_by_key(|r| r.index);
    let rows = sorted
        .into_iter()
        .map(|row| {
            let results = experiment
                .targets
                .iter()
                .zip(aggregators.iter_mut())
                .map(|(t, (agg, checked, matched))| {
                    let e = by_pair.get(&(row.index, t.version)).copied();
                    if let Some(e) = e {
                        agg.add(&MetricsSample::of(e));
                    }
                    let r = row_result(t.version, e, row.expected.as_ref(), experiment.match_rule);
                    if let Some(m) = r.matched {
                        *checked += 1;
                        *matched += u64::from(m);
                    }
                    r
                })
                .collect();
            RowComparison {
                index: row.index,
                inputs: row.inputs.clone(),
                expected: row.expected.clone(),
                results,
            }
        })
        .collect();
    let versions = experiment
        .targets
        .iter()
        .zip(aggregators)
        .map(|(t, (agg, checked, matched))| VersionComparison {
            version: t.version,
            requested: t.requested.clone(),
            summary: agg.finish(&MetricsQuery::default(), 0).summary,
            match_checked: checked,
            matched,
            match_rate: (checked > 0).then(|| matched as f64 / checked as f64),
        })
        .collect();
    Comparison { experiment: experiment.clone(), progress: progress(experiment, runs), versions, rows }
}

/// One line of an export: one row's result of one version.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportLine<'a> {
    row: u32,
    version: u32,
    inputs: &'a Map<String, Value>,
    expected: Option<&'a Value>,
    status: Option<ExecutionStatus>,
    output: Option<&'a str>,
    validation_passed: Option<bool>,
    matched: Option<bool>,
    latency_ms: Option<u64>,
    total_tokens: Option<u64>,
    #[serde(with = "rust_decimal::serde::float_option")]
    cost_usd: Option<Decimal>,
    error: Option<&'a str>,
}

fn export_lines(c: &Comparison) -> impl Iterator<Item = ExportLine<'_>> {
    c.rows.iter().flat_map(|row| {
        row.results.iter().map(move |r| ExportLine {
            row: row.index,
            version: r.version,
            inputs: &row.inputs,
            expected: row.expected.as_ref(),
            status: r.status,
            output: r.output.as_deref(),
            validation_passed: r.validation.as_ref().map(|v| v.passed),
            matched: r.matched,
            latency_ms: r.latency_ms,
            total_tokens: r.total_tokens,
            cost_usd: r.cost_usd,
            error: r.error.as_ref().map(|e| e.message.as_str()),
        })
    })
}

/// The comparison as JSONL: one object per (row, version), by row then target order, with
/// `row, version, inputs, expected, status, output, validationPassed, matched, latencyMs,
/// totalTokens, costUsd, error`.
///
/// # Errors
/// [`Error::Internal`] if a value does not serialise (it always does).
pub fn export_jsonl(c: &Comparison) -> Result<String> {
    let mut out = String::new();
    for line in export_lines(c) {
        out.push_str(&serde_json::to_string(&line).map_err(|e| Error::internal_from("export line", e))?);
        out.push('\n');
    }
    Ok(out)
}

/// The comparison as CSV with the JSONL export's columns (`inputs` and `expected` as JSON
/// text, empty cells for absent values).
///
/// # Errors
/// [`Error::Internal`] if the CSV writer fails (it writes to memory).
pub fn export_csv(c: &Comparison) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| Error::internal_from("export csv", e);
    w.write_record([
        "row",
        "version",
        "inputs",
        "expected",
        "status",
        "output",
        "validationPassed",
        "matched",
        "latencyMs",
        "totalTokens",
        "costUsd",
        "error",
    ])
    .map_err(fail)?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for l in export_lines(c) {
        w.write_record([
            l.row.to_string(),
            l.version.to_string(),
            Value::Object(l.inputs.clone()).to_string(),
            opt(l.expected.map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })),
            opt(l.status.map(|s| s.as_str().to_string())),
            opt(l.output.map(str::to_string)),
            opt(l.validation_passed.map(|b| b.to_string())),
            opt(l.matched.map(|b| b.to_string())),
            opt(l.latency_ms.map(|v| v.to_string())),
            opt(l.total_tokens.map(|v| v.to_string())),
            opt(l.cost_usd.map(|v| v.normalize().to_string())),
            opt(l.error.map(str::to_string)),
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::internal(format!("export csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::internal_from("export csv", e))
}

#[cfg(test)]
mod tests;
