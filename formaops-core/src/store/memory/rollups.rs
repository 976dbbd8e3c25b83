//! The in-memory store's metrics rollups (see [`super::MemoryStore`]): kept up to date under
//! the same lock as every final-state write, and read by the report and the series.

use super::State;
use crate::execution::ExecutionStatus;
use crate::ids::{PromptId, UserId};
use crate::metrics::rollup::{
    FinalExecution, LiveCount, LiveCounts, RollupKey, RollupReport, SeriesBuilder, cover, epoch, far_future,
    group_deltas, report_window,
};
use crate::metrics::{MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};

impl State {
    /// Adds executions that just became final to the rollups (under the same lock as the
    /// write: the memory store's transaction).
    pub(super) fn roll_up(&mut self, finals: &[FinalExecution]) {
        for row in group_deltas(finals) {
            self.rollups.entry(row.key).or_default().merge(&row.delta);
        }
    }

    /// The report from the rollups, plus the live QUEUED and RUNNING counts.
    pub(super) fn metrics(&self, user: UserId, query: &MetricsQuery) -> MetricsReport {
        let s = self;
        let in_scope = |prompt: PromptId, version: u32| {
            query.prompt_id.is_none_or(|p| p == prompt)
                && (query.prompt_id.is_none() || query.prompt_version.is_none_or(|v| v == version))
        };
        let (since, until) = report_window(query);
        let mut report = RollupReport::new();
        for r in cover(since, until) {
            let lo = RollupKey {
                user_id: user,
                granularity: r.granularity,
                bucket_start: r.start,
                prompt_id: PromptId(uuid::Uuid::nil()),
                prompt_version: 0,
                label: None,
            };
            for (k, d) in s.rollups.range(lo..) {
                if k.user_id != user || k.granularity != r.granularity || k.bucket_start >= r.end {
                    break;
                }
                if in_scope(k.prompt_id, k.prompt_version) {
                    report.add(k.prompt_id, k.prompt_version, k.label.clone(), d);
                }
            }
        }
        // Live counts: the QUEUED and RUNNING executions (not rolled up).
        let live = s
            .queues
            .values()
            .flat_map(|q| q.ready.iter().map(|(_, id)| id).chain(q.delayed.iter().map(|(_, id)| id)));
        for id in live.chain(s.running.iter()) {
            let Some(e) = s.executions.get(id) else { continue };
            if e.user_id != user
                || e.created_at < since
                || e.created_at >= until
                || !in_scope(e.prompt_id, e.prompt_version)
            {
                continue;
            }
            let counts = match e.status {
                ExecutionStatus::Queued => LiveCounts { queued: 1, running: 0 },
                ExecutionStatus::Running => LiveCounts { queued: 0, running: 1 },
                _ => continue,
            };
            report.add_live(&LiveCount {
                prompt_id: e.prompt_id,
                prompt_version: e.prompt_version,
                label: e.label.clone(),
                counts,
            });
        }
        let queue_depth = s.queued_by_user.get(&user).copied().unwrap_or(0);
        report.finish(query, queue_depth)
    }

    /// The series from the rollups of the query's granularity.
    pub(super) fn metrics_series(&self, user: UserId, query: &MetricsSeriesQuery) -> MetricsSeries {
        let (since, until) = (query.since.unwrap_or_else(epoch), query.until.unwrap_or_else(far_future));
        let s = self;
        let lo = RollupKey {
            user_id: user,
            granularity: query.bucket,
            bucket_start: since,
            prompt_id: PromptId(uuid::Uuid::nil()),
            prompt_version: 0,
            label: None,
        };
        let mut series = SeriesBuilder::new();
        for (k, d) in s.rollups.range(lo..) {
            if k.user_id != user || k.granularity != query.bucket || k.bucket_start >= until {
                break;
            }
            if query.prompt_id.is_none_or(|p| p == k.prompt_id)
                && query.prompt_version.is_none_or(|v| v == k.prompt_version)
                && query.label.as_ref().is_none_or(|l| k.label.as_ref() == Some(l))
            {
                series.add(k.bucket_start, d);
            }
        }
        series.finish(query.bucket, since, until)
    }
}
