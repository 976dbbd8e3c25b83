// A prompt's labels: where each points, moving one to a version (promotion or rollback),
// deleting one, and the history of moves. `latest` is built in: it always names the newest
// version and cannot be moved or deleted. A refusal by the promotion guard shows its reasons.
import { useState } from 'react';
import { Link } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get, put } from '../../api/client';
import type { Label, LabelHistory, LabelList, SetLabelRequest } from '../../api/types';
import { fmtTime } from '../../components/format';
import { ErrorNote } from '../../components/Problems';

const LATEST = 'latest';

export function LabelsPanel(props: { promptId: string; currentVersion: number; shownVersion: number; active: boolean }) {
  const { promptId, currentVersion, shownVersion, active } = props;
  const qc = useQueryClient();
  const labels = useQuery({ queryKey: ['labels', promptId, currentVersion], queryFn: () => get<LabelList>(`/api/prompts/${promptId}/labels`) });
  const [showHistory, setShowHistory] = useState(false);
  const history = useQuery({
    queryKey: ['label-history', promptId],
    queryFn: () => get<LabelHistory>(`/api/prompts/${promptId}/label-history`),
    enabled: showHistory,
  });
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ['labels', promptId] });
    void qc.invalidateQueries({ queryKey: ['label-history', promptId] });
  };
  const move = useMutation({
    mutationFn: ({ name, version }: { name: string; version: number }) =>
      put<Label>(`/api/prompts/${promptId}/labels/${encodeURIComponent(name)}`, { version } satisfies SetLabelRequest),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (name: string) => del<void>(`/api/prompts/${promptId}/labels/${encodeURIComponent(name)}`),
    onSuccess: refresh,
  });
  const [name, setName] = useState('production');
  const [version, setVersion] = useState(String(shownVersion));

  return (
    <div className="labels" data-testid="labels-panel">
      <h2>Labels</h2>
      <ErrorNote error={labels.error} />
      <ul className="label-list">
        {(labels.data?.items ?? []).map((l) => (
          <li key={l.name} data-testid={`label-${l.name}`}>
            <span className="tag">{l.name}</span> →{' '}
            <Link to={l.version === currentVersion ? `/prompts/${promptId}` : `/prompts/${promptId}?version=${l.version}`}>v{l.version}</Link>
            {active && l.name !== LATEST && (
              <button
                type="button"
                className="link"
                onClick={() => {
                  if (window.confirm(`Delete the label ${l.name}?`)) remove.mutate(l.name);
                }}
              >
                delete
              </button>
            )}
          </li>
        ))}
      </ul>
      {active && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            const n = Number(version);
            if (name && Number.isInteger(n) && n >= 1) move.mutate({ name: name.trim(), version: n });
          }}
        >
          <label>
            Label
            <input value={name} onChange={(e) => setName(e.target.value)} pattern="[a-z0-9_\-]{1,64}" required data-testid="label-name" />
          </label>
          <label>
            Version
            <input type="number" min={1} max={currentVersion} value={version} onChange={(e) => setVersion(e.target.value)} required data-testid="label-version" />
          </label>
          <button type="submit" disabled={move.isPending} data-testid="move-label">
            Point here
          </button>
        </form>
      )}
      <ErrorNote error={move.error ?? remove.error} />
      <button type="button" className="link" onClick={() => setShowHistory((s) => !s)} data-testid="label-history-toggle">
        {showHistory ? 'Hide history' : 'History of moves'}
      </button>
      {showHistory && (
        <>
          <ErrorNote error={history.error} />
          <ol className="label-history" data-testid="label-history">
            {(history.data?.items ?? []).map((m, i) => (
              <li key={i}>
                <span className="tag">{m.name}</span> {m.from == null ? 'created at' : m.to == null ? 'deleted from' : `v${m.from} →`}{' '}
                {m.to == null ? `v${m.from}` : `v${m.to}`} <span className="muted">{fmtTime(m.at)}</span>
              </li>
            ))}
            {history.data && history.data.items.length === 0 && <li className="muted">No moves yet.</li>}
          </ol>
        </>
      )}
    </div>
  );
}
