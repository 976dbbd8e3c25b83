//! Aggregated execution metrics per user, optionally per prompt and version, over a window.
//!
//! The types here are the shared shape; [`aggregate`] is the one aggregation (the memory and
//! SQLite stores feed it their executions; Postgres computes the same numbers in SQL, and the
//! conformance suite checks every store against it). Only final executions (COMPLETED, FAILED)
//! contribute latency, tokens and cost; counts cover every status.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::PromptId;

pub mod aggregate;
pub mod rollup;

pub use aggregate::{MAX_PROMPTS_IN_REPORT, MetricsAggregator, MetricsSample};
pub use rollup::{Granularity, MetricsSeries, MetricsSeriesQuery, SeriesPoint};
/// The one rule for a `[since, until)` window, for every query that takes one (metrics,
/// execution lists): when both ends are given, `since` is before `until`.
///
/// # Errors
/// [`Error::InvalidArgument`] on `since` otherwise.
pub fn check_window(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<()> {
    match (since, until) {
        (Some(since), Some(until)) if since >= until => {
            Err(Error::invalid_argument("since", "must be before until"))
        }
        _ => Ok(()),
    }
}

/// Which executions to aggregate: the caller's own, created in `[since, until)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsQuery {
    /// Inclusive lower bound on `createdAt`; `None`: no bound.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `createdAt`; `None`: no bound.
    pub until: Option<DateTime<Utc>>,
    /// Only this prompt's executions.
    pub prompt_id: Option<PromptId>,
    /// Only with `prompt_id`.
    pub prompt_version: Option<u32>,
}

impl MetricsQuery {
    /// The query's rules, checked by the engine for every adapter: a version filter needs a
    /// prompt filter; the window is [`check_window`]'s.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `version` or `since`.
    pub fn check(&self) -> Result<()> {
        if self.prompt_version.is_some() && self.prompt_id.is_none() {
            return Err(Error::invalid_argument("version", "a version filter needs a prompt filter"));
        }
        check_window(self.since, self.until)
    }
}

/// Executions per status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    /// Executions QUEUED.
    pub queued: u64,
    /// Executions RUNNING.
    pub running: u64,
    /// Executions COMPLETED.
    pub completed: u64,
    /// Executions FAILED.
    pub failed: u64,
    /// Executions CANCELLED.
    pub cancelled: u64,
    /// All of them.
    pub total: u64,
}

/// Latency percentiles in milliseconds; `None` when there is no sample.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// Median, in milliseconds.
    pub p50: Option<f64>,
    /// 95th percentile, in milliseconds.
    pub p95: Option<f64>,
    /// 99th percentile, in milliseconds.
    pub p99: Option<f64>,
}

/// Token totals.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenTotals {
    /// Input (prompt) tokens, cached ones included.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// Cached input tokens (part of `input`).
    pub cached: u64,
    /// Input plus output.
    pub total: u64,
}

/// Aggregates of one scope (all of a user's executions, or one prompt's, or one version's).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSummary {
    /// Executions per status.
    pub counts: StatusCounts,
    /// Total latency (acceptance to final state).
    pub latency_ms: Percentiles,
    /// Provider call latency.
    pub provider_latency_ms: Percentiles,
    /// Token totals over executions with metrics.
    pub tokens: TokenTotals,
    /// Sum over the priced final executions only; `None` (JSON `null`) when none of them has
    /// a price, so an unknown cost never reads as `0`. When some are unpriced, the sum is
    /// partial and [`Self::unpriced_executions`] says how many are missing from it.
    #[serde(with = "rust_decimal::serde::float_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub cost_usd: Option<Decimal>,
    /// Final executions whose model had no price: missing from `costUsd`.
    pub unpriced_executions: u64,
    /// Completed executions whose output was validated.
    pub validated: u64,
    /// Of those, how many passed every rule.
    pub validation_passed: u64,
    /// `validation_passed / validated`, `None` when nothing was validated.
    pub validation_pass_rate: Option<f64>,
}

/// One prompt's aggregates.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptMetrics {
    /// The prompt.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    /// Its aggregates (flattened into this object in JSON).
    #[serde(flatten)]
    pub summary: MetricsSummary,
}

/// What `metrics` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    /// The query's lower bound, echoed.
    pub since: Option<DateTime<Utc>>,
    /// The query's upper bound, echoed.
    pub until: Option<DateTime<Utc>>,
    /// Aggregates of every matching execution (flattened into this object in JSON).
    #[serde(flatten)]
    pub summary: MetricsSummary,
    /// Executions of this user waiting to run now.
    pub queue_depth: u64,
    /// Per prompt, most executions first (at most [`MAX_PROMPTS_IN_REPORT`] prompts).
    pub by_prompt: Vec<PromptMetrics>,
    /// With a prompt filter: per version of the prompt, ascending (empty otherwise).
    #[serde(default)]
    pub by_version: Vec<VersionMetrics>,
    /// With a prompt filter: per label the executions were resolved through (`label: null`
    /// for executions run by version number or the current version), by name (empty
    /// otherwise).
    #[serde(default)]
    pub by_label: Vec<LabelMetrics>,
}

/// One version's aggregates within a prompt's report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionMetrics {
    /// The version.
    pub version: u32,
    /// Its share of the prompt's executions in the window, `0.0..=1.0`.
    pub share: f64,
    /// Its aggregates (flattened into this object in JSON).
    #[serde(flatten)]
    pub summary: MetricsSummary,
}

/// One label's aggregates within a prompt's report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelMetrics {
    /// The label the executions were resolved through; `null`: none (by version or current).
    pub label: Option<String>,
    /// Its share of the prompt's executions in the window, `0.0..=1.0`.
    pub share: f64,
    /// Its aggregates (flattened into this object in JSON).
    #[serde(flatten)]
    pub summary: MetricsSummary,
}

/// Nearest-rank percentile of an ascending-sorted slice (`q` in `0.0..=1.0`).
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 0.5), Some(50.0));
        assert_eq!(percentile_sorted(&v, 0.99), Some(99.0));
        assert_eq!(percentile_sorted(&v, 1.0), Some(100.0));
        assert_eq!(percentile_sorted(&[], 0.5), None);
        assert_eq!(percentile_sorted(&[7.0], 0.99), Some(7.0));
    }
}
