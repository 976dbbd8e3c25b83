import { useEffect, useMemo } from 'react';
import { Link } from 'react-router';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { get } from '../../api/client';
import { EXECUTION_STATUSES, type ExecutionPage } from '../../api/types';
import { localToRfc3339, PromptSelect, TimeRange, useUrlFilters, usePromptNames } from '../../components/Filters';
import { fmtCost, fmtMs, fmtTime, shortId } from '../../components/format';
import { ErrorNote } from '../../components/Problems';
import { StatusBadge } from '../../components/StatusBadge';

export function ExecutionsList() {
  const [{ status, promptId, since, until }, setFilter] = useUrlFilters(['status', 'promptId', 'since', 'until'] as const);
  const query = useMemo(() => ({ status, promptId, since: localToRfc3339(since), until: localToRfc3339(until) }), [status, promptId, since, until]);
  const q = useInfiniteQuery({
    queryKey: ['executions', query],
    queryFn: ({ pageParam }) => get<ExecutionPage>('/api/executions', { ...query, limit: 50, cursor: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const { names } = usePromptNames();
  useLiveList();

  const items = (q.data?.pages ?? []).flatMap((p) => p.items);
  return (
    <section>
      <div className="page-head">
        <h1>Executions</h1>
      </div>
      <div className="filters">
        <label>
          Status
          <select value={status} onChange={(e) => setFilter('status', e.target.value)} data-testid="filter-status">
            <option value="">any</option>
            {EXECUTION_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <PromptSelect value={promptId} onChange={(id) => setFilter('promptId', id)} anyLabel="any" testId="filter-prompt" />
        <TimeRange since={since} until={until} onChange={setFilter} />
      </div>
      <ErrorNote error={q.error} />
      {q.isPending ? (
        <p className="loading">Loading…</p>
      ) : items.length === 0 ? (
        <p className="empty">No executions match.</p>
      ) : (
        <table data-testid="executions-table">
          <thead>
            <tr>
              <th>Id</th>
              <th>Status</th>
              <th>Prompt</th>
              <th>Created</th>
              <th>Latency</th>
              <th>Tokens</th>
              <th>Cost</th>
            </tr>
          </thead>
          <tbody>
            {items.map((e) => (
              <tr key={e.id}>
                <td>
                  <Link to={`/executions/${e.id}`}>
                    <code>{shortId(e.id)}</code>
                  </Link>
                </td>
                <td>
                  <StatusBadge status={e.status} />
                </td>
                <td>
                  <Link to={`/prompts/${e.promptId}`}>{names.get(e.promptId) ?? shortId(e.promptId)}</Link> v{e.promptVersion}
                </td>
                <td>{fmtTime(e.createdAt)}</td>
                <td>{fmtMs(e.metrics?.latencyMs)}</td>
                <td>{(e.metrics?.tokenUsage as { total?: number } | undefined)?.total ?? '—'}</td>
                <td>{e.metrics ? fmtCost(e.metrics.costUsd) : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {q.hasNextPage && (
        <button type="button" onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage} data-testid="load-more">
          Load more
        </button>
      )}
    </section>
  );
}

/**
 * Live updates: the caller's event stream over the WebSocket; any status change refreshes
 * the first page (at most once a second).
 */
function useLiveList() {
  const qc = useQueryClient();
  useEffect(() => {
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${window.location.host}/api/ws`);
    let pending: ReturnType<typeof setTimeout> | undefined;
    ws.onmessage = (m) => {
      if (typeof m.data === 'string' && m.data.includes('"partial"')) return;
      if (pending) return;
      pending = setTimeout(() => {
        pending = undefined;
        void qc.invalidateQueries({ queryKey: ['executions'] });
      }, 1000);
    };
    return () => {
      if (pending) clearTimeout(pending);
      ws.close();
    };
  }, [qc]);
}
