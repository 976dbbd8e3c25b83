// Run a prompt: a form generated from the version's variable definitions, then the
// execution followed live until it is final.
import { useMemo, useState, type FormEvent } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post } from '../../api/client';
import type { Execution, PromptDto, VariableDefinition } from '../../api/types';
import { CodeEditor } from '../../components/CodeEditor';
import { ExecutionView } from '../../components/ExecutionView';
import { FieldProblems, FormProblems } from '../../components/Problems';
import { useLiveExecution } from '../../components/useLiveExecution';
import { emptyProblems, fromProblems, problemsFromError, unplaced, type ProblemMap } from '../../lib/problems';
import { coerceInputs, initialValues, runFields, type FormValues, type RunField } from '../../lib/runForm';

export function RunPage() {
  const { id = '' } = useParams();
  const [params] = useSearchParams();
  const version = params.get('version') ?? undefined;
  const prompt = useQuery({ queryKey: ['prompt', id, version ?? 'current'], queryFn: () => get<PromptDto>(`/api/prompts/${id}`, { version }) });
  if (prompt.isPending) return <p className="loading">Loading…</p>;
  if (prompt.isError) return <FormProblems messages={[prompt.error.message]} />;
  return <RunForm key={`${id}:${prompt.data.version.version}`} prompt={prompt.data} pinned={version !== undefined} />;
}

function RunForm({ prompt, pinned }: { prompt: PromptDto; pinned: boolean }) {
  const defs = prompt.version.variables as unknown as VariableDefinition[];
  const fields = useMemo(() => runFields(defs), [defs]);
  const [values, setValues] = useState<FormValues>(() => initialValues(fields));
  const [priority, setPriority] = useState('NORMAL');
  const [validateOutput, setValidateOutput] = useState(false);
  const [problems, setProblems] = useState<ProblemMap>(emptyProblems);
  const [executionId, setExecutionId] = useState<string | null>(null);
  const live = useLiveExecution(executionId);
  const qc = useQueryClient();

  const run = useMutation({
    mutationFn: (inputs: Record<string, unknown>) =>
      post<Execution>(`/api/prompts/${prompt.id}/execute`, { inputs, priority, validateOutput, version: pinned ? prompt.version.version : undefined }, { mode: 'async' }),
    onSuccess: (e) => {
      setExecutionId(e.id);
      qc.invalidateQueries({ queryKey: ['executions'] });
    },
    onError: (e) => setProblems(problemsFromError(e)),
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const { inputs, problems: found } = coerceInputs(defs, values);
    if (found.length > 0) {
      setProblems(fromProblems(found));
      return;
    }
    setProblems(emptyProblems());
    run.mutate(inputs);
  };
  const shown = new Set(fields.map((f) => `inputs.${f.name}`));

  return (
    <section>
      <div className="page-head">
        <h1>
          Run <Link to={`/prompts/${prompt.id}`}>{prompt.name}</Link> v{prompt.version.version}
        </h1>
      </div>
      <form onSubmit={submit} noValidate className="run-form" aria-label="Run prompt">
        <FormProblems messages={unplaced(problems, (f) => shown.has(f))} />
        {fields.length === 0 && <p className="muted">This version declares no variables.</p>}
        {fields.map((f) => (
          <RunInput key={f.name} field={f} value={values[f.name] ?? ''} onChange={(v) => setValues((s) => ({ ...s, [f.name]: v }))} problems={problems} />
        ))}
        <div className="grid2">
          <label>
            Priority
            <select value={priority} onChange={(e) => setPriority(e.target.value)} data-testid="priority">
              <option>LOW</option>
              <option>NORMAL</option>
              <option>HIGH</option>
            </select>
          </label>
          <label className="inline">
            <input type="checkbox" checked={validateOutput} onChange={(e) => setValidateOutput(e.target.checked)} data-testid="validate-output" /> Validate output
          </label>
        </div>
        <button type="submit" data-testid="run-submit" disabled={run.isPending}>
          Run
        </button>
      </form>
      {executionId && (
        <div className="card">
          <h2>
            Execution <Link to={`/executions/${executionId}`}>{executionId.slice(0, 8)}</Link>
          </h2>
          <ExecutionView live={live} />
        </div>
      )}
    </section>
  );
}

function RunInput({ field, value, onChange, problems }: { field: RunField; value: string | boolean; onChange: (v: string | boolean) => void; problems: ProblemMap }) {
  const label = `${field.label}${field.required ? ' *' : ''}`;
  const testId = `input-${field.name}`;
  const problemField = `inputs.${field.name}`;
  let control;
  switch (field.kind) {
    case 'checkbox':
      control = <input type="checkbox" data-testid={testId} checked={value === true} onChange={(e) => onChange(e.target.checked)} />;
      break;
    case 'select':
      control = (
        <select data-testid={testId} value={String(value)} onChange={(e) => onChange(e.target.value)}>
          {!field.required && <option value="">(none)</option>}
          {(field.options ?? []).map((o) => (
            <option key={o}>{o}</option>
          ))}
        </select>
      );
      break;
    case 'number':
      control = <input type="number" step={field.integer ? 1 : 'any'} data-testid={testId} value={String(value)} onChange={(e) => onChange(e.target.value)} />;
      break;
    case 'json':
      control = <CodeEditor language="json" label={field.label} testId={testId} value={String(value)} onChange={onChange} minLines={3} />;
      break;
    default:
      control = <textarea rows={3} data-testid={testId} maxLength={field.maxLength} value={String(value)} onChange={(e) => onChange(e.target.value)} />;
  }
  return (
    <div className={`run-field ${field.kind}`}>
      <label>
        <span>{label}</span>
        {control}
      </label>
      {field.description && <small className="muted">{field.description}</small>}
      <FieldProblems map={problems} field={problemField} />
    </div>
  );
}
