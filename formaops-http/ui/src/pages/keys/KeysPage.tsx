import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { del, get, post } from '../../api/client';
import type { ApiKey, ApiKeyList } from '../../api/types';
import { fmtTime } from '../../components/format';
import { ErrorNote } from '../../components/Problems';

export function KeysPage() {
  const qc = useQueryClient();
  const keys = useQuery({ queryKey: ['keys'], queryFn: () => get<ApiKeyList>('/api/auth/keys') });
  const [name, setName] = useState('');
  const [days, setDays] = useState('');
  // The secret lives in component state only, shown once, gone when the page is left.
  const [created, setCreated] = useState<ApiKey | null>(null);
  const create = useMutation({
    mutationFn: () => post<ApiKey>('/api/auth/keys', { name, expiresInDays: days ? Number(days) : undefined }),
    onSuccess: (k) => {
      setCreated(k);
      setName('');
      setDays('');
      qc.invalidateQueries({ queryKey: ['keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => del<void>(`/api/auth/keys/${id}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['keys'] }),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setCreated(null);
    create.mutate();
  };
  return (
    <section>
      <div className="page-head">
        <h1>API keys</h1>
      </div>
      <form className="filters" onSubmit={submit} aria-label="Create API key">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="key-name" required />
        </label>
        <label>
          Expires in days (optional)
          <input type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} />
        </label>
        <button type="submit" data-testid="create-key" disabled={create.isPending}>
          Create key
        </button>
      </form>
      <ErrorNote error={create.error ?? revoke.error} />
      {created?.token && (
        <div className="secret" role="status" data-testid="new-key">
          <p>
            Copy the key for <strong>{created.name}</strong> now: it is not shown again.
          </p>
          <code data-testid="new-key-secret">{created.token}</code>
          <button type="button" className="link" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
      <ErrorNote error={keys.error} />
      {keys.data && keys.data.items.length === 0 ? (
        <p className="empty">No API keys.</p>
      ) : (
        <table data-testid="keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Created</th>
              <th>Expires</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keys.data?.items ?? []).map((k) => (
              <tr key={k.id}>
                <td>{k.name}</td>
                <td>{fmtTime(k.createdAt)}</td>
                <td>{k.expiresAt ? fmtTime(k.expiresAt) : 'never'}</td>
                <td>
                  <button
                    type="button"
                    className="danger"
                    data-testid={`revoke-${k.name}`}
                    onClick={() => {
                      if (window.confirm(`Revoke ${k.name ?? 'this key'}? Clients using it stop working at once.`)) revoke.mutate(k.id);
                    }}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
