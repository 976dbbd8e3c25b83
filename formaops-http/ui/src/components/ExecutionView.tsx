import type { Execution, ExecutionErrorInfo, TokenUsage, ValidationVerdict } from '../api/types';
import type { LiveState } from '../lib/liveExecution';
import { fmtCost, fmtMs, fmtTime } from './format';
import { StatusBadge } from './StatusBadge';

/** Status, output, verdict and numbers of one execution, live or final. */
export function ExecutionView({ live }: { live: LiveState }) {
  const e = live.execution;
  const output = live.final && e ? (e.output ?? '') : live.streamed;
  return (
    <div className="execution" data-testid="execution-view">
      <p>
        Status: <StatusBadge status={live.status} testId="execution-status" />{' '}
        <span className="muted" data-testid="status-trail">
          {live.seen.join(' → ')}
        </span>
      </p>
      {(output || live.final) && (
        <>
          <h3>Output</h3>
          <pre className="code output" data-testid="execution-output">
            {output || (live.final ? '(no output)' : '')}
          </pre>
        </>
      )}
      {live.final && e && <Details e={e} />}
      {!live.final && live.lastError && <ErrorBox error={live.lastError} />}
    </div>
  );
}

export function Details({ e }: { e: Execution }) {
  const verdict = e.validation as ValidationVerdict | null | undefined;
  const error = e.error as ExecutionErrorInfo | null | undefined;
  const tokens = e.metrics?.tokenUsage as TokenUsage | undefined;
  return (
    <div className="details">
      {error && <ErrorBox error={error} />}
      {verdict && (
        <div data-testid="validation-verdict">
          <h3>Validation: {verdict.passed ? 'passed' : 'failed'}</h3>
          <ul>
            {verdict.results.map((r, i) => (
              <li key={i} className={r.passed ? 'ok' : 'bad'}>
                <code>{r.rule}</code> {r.passed ? 'passed' : `failed: ${r.reason ?? ''}`}
              </li>
            ))}
          </ul>
        </div>
      )}
      <dl className="stats" data-testid="execution-metrics">
        <dt>Latency</dt>
        <dd>{fmtMs(e.metrics?.latencyMs)}</dd>
        <dt>Provider latency</dt>
        <dd>{fmtMs(e.metrics?.providerLatencyMs)}</dd>
        <dt>Queued for</dt>
        <dd>{fmtMs(e.metrics?.queueMs)}</dd>
        <dt>Tokens</dt>
        <dd>{tokens ? `${tokens.input} in / ${tokens.output} out / ${tokens.total} total${tokens.estimated ? ' (estimated)' : ''}` : '—'}</dd>
        <dt>Cost</dt>
        <dd>{e.metrics ? fmtCost(e.metrics.costUsd) : '—'}</dd>
        <dt>Model</dt>
        <dd>
          {e.provider} / {e.model}
        </dd>
        <dt>Attempts</dt>
        <dd>
          {e.attempts} of {e.maxAttempts}
        </dd>
        <dt>Finished</dt>
        <dd>{fmtTime(e.finishedAt)}</dd>
      </dl>
    </div>
  );
}

function ErrorBox({ error }: { error: ExecutionErrorInfo }) {
  return (
    <div className="error-box" data-testid="execution-error">
      <strong>{error.code}</strong>: {error.message} {error.transient ? '(transient)' : ''}
    </div>
  );
}
