// Turns `GET /api/metrics/series` into chart columns: one slot per bucket of the answered
// window, so that a bucket without executions shows as zero executions and a gap in the
// latency and cost lines (the API leaves such buckets out).
import type { Bucket, MetricsSeries, SeriesPoint } from '../api/types';

export const BUCKET_SECONDS: Record<Bucket, number> = { minute: 60, hour: 3600, day: 86400 };

/** At most this many slots are drawn (the API answers at most this many points too). */
export const MAX_SLOTS = 1500;

/**
 * The bucket for a window when the user did not pick one: the finest that keeps the chart
 * under ~400 points (minute up to 6 h, hour up to ~16 days, else day).
 */
export function autoBucket(sinceMs: number | undefined, untilMs: number | undefined, nowMs: number): Bucket {
  const until = untilMs ?? nowMs;
  const since = sinceMs ?? until - 24 * 3600 * 1000;
  const span = Math.max(0, until - since) / 1000;
  if (span <= 6 * 3600) return 'minute';
  if (span <= 400 * 3600) return 'hour';
  return 'day';
}

export interface SeriesColumns {
  /** Bucket starts, seconds since the epoch. */
  times: number[];
  completed: number[];
  failed: number[];
  cancelled: number[];
  p50: (number | null)[];
  p95: (number | null)[];
  p99: (number | null)[];
  inputTokens: number[];
  outputTokens: number[];
  cost: (number | null)[];
}

function slot(columns: SeriesColumns, p: SeriesPoint | undefined) {
  columns.completed.push(p?.counts.completed ?? 0);
  columns.failed.push(p?.counts.failed ?? 0);
  columns.cancelled.push(p?.counts.cancelled ?? 0);
  columns.p50.push(p?.latencyMs.p50 ?? null);
  columns.p95.push(p?.latencyMs.p95 ?? null);
  columns.p99.push(p?.latencyMs.p99 ?? null);
  columns.inputTokens.push(p?.tokens.input ?? 0);
  columns.outputTokens.push(p?.tokens.output ?? 0);
  columns.cost.push(p?.costUsd ?? null);
}

/** Every bucket of `[since, until)` in order, the answered points in their slots. */
export function seriesColumns(s: MetricsSeries): SeriesColumns {
  const columns: SeriesColumns = {
    times: [],
    completed: [],
    failed: [],
    cancelled: [],
    p50: [],
    p95: [],
    p99: [],
    inputTokens: [],
    outputTokens: [],
    cost: [],
  };
  const byStart = new Map(s.points.map((p) => [Math.floor(Date.parse(p.start) / 1000), p]));
  const width = s.bucket ? BUCKET_SECONDS[s.bucket] : 0;
  const since = s.since ? Math.floor(Date.parse(s.since) / 1000) : NaN;
  const until = s.until ? Math.floor(Date.parse(s.until) / 1000) : NaN;
  if (width > 0 && Number.isFinite(since) && Number.isFinite(until) && (until - since) / width <= MAX_SLOTS) {
    for (let t = since; t < until; t += width) {
      columns.times.push(t);
      slot(columns, byStart.get(t));
    }
    return columns;
  }
  // No usable window: the points alone, in order.
  for (const [t, p] of [...byStart.entries()].sort((a, b) => a[0] - b[0])) {
    columns.times.push(t);
    slot(columns, p);
  }
  return columns;
}
