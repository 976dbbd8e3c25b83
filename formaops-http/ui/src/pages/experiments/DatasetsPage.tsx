// Datasets: the caller's list, and two ways to make one: upload a JSONL or CSV file, or take
// the inputs of a prompt's past executions (real traffic, replayed by an experiment).
import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post, upload } from '../../api/client';
import type { Dataset, DatasetPage } from '../../api/types';
import { PromptSelect } from '../../components/Filters';
import { fmtTime } from '../../components/format';
import { ErrorNote, Problems } from '../../components/Problems';
import { datasetContentType, datasetName } from '../../lib/experiments';

function UploadForm({ onCreated }: { onCreated: (d: Dataset) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState('');
  const create = useMutation({
    mutationFn: async () => {
      if (!file) throw new Error('choose a .jsonl or .csv file');
      const kind = datasetContentType(file.name);
      if (!kind) throw new Error(`${file.name}: give a .jsonl or .csv file`);
      return upload<Dataset>('/api/datasets', await file.text(), kind, { name: name.trim() || datasetName(file.name) });
    },
    onSuccess: onCreated,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <form className="filters" onSubmit={submit} aria-label="Upload a dataset">
      <label>
        File (.jsonl or .csv)
        <input type="file" accept=".jsonl,.ndjson,.csv" data-testid="dataset-file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
      </label>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} placeholder={file ? datasetName(file.name) : 'the file name'} />
      </label>
      <button type="submit" disabled={create.isPending} data-testid="dataset-upload">
        Upload
      </button>
      <Problems error={create.error} />
    </form>
  );
}

function FromExecutionsForm({ onCreated }: { onCreated: (d: Dataset) => void }) {
  const [promptId, setPromptId] = useState('');
  const [name, setName] = useState('');
  const [version, setVersion] = useState('');
  const [limit, setLimit] = useState('100');
  const [expected, setExpected] = useState(false);
  const create = useMutation({
    mutationFn: () =>
      post<Dataset>('/api/datasets/from-executions', {
        name: name.trim(),
        promptId,
        version: version ? Number(version) : undefined,
        limit: limit ? Number(limit) : undefined,
        status: 'COMPLETED',
        expectedFromOutput: expected,
      }),
    onSuccess: onCreated,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  return (
    <form className="filters" onSubmit={submit} aria-label="Dataset from past executions">
      <PromptSelect value={promptId} onChange={setPromptId} anyLabel="choose…" testId="from-prompt" />
      <label>
        Version
        <input type="number" min={1} value={version} onChange={(e) => setVersion(e.target.value)} placeholder="any" />
      </label>
      <label>
        At most
        <input type="number" min={1} value={limit} onChange={(e) => setLimit(e.target.value)} />
      </label>
      <label className="check">
        <input type="checkbox" checked={expected} onChange={(e) => setExpected(e.target.checked)} />
        outputs as expected outputs
      </label>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} required data-testid="from-name" />
      </label>
      <button type="submit" disabled={create.isPending || !promptId} data-testid="from-create">
        Create from completed executions
      </button>
      <Problems error={create.error} />
    </form>
  );
}

export function DatasetsPage() {
  const qc = useQueryClient();
  const datasets = useQuery({ queryKey: ['datasets'], queryFn: () => get<DatasetPage>('/api/datasets', { limit: 200 }) });
  const [created, setCreated] = useState<Dataset | null>(null);
  const onCreated = (d: Dataset) => {
    setCreated(d);
    qc.invalidateQueries({ queryKey: ['datasets'] });
  };
  return (
    <section>
      <div className="page-head">
        <h1>Datasets</h1>
        <Link to="/experiments">Experiments</Link>
      </div>
      <h2>Upload</h2>
      <UploadForm onCreated={onCreated} />
      <h2>From past executions</h2>
      <FromExecutionsForm onCreated={onCreated} />
      {created && (
        <p role="status" data-testid="dataset-created">
          Created <Link to={`/experiments/new?datasetId=${created.id}`}>{created.name}</Link> with {created.rowCount} rows.
        </p>
      )}
      <ErrorNote error={datasets.error} />
      <h2>Your datasets</h2>
      {datasets.data && datasets.data.items.length === 0 ? (
        <p className="empty">No datasets yet.</p>
      ) : (
        <table data-testid="datasets-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Rows</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(datasets.data?.items ?? []).map((d) => (
              <tr key={d.id}>
                <td>{d.name}</td>
                <td>{d.rowCount}</td>
                <td>{fmtTime(d.createdAt)}</td>
                <td>
                  <Link to={`/experiments/new?datasetId=${d.id}`}>Run an experiment</Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
