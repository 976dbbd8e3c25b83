// Experiments: the caller's list, and the form that starts one (a prompt, the versions or
// labels to compare, a dataset, a match rule); the new experiment's page follows its progress.
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useMutation, useQuery } from '@tanstack/react-query';
import { get, post } from '../../api/client';
import { MATCH_RULES, type DatasetPage, type ExperimentPage, type ExperimentView, type MatchRule } from '../../api/types';
import { PromptSelect, usePromptNames } from '../../components/Filters';
import { fmtTime, shortId } from '../../components/format';
import { ErrorNote, Problems } from '../../components/Problems';
import { StatusBadge } from '../../components/StatusBadge';
import { parseTargets } from '../../lib/experiments';

export function NewExperiment() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const [promptId, setPromptId] = useState(params.get('promptId') ?? '');
  const [datasetId, setDatasetId] = useState(params.get('datasetId') ?? '');
  const [versions, setVersions] = useState('production, latest');
  const [match, setMatch] = useState<MatchRule | ''>('');
  const [validate, setValidate] = useState(true);
  const [concurrency, setConcurrency] = useState('');
  const datasets = useQuery({ queryKey: ['datasets'], queryFn: () => get<DatasetPage>('/api/datasets', { limit: 200 }) });
  const start = useMutation({
    mutationFn: () => {
      const parsed = parseTargets(versions);
      if ('error' in parsed) throw new Error(`Versions: ${parsed.error}`);
      return post<ExperimentView>('/api/experiments', {
        promptId,
        datasetId,
        versions: parsed.targets,
        match: match || undefined,
        validateOutput: validate,
        concurrency: concurrency ? Number(concurrency) : undefined,
      });
    },
    onSuccess: (x) => navigate(`/experiments/${x.id}`),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    start.mutate();
  };
  return (
    <section>
      <div className="page-head">
        <h1>New experiment</h1>
      </div>
      <form className="filters" onSubmit={submit} aria-label="Start an experiment">
        <PromptSelect value={promptId} onChange={setPromptId} anyLabel="choose…" testId="experiment-prompt" />
        <label>
          Versions or labels
          <input value={versions} onChange={(e) => setVersions(e.target.value)} data-testid="experiment-versions" />
        </label>
        <label>
          Dataset
          <select value={datasetId} onChange={(e) => setDatasetId(e.target.value)} data-testid="experiment-dataset">
            <option value="">choose…</option>
            {(datasets.data?.items ?? []).map((d) => (
              <option key={d.id} value={d.id}>
                {d.name} ({d.rowCount} rows)
              </option>
            ))}
          </select>
        </label>
        <label>
          Match expected output
          <select value={match} onChange={(e) => setMatch(e.target.value as MatchRule | '')}>
            <option value="">no</option>
            {MATCH_RULES.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <label className="check">
          <input type="checkbox" checked={validate} onChange={(e) => setValidate(e.target.checked)} />
          validate outputs
        </label>
        <label>
          At most in flight
          <input type="number" min={1} max={256} value={concurrency} onChange={(e) => setConcurrency(e.target.value)} placeholder="8" />
        </label>
        <button type="submit" disabled={start.isPending || !promptId || !datasetId} data-testid="experiment-start">
          Start
        </button>
      </form>
      <Problems error={start.error} />
    </section>
  );
}

export function ExperimentsList() {
  const experiments = useQuery({
    queryKey: ['experiments'],
    queryFn: () => get<ExperimentPage>('/api/experiments', { limit: 100 }),
    refetchInterval: (q) => (q.state.data?.items.some((x) => x.status === 'RUNNING') ? 2000 : false),
  });
  const { names } = usePromptNames();
  return (
    <section>
      <div className="page-head">
        <h1>Experiments</h1>
        <Link to="/datasets">Datasets</Link>
        <Link to="/experiments/new" className="button" data-testid="new-experiment">
          New experiment
        </Link>
      </div>
      <ErrorNote error={experiments.error} />
      {experiments.data && experiments.data.items.length === 0 ? (
        <p className="empty">No experiments yet: make a dataset, then run versions of a prompt over it.</p>
      ) : (
        <table data-testid="experiments-table">
          <thead>
            <tr>
              <th>Experiment</th>
              <th>Prompt</th>
              <th>Versions</th>
              <th>Rows</th>
              <th>Status</th>
              <th>Started</th>
            </tr>
          </thead>
          <tbody>
            {(experiments.data?.items ?? []).map((x) => (
              <tr key={x.id}>
                <td>
                  <Link to={`/experiments/${x.id}`}>{shortId(x.id)}</Link>
                </td>
                <td>{names.get(x.promptId) ?? shortId(x.promptId)}</td>
                <td>{x.targets.map((t) => (t.requested === String(t.version) ? `v${t.version}` : `${t.requested} (v${t.version})`)).join(', ')}</td>
                <td>{x.rowCount}</td>
                <td>
                  <StatusBadge status={x.status} />
                </td>
                <td>{fmtTime(x.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
