//! Metrics rollups: what the stores keep per time bucket so that metrics never scan executions.
//!
//! When an execution becomes final (finish batch, cancel, rescue to FAILED) the store turns the
//! batch into [`RollupRow`]s with [`group_deltas`] — the one rule, here — and adds them, in the
//! same transaction, to its rollups with one grouped upsert: every field of a [`RollupDelta`]
//! is a sum, so adding is commutative and two batches never need to read each other.
//!
//! - **Key.** [`RollupKey`]: user, prompt, version, label (the one the execution was resolved
//!   through; `None` when it ran by version number or the current version), granularity and the
//!   start of the time bucket holding the execution's `createdAt`. Every execution is added at
//!   each [`Granularity`] (minute, hour, day), so a long window reads a few coarse rows.
//! - **Latency.** [`LatencyHistogram`]: fixed log-scale buckets (DDSketch's index with relative
//!   accuracy [`RELATIVE_ACCURACY`] = 1 %): a percentile read from merged buckets is within 1 %
//!   of the exact nearest-rank percentile. Zero goes to its own bucket; the histogram is
//!   mergeable by adding counts per bucket index.
//! - **Live counts.** QUEUED and RUNNING executions are not final and are not rolled up: the
//!   report reads them from the executions table ([`LiveCount`]).
//! - **Windows.** A window is rounded outward to whole minutes (`since` down, `until` up) and
//!   read as the fewest buckets that cover it ([`cover`]): minutes at the edges, hours, days in
//!   the middle. A series reads buckets of the one granularity asked, its window rounded
//!   outward to that granularity.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    LabelMetrics, MetricsQuery, MetricsReport, MetricsSample, MetricsSummary, Percentiles, PromptMetrics,
    StatusCounts, TokenTotals, VersionMetrics, aggregate::rank_prompts,
};
use crate::error::{Error, Result};
use crate::execution::{AttemptOutcome, AttemptResult, Execution, ExecutionStatus};
use crate::ids::{PromptId, UserId};

/// The stated relative error of every rollup percentile: at most 1 %.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// `(1 + a) / (1 - a)`: the ratio between consecutive bucket bounds.
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// The bucket index of zero (and of anything not positive).
pub const ZERO_BUCKET: i32 = i32::MIN;

/// Most points one series answer may hold.
pub const MAX_SERIES_POINTS: i64 = 1_500;

/// Buckets in a series when the query gives no `since`.
pub const DEFAULT_SERIES_POINTS: i64 = 60;

/// A mergeable latency histogram: counts per log-scale bucket index.
///
/// Bucket `i > ZERO_BUCKET` holds values in `(GAMMA^(i-1), GAMMA^i]` with
/// `GAMMA = (1 + 0.01) / (1 - 0.01)`; its representative value `2 GAMMA^i / (GAMMA + 1)` is
/// within 1 % of every value in it. Zero and negative values count in [`ZERO_BUCKET`] (value 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: BTreeMap<i32, u64>,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bucket index of a value (milliseconds).
    pub fn index_of(value: f64) -> i32 {
        if value.is_nan() || value <= 0.0 {
            return ZERO_BUCKET;
        }
        // Finite and positive: ln(value) / ln(GAMMA) is within +-2300 for any f64.
        let i = (value.ln() / GAMMA.ln()).ceil();
        i.clamp(f64::from(ZERO_BUCKET + 1), f64::from(i32::MAX)) as i32
    }

    /// The value a bucket stands for: within 1 % of every value it holds.
    pub fn value_of(index: i32) -> f64 {
        if index == ZERO_BUCKET {
            return 0.0;
        }
        2.0 * GAMMA.powi(index) / (GAMMA + 1.0)
    }

    /// Counts one value (milliseconds).
    pub fn add(&mut self, value: f64) {
        self.add_count(Self::index_of(value), 1);
    }

    /// Adds `n` to a bucket (for stores reading stored buckets back).
    pub fn add_count(&mut self, index: i32, n: u64) {
        if n > 0 {
            let c = self.buckets.entry(index).or_default();
            *c = c.saturating_add(n);
        }
    }

    /// Adds every bucket of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (&i, &n) in &other.buckets {
            self.add_count(i, n);
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.buckets.values().fold(0u64, |a, &n| a.saturating_add(n))
    }

    /// `(index, count)` per non-empty bucket, ascending.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.buckets.iter().map(|(&i, &n)| (i, n))
    }

    /// Nearest-rank percentile (`q` in `0.0..=1.0`), within 1 % of the exact one; `None` when
    /// empty.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (&i, &c) in &self.buckets {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(Self::value_of(i));
            }
        }
        self.buckets.keys().next_back().map(|&i| Self::value_of(i))
    }

    /// p50, p95 and p99.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles { p50: self.percentile(0.5), p95: self.percentile(0.95), p99: self.percentile(0.99) }
    }
}

/// The width of a rollup time bucket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Granularity {
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds (UTC days).
    Day,
}

impl Granularity {
    /// Every granularity, finest first.
    pub const ALL: [Self; 3] = [Self::Minute, Self::Hour, Self::Day];

    /// The bucket width in seconds (also how stores record the granularity).
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// The granularity whose width is `seconds`.
    pub fn from_seconds(seconds: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.seconds() == seconds)
    }

    /// The start of the bucket holding `t`.
    pub fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let w = self.seconds();
        let s = t.timestamp().div_euclid(w) * w;
        Utc.timestamp_opt(s, 0).single().unwrap_or(t)
    }

    /// The start of the first bucket at or after `t`.
    pub fn ceil(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let f = self.floor(t);
        if f == t { f } else { f + Duration::seconds(self.seconds()) }
    }
}

/// Where one rollup row belongs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    /// The owner.
    pub user_id: UserId,
    /// Bucket width.
    pub granularity: Granularity,
    /// Bucket start (UTC, aligned to the granularity).
    pub bucket_start: DateTime<Utc>,
    /// The executions' prompt.
    pub prompt_id: PromptId,
    /// Their version.
    pub prompt_version: u32,
    /// The label they were resolved through; `None`: none.
    pub label: Option<String>,
}

/// What one rollup row adds up. Every field is a sum, so deltas merge by addition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupDelta {
    /// Executions that became COMPLETED.
    pub completed: u64,
    /// Executions that became FAILED.
    pub failed: u64,
    /// Executions that became CANCELLED.
    pub cancelled: u64,
    /// Tokens of final executions with metrics.
    pub tokens: TokenTotals,
    /// Sum of the priced costs (USD).
    pub cost_usd: Decimal,
    /// Final executions with metrics and a price.
    pub priced: u64,
    /// Final executions with metrics and no price.
    pub unpriced: u64,
    /// COMPLETED executions whose output was validated.
    pub validated: u64,
    /// Of those, the ones that passed.
    pub validation_passed: u64,
    /// Total latency (ms) of final executions with metrics.
    pub latency: LatencyHistogram,
    /// Provider latency (ms) of the same executions.
    pub provider_latency: LatencyHistogram,
}

impl RollupDelta {
    /// Adds one execution that became final (the rules of [`super::aggregate`]: latency,
    /// tokens and cost from COMPLETED/FAILED with metrics; validation from COMPLETED).
    pub fn add(&mut self, s: &MetricsSample) {
        match s.status {
            ExecutionStatus::Completed => self.completed += 1,
            ExecutionStatus::Failed => self.failed += 1,
            ExecutionStatus::Cancelled => self.cancelled += 1,
            ExecutionStatus::Queued | ExecutionStatus::Running => return,
        }
        let is_final = matches!(s.status, ExecutionStatus::Completed | ExecutionStatus::Failed);
        if is_final && let Some(latency) = s.latency_ms {
            self.latency.add(latency as f64);
            self.provider_latency.add(s.provider_latency_ms as f64);
            add_tokens(&mut self.tokens, &s.tokens);
            match s.cost_usd {
                Some(c) => {
                    self.cost_usd = self.cost_usd.saturating_add(c);
                    self.priced += 1;
                }
                None => self.unpriced += 1,
            }
        }
        if s.status == ExecutionStatus::Completed
            && let Some(passed) = s.validation_passed
        {
            self.validated += 1;
            self.validation_passed += u64::from(passed);
        }
    }

    /// Adds every field of `other`.
    pub fn merge(&mut self, o: &Self) {
        self.completed = self.completed.saturating_add(o.completed);
        self.failed = self.failed.saturating_add(o.failed);
        self.cancelled = self.cancelled.saturating_add(o.cancelled);
        add_tokens(&mut self.tokens, &o.tokens);
        self.cost_usd = self.cost_usd.saturating_add(o.cost_usd);
        self.priced = self.priced.saturating_add(o.priced);
        self.unpriced = self.unpriced.saturating_add(o.unpriced);
        self.validated = self.validated.saturating_add(o.validated);
        self.validation_passed = self.validation_passed.saturating_add(o.validation_passed);
        self.latency.merge(&o.latency);
        self.provider_latency.merge(&o.provider_latency);
    }

    /// The summary these sums make, with the live QUEUED/RUNNING counts.
    pub fn summary(&self, live: LiveCounts) -> MetricsSummary {
        let counts = StatusCounts {
            queued: live.queued,
            running: live.running,
            completed: self.completed,
            failed: self.failed,
            cancelled: self.cancelled,
            total: live.queued + live.running + self.completed + self.failed + self.cancelled,
        };
        MetricsSummary {
            counts,
            latency_ms: self.latency.percentiles(),
            provider_latency_ms: self.provider_latency.percentiles(),
            tokens: self.tokens,
            cost_usd: (self.priced > 0).then(|| self.cost_usd.normalize()),
            unpriced_executions: self.unpriced,
            validated: self.validated,
            validation_passed: self.validation_passed,
            validation_pass_rate: (self.validated > 0)
                .then(|| self.validation_passed as f64 / self.validated as f64),
        }
    }
}

fn add_tokens(t: &mut TokenTotals, o: &TokenTotals) {
    t.input = t.input.saturating_add(o.input);
    t.output = t.output.saturating_add(o.output);
    t.cached = t.cached.saturating_add(o.cached);
    t.total = t.total.saturating_add(o.total);
}

/// One execution that just became final, as a store knows it after the write.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalExecution {
    /// The owner.
    pub user_id: UserId,
    /// Its version.
    pub prompt_version: u32,
    /// The label it was resolved through.
    pub label: Option<String>,
    /// Its acceptance time: picks the bucket.
    pub created_at: DateTime<Utc>,
    /// Its status (final) and metrics.
    pub sample: MetricsSample,
}

impl FinalExecution {
    /// An execution as stored after the write (a cancel, a rescue, the memory store's finish).
    pub fn of(e: &Execution) -> Self {
        Self {
            user_id: e.user_id,
            prompt_version: e.prompt_version,
            label: e.label.clone(),
            created_at: e.created_at,
            sample: MetricsSample::of(e),
        }
    }

    /// A finished attempt applied to the execution `(prompt, version, label, created_at)`;
    /// `None` when the outcome is a retry (not final).
    pub fn of_result(
        r: &AttemptResult,
        prompt_id: PromptId,
        prompt_version: u32,
        label: Option<String>,
        created_at: DateTime<Utc>,
    ) -> Option<Self> {
        let (status, metrics, validation) = match &r.outcome {
            AttemptOutcome::Completed { metrics, validation, .. } => {
                (ExecutionStatus::Completed, Some(metrics), validation.as_ref().map(|v| v.passed))
            }
            AttemptOutcome::Failed { metrics, .. } => (ExecutionStatus::Failed, metrics.as_ref(), None),
            AttemptOutcome::Retry { .. } => return None,
        };
        let sample = MetricsSample::from_parts(prompt_id, status, metrics, validation);
        Some(Self { user_id: r.user_id, prompt_version, label, created_at, sample })
    }
}

/// One grouped rollup row: a key and what to add to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    /// Where it belongs.
    pub key: RollupKey,
    /// What to add.
    pub delta: RollupDelta,
}

/// The rule that turns a batch of executions that became final into rollup rows: grouped by
/// key, one row per key and [`Granularity`], in key order (stores upsert them in that order,
/// so concurrent batches lock rows in the same order). Non-final executions are skipped.
pub fn group_deltas(finals: &[FinalExecution]) -> Vec<RollupRow> {
    let mut groups = RollupGroups::new();
    groups.add(finals);
    groups.take()
}

/// [`group_deltas`] over several batches: executions added batch by batch, rows taken when the
/// caller chooses. A key met in many batches becomes one row, so a store that writes what it
/// takes writes that row once, not once per batch (the backfill: rewriting the same hour and
/// day rows once per chunk of executions left the rollup tables tens of times their size).
#[derive(Debug, Default)]
pub struct RollupGroups {
    grouped: BTreeMap<RollupKey, RollupDelta>,
}

impl RollupGroups {
    /// Nothing grouped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the final executions among `finals` (non-final ones are skipped).
    pub fn add(&mut self, finals: &[FinalExecution]) {
        for f in finals.iter().filter(|f| f.sample.status.is_final()) {
            for g in Granularity::ALL {
                let key = RollupKey {
                    user_id: f.user_id,
                    granularity: g,
                    bucket_start: g.floor(f.created_at),
                    prompt_id: f.sample.prompt_id,
                    prompt_version: f.prompt_version,
                    label: f.label.clone(),
                };
                self.grouped.entry(key).or_default().add(&f.sample);
            }
        }
    }

    /// Rows held (distinct keys).
    pub fn len(&self) -> usize {
        self.grouped.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.grouped.is_empty()
    }

    /// The rows grouped so far, in key order; none are held afterwards.
    pub fn take(&mut self) -> Vec<RollupRow> {
        std::mem::take(&mut self.grouped).into_iter().map(|(key, delta)| RollupRow { key, delta }).collect()
    }
}

/// A `[start, end)` range of buckets of one granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRange {
    /// Bucket width.
    pub granularity: Granularity,
    /// First bucket start (inclusive).
    pub start: DateTime<Utc>,
    /// Bound on bucket starts (exclusive).
    pub end: DateTime<Utc>,
}

/// The earliest instant a report without `since` reads from.
pub fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// The bound a report without `until` reads to (year 3000).
pub fn far_future() -> DateTime<Utc> {
    Utc.timestamp_opt(32_503_680_000, 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The window a report reads: `[since, until)` rounded outward to whole minutes; no bound:
/// [`epoch`] and [`far_future`].
pub fn report_window(q: &MetricsQuery) -> (DateTime<Utc>, DateTime<Utc>) {
    let since = Granularity::Minute.floor(q.since.unwrap_or_else(epoch));
    let until = Granularity::Minute.ceil(q.until.unwrap_or_else(far_future));
    (since, until)
}

/// The fewest bucket ranges that cover `[since, until)` exactly, both ends on minute bounds:
/// minutes up to the first hour, hours up to the first day, days, then hours and minutes to
/// the end. At most five ranges.
pub fn cover(since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<BucketRange> {
    let mut out = Vec::new();
    let mut push = |granularity, start: DateTime<Utc>, end: DateTime<Utc>| {
        if start < end {
            out.push(BucketRange { granularity, start, end });
        }
    };
    let (h1, h2) = (Granularity::Hour.ceil(since), Granularity::Hour.floor(until));
    if h1 >= h2 {
        push(Granularity::Minute, since, until);
        return out;
    }
    let (d1, d2) = (Granularity::Day.ceil(h1), Granularity::Day.floor(h2));
    push(Granularity::Minute, since, h1);
    if d1 >= d2 {
        push(Granularity::Hour, h1, h2);
    } else {
        push(Granularity::Hour, h1, d1);
        push(Granularity::Day, d1, d2);
        push(Granularity::Hour, d2, h2);
    }
    push(Granularity::Minute, h2, until);
    out
}

/// QUEUED and RUNNING executions (live, not rolled up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// QUEUED now.
    pub queued: u64,
    /// RUNNING now.
    pub running: u64,
}

impl LiveCounts {
    fn add(&mut self, o: LiveCounts) {
        self.queued = self.queued.saturating_add(o.queued);
        self.running = self.running.saturating_add(o.running);
    }
}

/// Live counts of one (prompt, version, label) group in the report's window.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCount {
    /// The prompt.
    pub prompt_id: PromptId,
    /// The version.
    pub prompt_version: u32,
    /// The label.
    pub label: Option<String>,
    /// How many are QUEUED and RUNNING.
    pub counts: LiveCounts,
}

#[derive(Debug, Default)]
struct Group {
    delta: RollupDelta,
    live: LiveCounts,
}

impl Group {
    fn total(&self) -> u64 {
        self.live.queued + self.live.running + self.delta.completed + self.delta.failed + self.delta.cancelled
    }

    fn summary(&self) -> MetricsSummary {
        self.delta.summary(self.live)
    }
}

/// Builds a [`MetricsReport`] from rollup rows and live counts of the report's window.
#[derive(Debug, Default)]
pub struct RollupReport {
    all: Group,
    by_prompt: HashMap<PromptId, Group>,
    by_version: BTreeMap<u32, Group>,
    by_label: BTreeMap<Option<String>, Group>,
}

impl RollupReport {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rollup row's sums (already filtered to the query's scope).
    pub fn add(&mut self, prompt_id: PromptId, version: u32, label: Option<String>, delta: &RollupDelta) {
        self.all.delta.merge(delta);
        self.by_prompt.entry(prompt_id).or_default().delta.merge(delta);
        self.by_version.entry(version).or_default().delta.merge(delta);
        self.by_label.entry(label).or_default().delta.merge(delta);
    }

    /// Adds live counts (already filtered to the query's scope).
    pub fn add_live(&mut self, c: &LiveCount) {
        self.all.live.add(c.counts);
        self.by_prompt.entry(c.prompt_id).or_default().live.add(c.counts);
        self.by_version.entry(c.prompt_version).or_default().live.add(c.counts);
        self.by_label.entry(c.label.clone()).or_default().live.add(c.counts);
    }

    /// The report. Per-version and per-label breakdowns are given for a prompt query only.
    pub fn finish(self, query: &MetricsQuery, queue_depth: u64) -> MetricsReport {
        let mut by_prompt: Vec<PromptMetrics> = self
            .by_prompt
            .iter()
            .map(|(&prompt_id, g)| PromptMetrics { prompt_id, summary: g.summary() })
            .collect();
        rank_prompts(&mut by_prompt);
        let total = self.all.total();
        let share = |g: &Group| if total == 0 { 0.0 } else { g.total() as f64 / total as f64 };
        let (by_version, by_label) = if query.prompt_id.is_some() {
            (
                self.by_version
                    .iter()
                    .map(|(&version, g)| VersionMetrics { version, share: share(g), summary: g.summary() })
                    .collect(),
                self.by_label
                    .iter()
                    .map(|(label, g)| LabelMetrics {
                        label: label.clone(),
                        share: share(g),
                        summary: g.summary(),
                    })
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        MetricsReport {
            since: query.since,
            until: query.until,
            summary: self.all.summary(),
            queue_depth,
            by_prompt,
            by_version,
            by_label,
        }
    }
}

/// What a series covers: one user's executions, optionally of one prompt (and version or
/// label), created in `[since, until)`, in buckets of `bucket`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSeriesQuery {
    /// Bucket width of every point.
    pub bucket: Granularity,
    /// Inclusive lower bound on `createdAt`, rounded down to the bucket; `None`:
    /// [`DEFAULT_SERIES_POINTS`] buckets before `until`.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound on `createdAt`, rounded up to the bucket; `None`: now.
    pub until: Option<DateTime<Utc>>,
    /// Only this prompt's executions.
    pub prompt_id: Option<PromptId>,
    /// Only this version (needs `prompt_id`).
    pub prompt_version: Option<u32>,
    /// Only executions resolved through this label (needs `prompt_id`).
    pub label: Option<String>,
}

impl MetricsSeriesQuery {
    /// Checks the query and resolves its window against `now`: `[since, until)` on bucket
    /// bounds, at most [`MAX_SERIES_POINTS`] buckets.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `version` or `label` (without a prompt), `label` (a
    /// bad name), `since` (not before `until`) or `since` (too many points).
    pub fn window(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
        if self.prompt_version.is_some() && self.prompt_id.is_none() {
            return Err(Error::invalid_argument("version", "a version filter needs a prompt filter"));
        }
        if let Some(label) = &self.label {
            if self.prompt_id.is_none() {
                return Err(Error::invalid_argument("label", "a label filter needs a prompt filter"));
            }
            crate::prompt::label::check_label_name("label", label)?;
        }
        super::check_window(self.since, self.until)?;
        let w = self.bucket.seconds();
        let until = self.bucket.ceil(self.until.unwrap_or(now));
        let since = match self.since {
            Some(s) => self.bucket.floor(s),
            None => until - Duration::seconds(w * DEFAULT_SERIES_POINTS),
        };
        let points = (until - since).num_seconds() / w;
        if points > MAX_SERIES_POINTS {
            return Err(Error::invalid_argument(
                "since",
                format!(
                    "the window holds {points} {} buckets; at most {MAX_SERIES_POINTS} per answer",
                    self.bucket
                ),
            ));
        }
        Ok((since, until))
    }
}

/// One point of a series: the executions created in one bucket.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// Bucket start (UTC).
    pub start: DateTime<Utc>,
    /// The bucket's aggregates (flattened into this object in JSON). Percentiles are within
    /// 1 %; `counts.queued` and `counts.running` are always 0 (live counts are in the report).
    #[serde(flatten)]
    pub summary: MetricsSummary,
}

/// What `metrics_series` answers: points in time order, one per bucket that has executions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSeries {
    /// Bucket width.
    pub bucket: Option<Granularity>,
    /// Window start actually read (rounded down to the bucket).
    pub since: Option<DateTime<Utc>>,
    /// Window end actually read (rounded up to the bucket).
    pub until: Option<DateTime<Utc>>,
    /// Points with executions, oldest first (empty buckets are left out).
    pub points: Vec<SeriesPoint>,
}

/// Builds a [`MetricsSeries`] from rollup rows of the series' granularity.
#[derive(Debug, Default)]
pub struct SeriesBuilder {
    points: BTreeMap<DateTime<Utc>, RollupDelta>,
}

impl SeriesBuilder {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row's sums to its bucket.
    pub fn add(&mut self, bucket_start: DateTime<Utc>, delta: &RollupDelta) {
        self.points.entry(bucket_start).or_default().merge(delta);
    }

    /// The series over `[since, until)`.
    pub fn finish(self, bucket: Granularity, since: DateTime<Utc>, until: DateTime<Utc>) -> MetricsSeries {
        let points = self
            .points
            .into_iter()
            .map(|(start, d)| SeriesPoint { start, summary: d.summary(LiveCounts::default()) })
            .collect();
        MetricsSeries { bucket: Some(bucket), since: Some(since), until: Some(until), points }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::metrics::percentile_sorted;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    proptest! {
        #[test]
        fn every_value_is_within_one_percent_of_its_bucket(v in 1u64..10_000_000_000) {
            let r = LatencyHistogram::value_of(LatencyHistogram::index_of(v as f64));
            prop_assert!((r - v as f64).abs() <= RELATIVE_ACCURACY * v as f64, "{v} -> {r}");
        }

        #[test]
        fn merged_percentiles_are_within_one_percent_of_exact(
            a in proptest::collection::vec(0u64..200_000, 1..300),
            b in proptest::collection::vec(0u64..200_000, 0..300),
            q in 0.0f64..=1.0,
        ) {
            let (mut ha, mut hb) = (LatencyHistogram::new(), LatencyHistogram::new());
            a.iter().for_each(|&v| ha.add(v as f64));
            b.iter().for_each(|&v| hb.add(v as f64));
            ha.merge(&hb);
            let mut all: Vec<f64> = a.iter().chain(&b).map(|&v| v as f64).collect();
            all.sort_by(f64::total_cmp);
            let exact = percentile_sorted(&all, q).unwrap();
            let got = ha.percentile(q).unwrap();
            prop_assert!((got - exact).abs() <= RELATIVE_ACCURACY * exact, "q={q}: {got} vs {exact}");
            prop_assert_eq!(ha.count(), all.len() as u64);
        }

        #[test]
        fn cover_is_exact_and_aligned(start in 0i64..100_000_000, len in 0i64..20_000_000) {
            let since = Granularity::Minute.floor(Utc.timestamp_opt(1_700_000_000 + start, 0).unwrap());
            let until = Granularity::Minute.ceil(since + Duration::seconds(len));
            let ranges = cover(since, until);
            prop_assert!(ranges.len() <= 5);
            let mut at = since;
            for r in &ranges {
                prop_assert_eq!(r.start, at);
                prop_assert_eq!(r.granularity.floor(r.start), r.start);
                prop_assert_eq!(r.granularity.floor(r.end), r.end);
                at = r.end;
            }
            prop_assert_eq!(at, if ranges.is_empty() { since } else { until });
        }
    }

    #[test]
    fn zero_and_negative_count_as_zero() {
        let mut h = LatencyHistogram::new();
        for v in [0.0, -5.0, f64::NAN] {
            h.add(v);
        }
        h.add(100.0);
        assert_eq!(h.count(), 4);
        assert_eq!(h.percentile(0.5), Some(0.0));
        let p99 = h.percentile(0.99).unwrap();
        assert!((p99 - 100.0).abs() <= 1.0);
        assert_eq!(LatencyHistogram::new().percentile(0.5), None);
        // The extremes do not overflow the index.
        assert!(LatencyHistogram::index_of(f64::MAX) > 0);
        assert!(LatencyHistogram::index_of(f64::MIN_POSITIVE) > ZERO_BUCKET);
    }

    #[test]
    fn buckets_round_and_cover() {
        let t = at("2026-11-30T10:37:15Z");
        assert_eq!(Granularity::Minute.floor(t), at("2026-11-30T10:37:00Z"));
        assert_eq!(Granularity::Hour.ceil(t), at("2026-11-30T11:00:00Z"));
        assert_eq!(Granularity::Day.floor(t), at("2026-11-30T00:00:00Z"));
        assert_eq!(Granularity::Day.ceil(at("2026-11-30T00:00:00Z")), at("2026-11-30T00:00:00Z"));
        let r = cover(at("2026-11-28T22:30:00Z"), at("2026-11-30T01:15:00Z"));
        let g: Vec<_> = r.iter().map(|r| r.granularity).collect();
        use Granularity::*;
        assert_eq!(g, [Minute, Hour, Day, Hour, Minute]);
        assert_eq!(r[2].start, at("2026-11-29T00:00:00Z"));
        assert_eq!(cover(at("2026-11-28T22:30:00Z"), at("2026-11-28T22:45:00Z")).len(), 1);
        assert_eq!("hour".parse::<Granularity>().unwrap(), Hour);
        assert!("week".parse::<Granularity>().is_err());
    }

    #[test]
    fn deltas_group_per_key_and_granularity() {
        let (user, p) = (UserId::new(), PromptId::new());
        let mk = |status, latency: Option<u64>, label: Option<&str>, t: &str| FinalExecution {
            user_id: user,
            prompt_version: 1,
            label: label.map(str::to_string),
            created_at: at(t),
            sample: MetricsSample {
                prompt_id: p,
                status,
                latency_ms: latency,
                provider_latency_ms: latency.unwrap_or(0) / 2,
                tokens: TokenTotals { input: 3, output: 2, cached: 1, total: 5 },
                cost_usd: latency.map(|_| Decimal::new(1, 1)),
                validation_passed: (status == ExecutionStatus::Completed).then_some(true),
            },
        };
        let finals = [
            mk(ExecutionStatus::Completed, Some(10), Some("production"), "2026-11-30T10:00:01Z"),
            mk(ExecutionStatus::Completed, Some(20), Some("production"), "2026-11-30T10:00:59Z"),
            mk(ExecutionStatus::Failed, None, Some("production"), "2026-11-30T10:01:00Z"),
            mk(ExecutionStatus::Cancelled, None, None, "2026-11-30T10:00:30Z"),
            mk(ExecutionStatus::Queued, None, None, "2026-11-30T10:00:30Z"),
        ];
        let rows = group_deltas(&finals);
        // Minutes: (10:00, production), (10:01, production), (10:00, none); hour and day: 2 each.
        assert_eq!(rows.len(), 3 + 2 + 2);
        let minute: Vec<_> = rows.iter().filter(|r| r.key.granularity == Granularity::Minute).collect();
        let first = minute
            .iter()
            .find(|r| {
                r.key.label.as_deref() == Some("production")
                    && r.key.bucket_start == at("2026-11-30T10:00:00Z")
            })
            .unwrap();
        assert_eq!((first.delta.completed, first.delta.priced, first.delta.validated), (2, 2, 2));
        assert_eq!(first.delta.cost_usd, Decimal::new(2, 1));
        assert_eq!(first.delta.tokens.total, 10);
        let day: Vec<_> = rows.iter().filter(|r| r.key.granularity == Granularity::Day).collect();
        let prod = day.iter().find(|r| r.key.label.is_some()).unwrap();
        assert_eq!((prod.delta.completed, prod.delta.failed, prod.delta.unpriced), (2, 1, 0));
        let none = day.iter().find(|r| r.key.label.is_none()).unwrap();
        assert_eq!((none.delta.cancelled, none.delta.latency.count()), (1, 0));
        assert_eq!(none.delta.summary(LiveCounts::default()).cost_usd, None, "nothing priced: unknown cost");
        assert!(rows.windows(2).all(|w| w[0].key < w[1].key), "key order");

        // Batch by batch, the same rows as one batch; taking empties the groups.
        let mut groups = RollupGroups::new();
        groups.add(&finals[..1]);
        groups.add(&finals[1..]);
        assert_eq!(groups.len(), rows.len());
        assert_eq!(groups.take(), rows);
        assert!(groups.is_empty() && groups.take().is_empty());
    }

    #[test]
    fn series_windows_are_checked() {
        let now = at("2026-11-30T10:37:15Z");
        let q = |bucket, since: Option<&str>| MetricsSeriesQuery {
            bucket,
            since: since.map(at),
            until: None,
            prompt_id: None,
            prompt_version: None,
            label: None,
        };
        let (s, u) = q(Granularity::Minute, None).window(now).unwrap();
        assert_eq!(u, at("2026-11-30T10:38:00Z"));
        assert_eq!((u - s).num_minutes(), DEFAULT_SERIES_POINTS);
        let err = q(Granularity::Minute, Some("2026-11-01T00:00:00Z")).window(now).unwrap_err();
        assert!(err.to_string().contains("since"), "{err}");
        assert!(q(Granularity::Hour, Some("2026-11-01T00:00:00Z")).window(now).is_ok());
        let mut bad = q(Granularity::Day, None);
        bad.label = Some("production".into());
        assert!(bad.window(now).unwrap_err().to_string().contains("label"));
    }
}
