import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get } from '../../api/client';
import type { ModelConfig, PromptDto, ValidationRule, VariableDefinition, VersionDto, VersionPage } from '../../api/types';
import { fmtTime } from '../../components/format';
import { ErrorNote } from '../../components/Problems';
import { LabelsPanel } from './LabelsPanel';

export function PromptPage() {
  const { id = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const version = params.get('version') ?? undefined;
  const qc = useQueryClient();
  const navigate = useNavigate();
  const prompt = useQuery({
    queryKey: ['prompt', id, version ?? 'current'],
    queryFn: () => get<PromptDto>(`/api/prompts/${id}`, { version }),
  });
  const versions = useInfiniteQuery({
    queryKey: ['versions', id],
    queryFn: ({ pageParam }) => get<VersionPage>(`/api/prompts/${id}/versions`, { limit: 50, cursor: pageParam }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor ?? undefined,
  });
  const archive = useMutation({
    mutationFn: () => del<void>(`/api/prompts/${id}`),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['prompts'] });
      qc.invalidateQueries({ queryKey: ['prompt', id] });
      navigate('/prompts');
    },
  });

  if (prompt.isPending) return <p className="loading">Loading…</p>;
  if (prompt.isError) return <ErrorNote error={prompt.error} />;
  const p = prompt.data;
  const v = p.version;
  const active = p.status === 'ACTIVE';
  return (
    <section>
      <div className="page-head">
        <h1 data-testid="prompt-name">{p.name}</h1>
        <span className={`tag ${active ? '' : 'tag-muted'}`}>{p.status}</span>
        <div className="actions">
          {active && (
            <>
              <Link className="button" to={`/prompts/${id}/run${version ? `?version=${version}` : ''}`} data-testid="run-prompt">
                Run
              </Link>
              <Link className="button secondary" to={`/prompts/${id}/edit`} data-testid="edit-prompt">
                Edit
              </Link>
              <button
                type="button"
                className="danger"
                onClick={() => {
                  if (window.confirm(`Archive ${p.name}? It can no longer be run or edited.`)) archive.mutate();
                }}
              >
                Archive
              </button>
            </>
          )}
          <Link className="button secondary" to={`/executions?promptId=${id}`}>
            Executions
          </Link>
        </div>
      </div>
      {p.description && <p className="muted">{p.description}</p>}
      <ErrorNote error={archive.error} />
      <div className="columns">
        <div className="main-col">
          <h2 data-testid="shown-version">
            Version {v.version}
            {v.version === p.currentVersion ? ' (current)' : ''}
          </h2>
          <VersionView v={v} />
        </div>
        <aside className="side-col">
          <LabelsPanel key={`${id}@${v.version}`} promptId={id} currentVersion={p.currentVersion} shownVersion={v.version} active={active} />
          <h2>History</h2>
          <ErrorNote error={versions.error} />
          <ol className="versions" data-testid="version-history">
            {(versions.data?.pages ?? [])
              .flatMap((pg) => pg.items)
              .map((item) => (
                <li key={item.version} className={item.version === v.version ? 'selected' : ''}>
                  <button type="button" className="link" onClick={() => setParams(item.version === p.currentVersion ? {} : { version: String(item.version) })}>
                    v{item.version}
                  </button>{' '}
                  <span className="muted">{fmtTime(item.createdAt)}</span>
                  {item.version > 1 && (
                    <>
                      {' '}
                      <Link to={`/prompts/${id}/diff?from=${item.version - 1}&to=${item.version}`} data-testid={`diff-link-${item.version}`}>
                        changes
                      </Link>
                    </>
                  )}
                </li>
              ))}
          </ol>
          {versions.hasNextPage && (
            <button type="button" onClick={() => versions.fetchNextPage()}>
              Older versions
            </button>
          )}
        </aside>
      </div>
    </section>
  );
}

function VersionView({ v }: { v: VersionDto }) {
  const vars = v.variables as unknown as VariableDefinition[];
  const rules = v.validations as unknown as ValidationRule[];
  const model = v.model as unknown as ModelConfig;
  return (
    <div className="version">
      {v.systemTemplate && (
        <>
          <h3>System template</h3>
          <pre className="code">{v.systemTemplate}</pre>
        </>
      )}
      <h3>Template</h3>
      <pre className="code" data-testid="template-text">
        {v.template}
      </pre>
      <h3>Variables</h3>
      {vars.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Type</th>
              <th>Required</th>
              <th>Default</th>
              <th>Description</th>
            </tr>
          </thead>
          <tbody>
            {vars.map((d) => (
              <tr key={d.name}>
                <td>
                  <code>{d.name}</code>
                </td>
                <td>
                  {d.type}
                  {d.values ? ` (${d.values.join(', ')})` : ''}
                </td>
                <td>{d.required ? 'yes' : 'no'}</td>
                <td>{d.defaultValue === undefined ? '' : JSON.stringify(d.defaultValue)}</td>
                <td>{d.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Validation rules</h3>
      {rules.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ul>
          {rules.map((r, i) => (
            <li key={i}>
              <code>{r.type}</code> {r.type === 'json' ? '' : <code>{JSON.stringify('pattern' in r ? r.pattern : 'schema' in r ? r.schema : r.value)}</code>}
            </li>
          ))}
        </ul>
      )}
      <h3>Model</h3>
      <p>
        <code>{model.provider ?? 'default provider'}</code> / <code>{model.model}</code>{' '}
        {model.parameters && Object.keys(model.parameters).length > 0 && <code>{JSON.stringify(model.parameters)}</code>}
      </p>
      <p className="muted">Created {fmtTime(v.createdAt)}</p>
    </div>
  );
}
