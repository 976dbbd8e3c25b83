import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import { useInfiniteQuery } from '@tanstack/react-query';
import { get } from '../../api/client';
import type { PromptPage } from '../../api/types';
import { fmtTime } from '../../components/format';
import { ErrorNote } from '../../components/Problems';

/** Case-insensitive match on name and description. */
export function matches(p: { name: string; description?: string | null }, search: string): boolean {
  const q = search.trim().toLowerCase();
  if (!q) return true;
  return p.name.toLowerCase().includes(q) || (p.description ?? '').toLowerCase().includes(q);
}

export function PromptsList() {
  const [search, setSearch] = useState('');
  const [archived, setArchived] = useState(false);
  const status = archived ? 'ARCHIVED' : 'ACTIVE';
  const q = useInfiniteQuery({
    queryKey: ['prompts', status],
    queryFn: ({ pageParam }) => get<PromptPage>('/api/prompts', { status, limit: 100, cursor: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const items = useMemo(() => (q.data?.pages ?? []).flatMap((p) => p.items).filter((p) => matches(p, search)), [q.data, search]);

  return (
    <section>
      <div className="page-head">
        <h1>Prompts</h1>
        <Link className="button" to="/prompts/new" data-testid="new-prompt">
          New prompt
        </Link>
      </div>
      <div className="filters">
        <input type="search" placeholder="Search by name or description" aria-label="Search prompts" value={search} onChange={(e) => setSearch(e.target.value)} />
        <label className="inline">
          <input type="checkbox" checked={archived} onChange={(e) => setArchived(e.target.checked)} /> Archived
        </label>
      </div>
      <ErrorNote error={q.error} />
      {q.isPending ? (
        <p className="loading">Loading…</p>
      ) : items.length === 0 ? (
        <p className="empty">{search ? 'No prompt matches.' : archived ? 'No archived prompts.' : 'No prompts yet: create one.'}</p>
      ) : (
        <table data-testid="prompts-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Description</th>
              <th>Version</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {items.map((p) => (
              <tr key={p.id}>
                <td>
                  <Link to={`/prompts/${p.id}`}>{p.name}</Link>
                </td>
                <td>{p.description}</td>
                <td>v{p.currentVersion}</td>
                <td>{fmtTime(p.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {q.hasNextPage && (
        <button type="button" onClick={() => q.fetchNextPage()} disabled={q.isFetchingNextPage}>
          Load more
        </button>
      )}
    </section>
  );
}
