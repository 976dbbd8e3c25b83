// One experiment: live progress (read every second while it runs), cancel, exports, and the
// side-by-side comparison: per version pass rate, match rate, latency, tokens, cost; per row
// each version's output with its validation and match verdicts.
import { useParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post } from '../../api/client';
import type { Comparison, ExperimentView } from '../../api/types';
import { fmtCost, fmtMs, fmtPct } from '../../components/format';
import { ErrorNote } from '../../components/Problems';
import { StatusBadge } from '../../components/StatusBadge';

export function ExperimentPage() {
  const { id = '' } = useParams();
  const qc = useQueryClient();
  const view = useQuery({
    queryKey: ['experiment', id],
    queryFn: () => get<ExperimentView>(`/api/experiments/${id}`),
    refetchInterval: (q) => (q.state.data?.status === 'RUNNING' || (q.state.data?.progress.inFlight ?? 0) > 0 ? 1000 : false),
  });
  const x = view.data;
  const settled = !!x && x.status !== 'RUNNING';
  const results = useQuery({
    queryKey: ['experiment-results', id, x?.status, x?.progress.done, x?.progress.failed],
    queryFn: () => get<Comparison>(`/api/experiments/${id}/results`),
    enabled: !!x,
  });
  const cancel = useMutation({
    mutationFn: () => post<ExperimentView>(`/api/experiments/${id}/cancel`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['experiment', id] }),
  });
  const c = results.data;
  const p = x?.progress;
  const finished = p ? p.done + p.failed : 0;
  return (
    <section>
      <div className="page-head">
        <h1>Experiment</h1>
        {x && <StatusBadge status={x.status} testId="experiment-status" />}
        {x?.status === 'RUNNING' && (
          <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending} data-testid="experiment-cancel">
            Cancel
          </button>
        )}
        {settled && (
          <>
            <a href={`/api/experiments/${id}/export?format=csv`}>Export CSV</a>
            <a href={`/api/experiments/${id}/export?format=jsonl`}>Export JSONL</a>
          </>
        )}
      </div>
      <ErrorNote error={view.error ?? cancel.error ?? results.error} />
      {p && (
        <div data-testid="experiment-progress">
          <progress max={p.total} value={finished} />{' '}
          <span>
            {finished} of {p.total} done · {p.failed} failed · {p.inFlight} in flight · cost {fmtCost(p.costUsd)}
          </span>
        </div>
      )}
      {c && (
        <>
          <h2>Versions</h2>
          <table data-testid="experiment-versions">
            <thead>
              <tr>
                <th>Version</th>
                <th>Completed</th>
                <th>Failed</th>
                <th>Pass rate</th>
                <th>Match rate</th>
                <th>p50</th>
                <th>p95</th>
                <th>p99</th>
                <th>Tokens</th>
                <th>Cost</th>
              </tr>
            </thead>
            <tbody>
              {c.versions.map((v) => (
                <tr key={v.version}>
                  <td>
                    v{v.version}
                    {v.requested !== String(v.version) ? ` (${v.requested})` : ''}
                  </td>
                  <td>{v.summary.counts.completed}</td>
                  <td>{v.summary.counts.failed + v.summary.counts.cancelled}</td>
                  <td>{fmtPct(v.summary.validationPassRate)}</td>
                  <td>{fmtPct(v.matchRate)}</td>
                  <td>{fmtMs(v.summary.latencyMs.p50)}</td>
                  <td>{fmtMs(v.summary.latencyMs.p95)}</td>
                  <td>{fmtMs(v.summary.latencyMs.p99)}</td>
                  <td>{v.summary.tokens.total}</td>
                  <td>{fmtCost(v.summary.costUsd)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Rows</h2>
          <table className="side-by-side" data-testid="experiment-rows">
            <thead>
              <tr>
                <th>#</th>
                <th>Inputs</th>
                <th>Expected</th>
                {c.versions.map((v) => (
                  <th key={v.version}>v{v.version}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {c.rows.map((r) => (
                <tr key={r.index}>
                  <td>{r.index}</td>
                  <td>
                    <code>{JSON.stringify(r.inputs)}</code>
                  </td>
                  <td>{r.expected === undefined || r.expected === null ? '—' : <code>{typeof r.expected === 'string' ? r.expected : JSON.stringify(r.expected)}</code>}</td>
                  {r.results.map((res) => (
                    <td key={res.version}>
                      {res.status ? <StatusBadge status={res.status} /> : <span className="muted">not run</span>}
                      {res.output !== null && res.output !== undefined && <pre className="output">{res.output}</pre>}
                      {res.validation && <div>{(res.validation as { passed?: boolean }).passed ? 'valid' : 'invalid'}</div>}
                      {res.matched !== null && res.matched !== undefined && <div>{res.matched ? 'matches' : 'no match'}</div>}
                      {res.matchError && <div className="error-note">{res.matchError}</div>}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
