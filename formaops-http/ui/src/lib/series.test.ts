import { describe, expect, it } from 'vitest';
import type { MetricsSeries, SeriesPoint } from '../api/types';
import { autoBucket, seriesColumns } from './series';

function point(start: string, completed: number, p50: number | null, cost: number | null): SeriesPoint {
  return {
    start,
    counts: { queued: 0, running: 0, completed, failed: 1, cancelled: 0, total: completed + 1 },
    latencyMs: { p50, p95: p50, p99: p50 },
    providerLatencyMs: { p50: null, p95: null, p99: null },
    tokens: { input: 10, output: 5, cached: 0, total: 15 },
    costUsd: cost,
    unpricedExecutions: cost === null ? completed + 1 : 0,
    validated: 0,
    validationPassed: 0,
    validationPassRate: null,
  };
}

describe('seriesColumns', () => {
  it('gives every bucket of the window a slot: zero executions and gaps where the API left one out', () => {
    const s: MetricsSeries = {
      bucket: 'hour',
      since: '2026-11-30T10:00:00Z',
      until: '2026-11-30T14:00:00Z',
      points: [point('2026-11-30T10:00:00Z', 3, 12.5, 0.25), point('2026-11-30T12:00:00Z', 2, 40, null)],
    };
    const c = seriesColumns(s);
    const t0 = Date.parse('2026-11-30T10:00:00Z') / 1000;
    expect(c.times).toEqual([t0, t0 + 3600, t0 + 7200, t0 + 10800]);
    expect(c.completed).toEqual([3, 0, 2, 0]);
    expect(c.failed).toEqual([1, 0, 1, 0]);
    expect(c.p50).toEqual([12.5, null, 40, null]);
    // An unpriced bucket is a gap, never $0.
    expect(c.cost).toEqual([0.25, null, null, null]);
  });

  it('falls back to the points alone without a window', () => {
    const s: MetricsSeries = {
      bucket: null,
      since: null,
      until: null,
      points: [point('2026-11-30T12:01:00Z', 1, 5, 1), point('2026-11-30T12:00:00Z', 2, 6, 1)],
    };
    const c = seriesColumns(s);
    expect(c.completed).toEqual([2, 1]);
  });
});

describe('autoBucket', () => {
  const now = Date.parse('2026-11-30T12:00:00Z');
  it('picks minutes for hours, hours for days, days for months', () => {
    expect(autoBucket(now - 3600e3, undefined, now)).toBe('minute');
    expect(autoBucket(undefined, undefined, now)).toBe('hour');
    expect(autoBucket(now - 7 * 86400e3, now, now)).toBe('hour');
    expect(autoBucket(now - 90 * 86400e3, now, now)).toBe('day');
  });
});
