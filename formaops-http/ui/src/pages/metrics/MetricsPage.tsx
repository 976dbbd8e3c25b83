// The caller's metrics: totals and the per-prompt table from the report (`GET /api/metrics`),
// charts over time from the series (`GET /api/metrics/series`: executions by status, latency
// p50/p95/p99, tokens, cost per bucket), for the user, a prompt, a version or a label; with a
// prompt chosen, the share and figures of each version and label.
import { useMemo } from 'react';
import { Link } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { get } from '../../api/client';
import type { Bucket, LabelList, MetricsReport, MetricsSeries } from '../../api/types';
import { LineChart } from '../../components/LineChart';
import { localToRfc3339, PromptSelect, TimeRange, useUrlFilters, usePromptNames } from '../../components/Filters';
import { fmtCost, fmtMs, fmtPct, shortId } from '../../components/format';
import { ErrorNote } from '../../components/Problems';
import { autoBucket, seriesColumns } from '../../lib/series';
import { SummaryTable } from './SummaryTable';

const BUCKETS: readonly Bucket[] = ['minute', 'hour', 'day'];

export function MetricsPage() {
  const [{ promptId, version, label, since, until, bucket }, setFilter] = useUrlFilters(
    ['promptId', 'version', 'label', 'since', 'until', 'bucket'] as const,
    { promptId: ['version', 'label'], version: ['label'], label: ['version'] },
  );
  const range = { since: localToRfc3339(since), until: localToRfc3339(until) };
  const query = { promptId, version: promptId ? version : '', ...range };
  const report = useQuery({ queryKey: ['metrics', query], queryFn: () => get<MetricsReport>('/api/metrics', query) });
  const chosenBucket: Bucket = (BUCKETS as readonly string[]).includes(bucket)
    ? (bucket as Bucket)
    : autoBucket(range.since ? Date.parse(range.since) : undefined, range.until ? Date.parse(range.until) : undefined, Date.now());
  const seriesQuery = { ...query, label: promptId ? label : '', bucket: chosenBucket };
  const series = useQuery({
    queryKey: ['metrics-series', seriesQuery],
    queryFn: () => get<MetricsSeries>('/api/metrics/series', seriesQuery),
  });
  const labels = useQuery({
    queryKey: ['labels', promptId],
    queryFn: () => get<LabelList>(`/api/prompts/${promptId}/labels`),
    enabled: !!promptId,
  });
  const { names } = usePromptNames();
  const cols = useMemo(() => (series.data ? seriesColumns(series.data) : null), [series.data]);
  const charts = useMemo(
    () =>
      cols && {
        status: [
          { label: 'completed', color: '#3ba86b', values: cols.completed },
          { label: 'failed', color: '#d83b3b', values: cols.failed },
          { label: 'cancelled', color: '#8a8a8a', values: cols.cancelled },
        ],
        latency: [
          { label: 'p50', color: '#3b6fd8', values: cols.p50 },
          { label: 'p95', color: '#d8823b', values: cols.p95 },
          { label: 'p99', color: '#b03bd8', values: cols.p99 },
        ],
        tokens: [
          { label: 'input', color: '#3b6fd8', values: cols.inputTokens },
          { label: 'output', color: '#3ba86b', values: cols.outputTokens },
        ],
        cost: [{ label: 'USD', color: '#d8823b', values: cols.cost }],
      },
    [cols],
  );
  const r = report.data;

  return (
    <section>
      <div className="page-head">
        <h1>Metrics</h1>
      </div>
      <div className="filters">
        <PromptSelect value={promptId} onChange={(id) => setFilter('promptId', id)} anyLabel="all" />
        {promptId && (
          <>
            <label>
              Version
              <input type="number" min={1} value={version} onChange={(e) => setFilter('version', e.target.value)} placeholder="all" />
            </label>
            <label>
              Label
              <select value={label} onChange={(e) => setFilter('label', e.target.value)} data-testid="metrics-label">
                <option value="">any</option>
                {(labels.data?.items ?? []).map((l) => (
                  <option key={l.name} value={l.name}>
                    {l.name}
                  </option>
                ))}
                {label && !(labels.data?.items ?? []).some((l) => l.name === label) && <option value={label}>{label}</option>}
              </select>
            </label>
          </>
        )}
        <TimeRange since={since} until={until} onChange={setFilter} />
        <label>
          Bucket
          <select value={bucket} onChange={(e) => setFilter('bucket', e.target.value)} data-testid="metrics-bucket">
            <option value="">auto ({chosenBucket})</option>
            {BUCKETS.map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorNote error={report.error} />
      {report.isPending && <p className="loading">Loading…</p>}
      {r && (
        <dl className="cards" data-testid="metrics-summary">
          <div>
            <dt>Executions</dt>
            <dd data-testid="metric-total">{r.counts.total}</dd>
          </div>
          <div>
            <dt>Latency p50 / p95</dt>
            <dd>
              {fmtMs(r.latencyMs.p50)} / {fmtMs(r.latencyMs.p95)}
            </dd>
          </div>
          <div>
            <dt>Tokens</dt>
            <dd>{r.tokens.total}</dd>
          </div>
          <div>
            <dt>Cost</dt>
            <dd>
              {fmtCost(r.costUsd)}
              {r.unpricedExecutions > 0 ? ` (+${r.unpricedExecutions} unpriced)` : ''}
            </dd>
          </div>
          <div>
            <dt>Validation pass rate</dt>
            <dd>{fmtPct(r.validationPassRate)}</dd>
          </div>
          <div>
            <dt>Queued now</dt>
            <dd>{r.queueDepth}</dd>
          </div>
        </dl>
      )}
      <ErrorNote error={series.error} />
      {cols && charts && (
        <div className="charts">
          <LineChart testId="chart-status" title={`Executions by status, per ${chosenBucket}`} times={cols.times} series={charts.status} unit="executions" steps />
          <LineChart testId="chart-latency" title="Latency percentiles" times={cols.times} series={charts.latency} unit="ms" />
          <LineChart testId="chart-tokens" title={`Tokens, per ${chosenBucket}`} times={cols.times} series={charts.tokens} unit="tokens" steps />
          <LineChart testId="chart-cost" title={`Cost, per ${chosenBucket} (priced executions)`} times={cols.times} series={charts.cost} unit="USD" steps />
        </div>
      )}
      {r && promptId && (r.byVersion?.length ?? 0) > 0 && (
        <>
          <h2>Per version</h2>
          <SummaryTable
            testId="metrics-by-version"
            nameHead="Version"
            rows={r.byVersion ?? []}
            rowKey={(v) => v.version}
            name={(v) => `v${v.version}`}
            share={(v) => v.share}
          />
        </>
      )}
      {r && promptId && (r.byLabel?.length ?? 0) > 0 && (
        <>
          <h2>Per label</h2>
          <SummaryTable
            testId="metrics-by-label"
            nameHead="Label"
            rows={r.byLabel ?? []}
            rowKey={(l) => l.label ?? ''}
            name={(l) => l.label ?? <em>no label</em>}
            share={(l) => l.share}
          />
        </>
      )}
      {r && (
        <>
          <h2>Per prompt</h2>
          {r.byPrompt.length === 0 ? (
            <p className="empty">No executions in this range.</p>
          ) : (
            <SummaryTable
              testId="metrics-by-prompt"
              nameHead="Prompt"
              rows={r.byPrompt}
              rowKey={(p) => p.promptId}
              name={(p) => <Link to={`/prompts/${p.promptId}`}>{names.get(p.promptId) ?? shortId(p.promptId)}</Link>}
            />
          )}
        </>
      )}
    </section>
  );
}
