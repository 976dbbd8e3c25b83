import { Link, useNavigate, useParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post } from '../../api/client';
import { FINAL_STATUSES, type Execution } from '../../api/types';
import { ExecutionView } from '../../components/ExecutionView';
import { fmtTime, shortId } from '../../components/format';
import { ErrorNote } from '../../components/Problems';
import { useLiveExecution } from '../../components/useLiveExecution';

export function ExecutionPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const record = useQuery({ queryKey: ['execution', id], queryFn: () => get<Execution>(`/api/executions/${id}`) });
  const live = useLiveExecution(id);
  const e = live.execution ?? record.data;
  const retry = useMutation({
    mutationFn: () => post<Execution>(`/api/executions/${id}/retry`),
    onSuccess: (n) => {
      qc.invalidateQueries({ queryKey: ['executions'] });
      navigate(`/executions/${n.id}`);
    },
  });
  const cancel = useMutation({
    mutationFn: () => post<Execution>(`/api/executions/${id}/cancel`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['execution', id] }),
  });

  if (record.isPending && !live.execution) return <p className="loading">Loading…</p>;
  if (record.isError && !live.execution) return <ErrorNote error={record.error} />;
  if (!e) return null;
  const final = FINAL_STATUSES.includes(live.status);
  return (
    <section>
      <div className="page-head">
        <h1>
          Execution <code>{shortId(e.id)}</code>
        </h1>
        <div className="actions">
          {!final && (
            <button type="button" className="danger" onClick={() => cancel.mutate()} disabled={cancel.isPending} data-testid="cancel-execution">
              Cancel
            </button>
          )}
          {(live.status === 'FAILED' || live.status === 'CANCELLED') && (
            <button type="button" onClick={() => retry.mutate()} disabled={retry.isPending} data-testid="retry-execution">
              Retry
            </button>
          )}
        </div>
      </div>
      <ErrorNote error={retry.error ?? cancel.error} />
      <p className="muted">
        Prompt <Link to={`/prompts/${e.promptId}?version=${e.promptVersion}`}>{shortId(e.promptId)} v{e.promptVersion}</Link> · priority {e.priority} ·
        created {fmtTime(e.createdAt)} · started {fmtTime(e.startedAt)}
        {e.retryOf && (
          <>
            {' '}
            · retry of <Link to={`/executions/${e.retryOf}`}>{shortId(e.retryOf)}</Link>
          </>
        )}
      </p>
      <h3>Inputs</h3>
      <pre className="code" data-testid="execution-inputs">
        {JSON.stringify(e.inputs, null, 2)}
      </pre>
      <ExecutionView live={live.execution ? live : { ...live, execution: e, status: e.status, final: FINAL_STATUSES.includes(e.status), streamed: e.output ?? '' }} />
    </section>
  );
}
