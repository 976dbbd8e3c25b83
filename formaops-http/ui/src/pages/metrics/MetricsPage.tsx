// The caller's metrics report (`GET /api/metrics`): totals, charts of what the report holds
// (executions by status, latency percentiles, tokens) and the per-prompt table.
import { useMemo } from 'react';
import { Link } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { get } from '../../api/client';
import type { MetricsReport, MetricsSummary } from '../../api/types';
import { BarChart } from '../../components/BarChart';
import { localToRfc3339, PromptSelect, TimeRange, useUrlFilters, usePromptNames } from '../../components/Filters';
import { fmtCost, fmtMs, fmtPct, shortId } from '../../components/format';
import { ErrorNote } from '../../components/Problems';

const STATUS_LABELS = ['completed', 'failed', 'cancelled', 'running', 'queued'] as const;

/** The chart data of one summary. */
export function chartData(s: MetricsSummary) {
  return {
    status: { labels: STATUS_LABELS.map((l) => l), values: STATUS_LABELS.map((l) => s.counts[l]) },
    latency: { labels: ['p50', 'p95', 'p99'], values: [s.latencyMs.p50, s.latencyMs.p95, s.latencyMs.p99] },
    tokens: { labels: ['input', 'output', 'cached'], values: [s.tokens.input, s.tokens.output, s.tokens.cached] },
  };
}

export function MetricsPage() {
  const [{ promptId, version, since, until }, setFilter] = useUrlFilters(['promptId', 'version', 'since', 'until'] as const, {
    promptId: ['version'],
  });
  const query = { promptId, version: promptId ? version : '', since: localToRfc3339(since), until: localToRfc3339(until) };
  const report = useQuery({ queryKey: ['metrics', query], queryFn: () => get<MetricsReport>('/api/metrics', query) });
  const { names } = usePromptNames();
  const charts = useMemo(() => (report.data ? chartData(report.data) : null), [report.data]);
  const r = report.data;

  return (
    <section>
      <div className="page-head">
        <h1>Metrics</h1>
      </div>
      <div className="filters">
        <PromptSelect value={promptId} onChange={(id) => setFilter('promptId', id)} anyLabel="all" />
        {promptId && (
          <label>
            Version
            <input type="number" min={1} value={version} onChange={(e) => setFilter('version', e.target.value)} placeholder="all" />
          </label>
        )}
        <TimeRange since={since} until={until} onChange={setFilter} />
      </div>
      <ErrorNote error={report.error} />
      {report.isPending && <p className="loading">Loading…</p>}
      {r && charts && (
        <>
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
          <div className="charts">
            <BarChart testId="chart-status" title="Executions by status" labels={charts.status.labels} values={charts.status.values} unit="executions" color="#3b6fd8" />
            <BarChart testId="chart-latency" title="Latency percentiles" labels={charts.latency.labels} values={charts.latency.values} unit="ms" color="#d8823b" />
            <BarChart testId="chart-tokens" title="Tokens" labels={charts.tokens.labels} values={charts.tokens.values} unit="tokens" color="#3ba86b" />
          </div>
          <h2>Per prompt</h2>
          {r.byPrompt.length === 0 ? (
            <p className="empty">No executions in this range.</p>
          ) : (
            <table data-testid="metrics-by-prompt">
              <thead>
                <tr>
                  <th>Prompt</th>
                  <th>Executions</th>
                  <th>Completed</th>
                  <th>Failed</th>
                  <th>p50</th>
                  <th>p95</th>
                  <th>p99</th>
                  <th>Tokens</th>
                  <th>Cost</th>
                  <th>Validation</th>
                </tr>
              </thead>
              <tbody>
                {r.byPrompt.map((p) => (
                  <tr key={p.promptId}>
                    <td>
                      <Link to={`/prompts/${p.promptId}`}>{names.get(p.promptId) ?? shortId(p.promptId)}</Link>
                    </td>
                    <td>{p.counts.total}</td>
                    <td>{p.counts.completed}</td>
                    <td>{p.counts.failed}</td>
                    <td>{fmtMs(p.latencyMs.p50)}</td>
                    <td>{fmtMs(p.latencyMs.p95)}</td>
                    <td>{fmtMs(p.latencyMs.p99)}</td>
                    <td>{p.tokens.total}</td>
                    <td>{fmtCost(p.costUsd)}</td>
                    <td>{fmtPct(p.validationPassRate)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
