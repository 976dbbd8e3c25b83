// What changed between two versions of a prompt (`GET /api/prompts/{id}/diff`): the templates
// as unified diffs, variables and validation rules added, removed or changed, and the model
// fields that differ.
import { Link, useParams, useSearchParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { get } from '../../api/client';
import type { FieldChange, ValidationsDiff, VariablesDiff, VersionDiff } from '../../api/types';
import { ErrorNote } from '../../components/Problems';
import { diffLines } from '../../lib/diff';

export function DiffPage() {
  const { id = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const diff = useQuery({
    queryKey: ['diff', id, from, to],
    queryFn: () => get<VersionDiff>(`/api/prompts/${id}/diff`, { from, to }),
    enabled: Boolean(from && to),
  });
  const set = (k: 'from' | 'to', v: string) => {
    const next = new URLSearchParams(params);
    next.set(k, v);
    setParams(next, { replace: true });
  };
  const d = diff.data;
  const variables = d?.variables as unknown as VariablesDiff | undefined;
  const validations = d?.validations as unknown as ValidationsDiff | undefined;
  const model = d?.model as unknown as FieldChange[] | undefined;
  const unchanged =
    d &&
    !d.template &&
    !d.systemTemplate &&
    variables?.added.length === 0 &&
    variables.removed.length === 0 &&
    variables.changed.length === 0 &&
    validations?.added.length === 0 &&
    validations.removed.length === 0 &&
    model?.length === 0;
  return (
    <section>
      <div className="page-head">
        <h1>Compare versions</h1>
        <div className="actions">
          <Link className="button secondary" to={`/prompts/${id}`}>
            Back to the prompt
          </Link>
        </div>
      </div>
      <div className="filters">
        <label>
          From
          <input type="number" min={1} value={from} onChange={(e) => set('from', e.target.value)} data-testid="diff-from" />
        </label>
        <label>
          To
          <input type="number" min={1} value={to} onChange={(e) => set('to', e.target.value)} data-testid="diff-to" />
        </label>
      </div>
      <ErrorNote error={diff.error} />
      {diff.isFetching && <p className="loading">Loading…</p>}
      {unchanged && <p className="empty">The two versions are the same.</p>}
      {d && !unchanged && (
        <div data-testid="diff">
          <UnifiedDiff title="Template" text={d.template} />
          <UnifiedDiff title="System template" text={d.systemTemplate} />
          {variables && (variables.added.length > 0 || variables.removed.length > 0 || variables.changed.length > 0) && (
            <>
              <h3>Variables</h3>
              <ul className="changes">
                {variables.added.map((v) => (
                  <li key={`+${v.name}`} className="diff-add">
                    added <code>{v.name}</code> ({v.type})
                  </li>
                ))}
                {variables.removed.map((v) => (
                  <li key={`-${v.name}`} className="diff-remove">
                    removed <code>{v.name}</code>
                  </li>
                ))}
                {variables.changed.map((c) => (
                  <li key={`~${c.name}`}>
                    changed <code>{c.name}</code>: <code>{JSON.stringify(c.from)}</code> → <code>{JSON.stringify(c.to)}</code>
                  </li>
                ))}
              </ul>
            </>
          )}
          {validations && (validations.added.length > 0 || validations.removed.length > 0) && (
            <>
              <h3>Validation rules</h3>
              <ul className="changes">
                {validations.added.map((r, i) => (
                  <li key={`+${i}`} className="diff-add">
                    added <code>{JSON.stringify(r)}</code>
                  </li>
                ))}
                {validations.removed.map((r, i) => (
                  <li key={`-${i}`} className="diff-remove">
                    removed <code>{JSON.stringify(r)}</code>
                  </li>
                ))}
              </ul>
            </>
          )}
          {model && model.length > 0 && (
            <>
              <h3>Model</h3>
              <table>
                <thead>
                  <tr>
                    <th>Field</th>
                    <th>From</th>
                    <th>To</th>
                  </tr>
                </thead>
                <tbody>
                  {model.map((c) => (
                    <tr key={c.field}>
                      <td>
                        <code>{c.field}</code>
                      </td>
                      <td>
                        <code>{JSON.stringify(c.from ?? null)}</code>
                      </td>
                      <td>
                        <code>{JSON.stringify(c.to ?? null)}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </div>
      )}
    </section>
  );
}

function UnifiedDiff({ title, text }: { title: string; text: string }) {
  const lines = diffLines(text);
  if (lines.length === 0) return null;
  return (
    <>
      <h3>{title}</h3>
      <pre className="code diff" data-testid={`diff-${title.toLowerCase().replace(' ', '-')}`}>
        {lines.map((l, i) => (
          <span key={i} className={`diff-${l.kind}`}>
            {l.text}
            {'\n'}
          </span>
        ))}
      </pre>
    </>
  );
}
