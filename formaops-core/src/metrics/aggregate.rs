//! The one metrics aggregation: executions in, a [`MetricsReport`] out.
//!
//! A store feeds [`MetricsAggregator::add`] one [`MetricsSample`] per matching execution (an
//! [`Execution`], or the few columns of a row) and asks [`MetricsAggregator::finish`] for the
//! report. Rules, in one place:
//!
//! - counts cover every status;
//! - latency, provider latency, tokens and cost come from final executions (COMPLETED,
//!   FAILED) that have metrics; `costUsd` sums the priced ones (exact decimal, never floating
//!   point) and is `None` when none is priced (an unknown cost is never `0`); one without a
//!   price counts in `unpricedExecutions` (so a sum with unpriced ones is known to be partial);
//! - validation counts COMPLETED executions that were validated;
//! - percentiles are nearest-rank;
//! - `byPrompt` lists the [`MAX_PROMPTS_IN_REPORT`] prompts with most executions, ties by id
//!   ([`rank_prompts`], also used by stores that aggregate in SQL).

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::{
    MetricsQuery, MetricsReport, MetricsSummary, Percentiles, PromptMetrics, StatusCounts, TokenTotals,
    percentile_sorted,
};
use crate::execution::{Execution, ExecutionMetrics, ExecutionStatus};
use crate::ids::PromptId;

/// Most prompts listed in a report's `byPrompt`.
pub const MAX_PROMPTS_IN_REPORT: usize = 100;

/// What the aggregation reads of one execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricsSample {
    /// The execution's prompt.
    pub prompt_id: PromptId,
    /// The execution's status.
    pub status: ExecutionStatus,
    /// Total latency in ms; `None` when the execution has no metrics.
    pub latency_ms: Option<u64>,
    /// Provider call latency in ms (read only with `latency_ms`).
    pub provider_latency_ms: u64,
    /// The execution's tokens (zero without metrics).
    pub tokens: TokenTotals,
    /// `None`: unpriced.
    pub cost_usd: Option<Decimal>,
    /// Whether the output passed validation; `None` when it was not validated.
    pub validation_passed: Option<bool>,
}

impl MetricsSample {
    /// The sample of an execution.
    pub fn of(e: &Execution) -> Self {
        Self::from_parts(e.prompt_id, e.status, e.metrics.as_ref(), e.validation.as_ref().map(|v| v.passed))
    }

    /// The sample of an execution of `prompt_id` in `status` with these metrics and verdict.
    pub fn from_parts(
        prompt_id: PromptId,
        status: ExecutionStatus,
        m: Option<&ExecutionMetrics>,
        validation_passed: Option<bool>,
    ) -> Self {
        Self {
            prompt_id,
            status,
            latency_ms: m.map(|m| m.latency_ms),
            provider_latency_ms: m.map_or(0, |m| m.provider_latency_ms),
            tokens: m.map_or_else(TokenTotals::default, |m| TokenTotals {
                input: m.token_usage.input,
                output: m.token_usage.output,
                cached: m.token_usage.cached,
                total: m.token_usage.total,
            }),
            cost_usd: m.and_then(|m| m.cost_usd),
            validation_passed,
        }
    }
}

/// Running aggregates of one scope.
#[derive(Debug, Default)]
struct Accumulator {
    counts: StatusCounts,
    latency: Vec<f64>,
    provider_latency: Vec<f64>,
    tokens: TokenTotals,
    /// `None` until a priced execution is added.
    cost: Option<Decimal>,
    unpriced: u64,
    validated: u64,
    passed: u64,
}

impl Accumulator {
    fn add(&mut self, s: &MetricsSample) {
        let c = &mut self.counts;
        let n = match s.status {
            ExecutionStatus::Queued => &mut c.queued,
            ExecutionStatus::Running => &mut c.running,
            ExecutionStatus::Completed => &mut c.completed,
            ExecutionStatus::Failed => &mut c.failed,
            ExecutionStatus::Cancelled => &mut c.cancelled,
        };
        *n = n.saturating_add(1);
        c.total = c.total.saturating_add(1);
        let is_final = matches!(s.status, ExecutionStatus::Completed | ExecutionStatus::Failed);
        if is_final && let Some(latency) = s.latency_ms {
            self.latency.push(latency as f64);
            self.provider_latency.push(s.provider_latency_ms as f64);
            let t = &mut self.tokens;
            t.input = t.input.saturating_add(s.tokens.input);
            t.output = t.output.saturating_add(s.tokens.output);
            t.cached = t.cached.saturating_add(s.tokens.cached);
            t.total = t.total.saturating_add(s.tokens.total);
            match s.cost_usd {
                Some(cost) => self.cost = Some(self.cost.unwrap_or_default().saturating_add(cost)),
                None => self.unpriced = self.unpriced.saturating_add(1),
            }
        }
        if s.status == ExecutionStatus::Completed
            && let Some(passed) = s.validation_passed
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
            cost_usd: self.cost.map(|c| c.normalize()),
            unpriced_executions: self.unpriced,
            validated: self.validated,
            validation_passed: self.passed,
            validation_pass_rate: (self.validated > 0).then(|| self.passed as f64 / self.validated as f64),
        }
    }
}

/// Aggregates samples into a report: the whole scope and each prompt.
#[derive(Debug, Default)]
pub struct MetricsAggregator {
    all: Accumulator,
    by_prompt: HashMap<PromptId, Accumulator>,
}

impl MetricsAggregator {
    /// An aggregator that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one execution that matches the query.
    pub fn add(&mut self, sample: &MetricsSample) {
        self.all.add(sample);
        self.by_prompt.entry(sample.prompt_id).or_default().add(sample);
    }

    /// The report for `query` (its window is echoed), with the user's `queue_depth`.
    pub fn finish(self, query: &MetricsQuery, queue_depth: u64) -> MetricsReport {
        let mut by_prompt: Vec<PromptMetrics> = self
            .by_prompt
            .into_iter()
            .map(|(prompt_id, acc)| PromptMetrics { prompt_id, summary: acc.finish() })
            .collect();
        rank_prompts(&mut by_prompt);
        MetricsReport {
            since: query.since,
            until: query.until,
            summary: self.all.finish(),
            queue_depth,
            by_prompt,
            by_version: Vec::new(),
            by_label: Vec::new(),
        }
    }
}

/// Orders per-prompt aggregates most executions first (ties by prompt id) and keeps the first
/// [`MAX_PROMPTS_IN_REPORT`].
pub fn rank_prompts(by_prompt: &mut Vec<PromptMetrics>) {
    by_prompt.sort_by(|a, b| {
        b.summary.counts.total.cmp(&a.summary.counts.total).then_with(|| a.prompt_id.cmp(&b.prompt_id))
    });
    by_prompt.truncate(MAX_PROMPTS_IN_REPORT);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        prompt: PromptId,
        status: ExecutionStatus,
        latency: Option<u64>,
        cost: Option<&str>,
    ) -> MetricsSample {
        MetricsSample {
            prompt_id: prompt,
            status,
            latency_ms: latency,
            provider_latency_ms: latency.map_or(0, |l| l / 2),
            tokens: TokenTotals { input: 10, output: 5, cached: 1, total: 15 },
            cost_usd: cost.map(|c| c.parse().unwrap()),
            validation_passed: (status == ExecutionStatus::Completed)
                .then_some(latency.unwrap_or(0).is_multiple_of(2)),
        }
    }

    #[test]
    fn aggregates_only_final_runs_and_keeps_cost_exact() {
        let (p1, p2) = (PromptId::new(), PromptId::new());
        let mut a = MetricsAggregator::new();
        for i in 1..=10 {
            a.add(&sample(p1, ExecutionStatus::Completed, Some(i * 10), Some("0.1")));
        }
        a.add(&sample(p2, ExecutionStatus::Failed, Some(1000), None));
        a.add(&sample(p2, ExecutionStatus::Queued, None, None));
        let r = a.finish(&MetricsQuery::default(), 1);
        let s = &r.summary;
        assert_eq!((s.counts.total, s.counts.completed, s.counts.queued, s.counts.failed), (12, 10, 1, 1));
        // 10 x 0.1 is exactly 1 as a decimal (it would not be as f64).
        assert_eq!(s.cost_usd, Some(Decimal::ONE));
        assert_eq!(s.unpriced_executions, 1);
        assert_eq!(s.latency_ms.p50, Some(60.0));
        assert_eq!(s.latency_ms.p99, Some(1000.0));
        assert_eq!(s.provider_latency_ms.p99, Some(500.0));
        assert_eq!(s.tokens.input, 110, "the queued one adds no tokens");
        assert_eq!((s.validated, s.validation_passed, s.validation_pass_rate), (10, 10, Some(1.0)));
        assert_eq!(r.by_prompt.len(), 2);
        assert_eq!(r.by_prompt[0].prompt_id, p1);
        assert_eq!(r.by_prompt[1].summary.counts.total, 2);
        assert_eq!(r.queue_depth, 1);
    }

    #[test]
    fn an_unknown_cost_never_adds_up_to_zero() {
        let p = PromptId::new();
        // Every final execution unpriced (any number of them): cost unknown, not 0.
        for n in [1, 3, 34] {
            let mut a = MetricsAggregator::new();
            for _ in 0..n {
                a.add(&sample(p, ExecutionStatus::Completed, Some(10), None));
            }
            a.add(&sample(p, ExecutionStatus::Failed, Some(10), None));
            let r = a.finish(&MetricsQuery::default(), 0);
            assert_eq!(r.summary.cost_usd, None, "{n} unpriced");
            assert_eq!(r.summary.unpriced_executions, n + 1);
            assert_eq!(r.by_prompt[0].summary.cost_usd, None);
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["costUsd"], serde_json::Value::Null);
            assert_eq!(json["byPrompt"][0]["costUsd"], serde_json::Value::Null);
        }
        // Nothing final: nothing priced either.
        let mut a = MetricsAggregator::new();
        a.add(&sample(p, ExecutionStatus::Queued, None, None));
        assert_eq!(a.finish(&MetricsQuery::default(), 0).summary.cost_usd, None);
        // A priced zero is a known zero; a partial sum says how many are missing.
        let mut a = MetricsAggregator::new();
        a.add(&sample(p, ExecutionStatus::Completed, Some(10), Some("0")));
        a.add(&sample(p, ExecutionStatus::Completed, Some(10), None));
        let s = a.finish(&MetricsQuery::default(), 0).summary;
        assert_eq!((s.cost_usd, s.unpriced_executions), (Some(Decimal::ZERO), 1));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["costUsd"], serde_json::json!(0.0));
    }

    #[test]
    fn by_prompt_keeps_the_busiest_hundred() {
        let mut a = MetricsAggregator::new();
        let busy = PromptId::new();
        for _ in 0..3 {
            a.add(&sample(busy, ExecutionStatus::Queued, None, None));
        }
        for _ in 0..150 {
            a.add(&sample(PromptId::new(), ExecutionStatus::Queued, None, None));
        }
        let r = a.finish(&MetricsQuery::default(), 0);
        assert_eq!(r.by_prompt.len(), MAX_PROMPTS_IN_REPORT);
        assert_eq!(r.by_prompt[0].prompt_id, busy);
        assert!(r.by_prompt[1..].windows(2).all(|w| w[0].prompt_id < w[1].prompt_id), "ties by id");
        assert_eq!(r.summary.counts.total, 153);
    }
}
