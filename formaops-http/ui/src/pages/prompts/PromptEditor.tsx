// Create a prompt, or edit one (which always saves a new immutable version). Problems found
// before sending and those the server answers (422 `details.problems`) are shown next to
// the field they name.
import { useEffect, useState, type FormEvent } from 'react';
import { useNavigate, useParams } from 'react-router';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { get, post, put } from '../../api/client';
import { VALIDATION_TYPES, VARIABLE_TYPES, type PromptDto, type ValidationType, type VariableType } from '../../api/types';
import { CodeEditor } from '../../components/CodeEditor';
import { FieldProblems, FormProblems } from '../../components/Problems';
import { emptyForm, emptyVariable, fromVersion, ruleAttr, ruleParam, toRequest, type PromptForm, type RuleRow, type VariableRow } from '../../lib/promptForm';
import { emptyProblems, fromProblems, messagesFor, problemsFromError, unplaced, type ProblemMap } from '../../lib/problems';

/** Fields that have a place on this form (the rest are listed at the top). */
export function editorShows(field: string): boolean {
  return (
    ['name', 'description', 'template', 'systemTemplate', 'variables', 'validations', 'model', 'model.model', 'model.provider'].includes(field) ||
    /^variables\[\d+\]/.test(field) ||
    /^validations\[\d+\]/.test(field) ||
    field.startsWith('model.parameters')
  );
}

export function PromptEditor() {
  const { id } = useParams();
  const editing = id !== undefined;
  const navigate = useNavigate();
  const qc = useQueryClient();
  const current = useQuery({
    queryKey: ['prompt', id ?? '', 'current'],
    queryFn: () => get<PromptDto>(`/api/prompts/${id}`),
    enabled: editing,
  });
  const [form, setForm] = useState<PromptForm>(emptyForm);
  const [loadedVersion, setLoadedVersion] = useState<number | null>(null);
  const [problems, setProblems] = useState<ProblemMap>(emptyProblems);

  useEffect(() => {
    if (current.data && loadedVersion === null) {
      setForm(fromVersion(current.data.name, current.data.description, current.data.version));
      setLoadedVersion(current.data.currentVersion);
    }
  }, [current.data, loadedVersion]);

  const save = useMutation({
    mutationFn: async (body: ReturnType<typeof toRequest>['body']) => {
      if (editing) {
        return put<PromptDto>(`/api/prompts/${id}`, { ...body, expectedVersion: loadedVersion ?? undefined });
      }
      return post<PromptDto>('/api/prompts', body);
    },
    onSuccess: (saved) => {
      qc.invalidateQueries({ queryKey: ['prompts'] });
      qc.invalidateQueries({ queryKey: ['prompt', saved.id] });
      qc.invalidateQueries({ queryKey: ['versions', saved.id] });
      navigate(`/prompts/${saved.id}`);
    },
    onError: (e) => setProblems(problemsFromError(e)),
  });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const built = toRequest(form);
    if (built.problems.length > 0) {
      setProblems(fromProblems(built.problems));
      return;
    }
    setProblems(emptyProblems());
    save.mutate(built.body);
  };

  const set = <K extends keyof PromptForm>(key: K, value: PromptForm[K]) => setForm((f) => ({ ...f, [key]: value }));
  const setVar = (i: number, patch: Partial<VariableRow>) =>
    setForm((f) => ({ ...f, variables: f.variables.map((v, j) => (j === i ? { ...v, ...patch } : v)) }));
  const setRule = (i: number, patch: Partial<RuleRow>) =>
    setForm((f) => ({ ...f, validations: f.validations.map((r, j) => (j === i ? { ...r, ...patch } : r)) }));

  if (editing && current.isPending) return <p className="loading">Loading…</p>;
  if (editing && current.isError) return <FormProblems messages={[current.error.message]} />;
  const invalid = (field: string) => messagesFor(problems, field).length > 0;

  return (
    <form className="editor" onSubmit={submit} noValidate aria-label="Prompt editor">
      <div className="page-head">
        <h1>{editing ? `Edit ${current.data?.name ?? ''} (new version after v${loadedVersion ?? '?'})` : 'New prompt'}</h1>
      </div>
      <FormProblems messages={unplaced(problems, editorShows)} />
      <div className="grid2">
        <label>
          Name
          <input data-testid="prompt-name-input" value={form.name} onChange={(e) => set('name', e.target.value)} aria-invalid={invalid('name')} />
          <FieldProblems map={problems} field="name" />
        </label>
        <label>
          Description
          <input value={form.description} onChange={(e) => set('description', e.target.value)} />
          <FieldProblems map={problems} field="description" />
        </label>
      </div>

      <h2>System template</h2>
      <CodeEditor language="jinja" label="System template" testId="system-template-editor" value={form.systemTemplate} onChange={(v) => set('systemTemplate', v)} minLines={2} placeholder="Optional system message" invalid={invalid('systemTemplate')} />
      <FieldProblems map={problems} field="systemTemplate" />

      <h2>Template</h2>
      <CodeEditor language="jinja" label="Template" testId="template-editor" value={form.template} onChange={(v) => set('template', v)} placeholder="Summarise {{ text }} in {{ words }} words." invalid={invalid('template')} />
      <FieldProblems map={problems} field="template" />

      <h2>Variables</h2>
      <FieldProblems map={problems} field="variables" />
      <table className="rows" data-testid="variables-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Type</th>
            <th>Required</th>
            <th>Default</th>
            <th>Description</th>
            <th>Enum values / JSON schema</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {form.variables.map((v, i) => (
            <VariableEditorRow key={i} index={i} row={v} problems={problems} onChange={(patch) => setVar(i, patch)} onRemove={() => setForm((f) => ({ ...f, variables: f.variables.filter((_, j) => j !== i) }))} />
          ))}
        </tbody>
      </table>
      <button type="button" className="secondary" data-testid="add-variable" onClick={() => setForm((f) => ({ ...f, variables: [...f.variables, emptyVariable()] }))}>
        Add variable
      </button>

      <h2>Output validation rules</h2>
      <FieldProblems map={problems} field="validations" />
      {form.validations.map((r, i) => {
        const kind = ruleParam(r.type);
        const attr = ruleAttr(r.type);
        return (
          <div className="rule-row" key={i} data-testid={`rule-${i}`}>
            <select aria-label={`Rule ${i + 1} type`} value={r.type} onChange={(e) => setRule(i, { type: e.target.value as ValidationType })}>
              {VALIDATION_TYPES.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
            {kind === 'schema' ? (
              <CodeEditor language="json" label={`Rule ${i + 1} JSON schema`} value={r.param} onChange={(p) => setRule(i, { param: p })} minLines={3} />
            ) : kind !== 'none' ? (
              <input aria-label={`Rule ${i + 1} ${attr}`} type={kind === 'number' ? 'number' : 'text'} value={r.param} onChange={(e) => setRule(i, { param: e.target.value })} />
            ) : null}
            <button type="button" className="link" onClick={() => setForm((f) => ({ ...f, validations: f.validations.filter((_, j) => j !== i) }))}>
              Remove
            </button>
            <FieldProblems map={problems} field={`validations[${i}]`} under />
          </div>
        );
      })}
      <button type="button" className="secondary" onClick={() => setForm((f) => ({ ...f, validations: [...f.validations, { type: 'json', param: '' }] }))}>
        Add rule
      </button>

      <h2>Model</h2>
      <div className="grid3">
        <label>
          Provider
          <input value={form.provider} onChange={(e) => set('provider', e.target.value)} placeholder="server default" />
          <FieldProblems map={problems} field="model.provider" />
        </label>
        <label>
          Model
          <input data-testid="model-input" value={form.model} onChange={(e) => set('model', e.target.value)} placeholder="gpt-4o-mini" />
          <FieldProblems map={problems} field="model.model" />
          <FieldProblems map={problems} field="model" />
        </label>
        <label>
          Temperature
          <input inputMode="decimal" value={form.temperature} onChange={(e) => set('temperature', e.target.value)} />
          <FieldProblems map={problems} field="model.parameters.temperature" />
        </label>
        <label>
          Top p
          <input inputMode="decimal" value={form.topP} onChange={(e) => set('topP', e.target.value)} />
          <FieldProblems map={problems} field="model.parameters.topP" />
        </label>
        <label>
          Max completion tokens
          <input inputMode="numeric" value={form.maxCompletionTokens} onChange={(e) => set('maxCompletionTokens', e.target.value)} />
          <FieldProblems map={problems} field="model.parameters.maxCompletionTokens" />
        </label>
        <label>
          Seed
          <input inputMode="numeric" value={form.seed} onChange={(e) => set('seed', e.target.value)} />
          <FieldProblems map={problems} field="model.parameters.seed" />
        </label>
        <label>
          Stop sequences (one per line)
          <textarea rows={2} value={form.stop} onChange={(e) => set('stop', e.target.value)} />
          <FieldProblems map={problems} field="model.parameters.stop" />
        </label>
      </div>

      <div className="form-actions">
        <button type="submit" data-testid="save-prompt" disabled={save.isPending}>
          {editing ? 'Save new version' : 'Create prompt'}
        </button>
        <button type="button" className="secondary" onClick={() => navigate(-1)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function VariableEditorRow({ index, row, problems, onChange, onRemove }: { index: number; row: VariableRow; problems: ProblemMap; onChange: (p: Partial<VariableRow>) => void; onRemove: () => void }) {
  const at = `variables[${index}]`;
  return (
    <>
      <tr data-testid={`variable-${index}`}>
        <td>
          <input aria-label={`Variable ${index + 1} name`} value={row.name} onChange={(e) => onChange({ name: e.target.value })} />
        </td>
        <td>
          <select aria-label={`Variable ${index + 1} type`} value={row.type} onChange={(e) => onChange({ type: e.target.value as VariableType })}>
            {VARIABLE_TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </td>
        <td>
          <input type="checkbox" aria-label={`Variable ${index + 1} required`} checked={row.required} onChange={(e) => onChange({ required: e.target.checked })} />
        </td>
        <td>
          <input aria-label={`Variable ${index + 1} default`} value={row.defaultValue} onChange={(e) => onChange({ defaultValue: e.target.value })} />
        </td>
        <td>
          <input aria-label={`Variable ${index + 1} description`} value={row.description} onChange={(e) => onChange({ description: e.target.value })} />
        </td>
        <td>
          {row.type === 'enum' ? (
            <input aria-label={`Variable ${index + 1} enum values`} placeholder="a, b, c" value={row.values} onChange={(e) => onChange({ values: e.target.value })} />
          ) : row.type === 'json' ? (
            <textarea aria-label={`Variable ${index + 1} JSON schema`} rows={2} placeholder='{"type": "object"}' value={row.schema} onChange={(e) => onChange({ schema: e.target.value })} />
          ) : (
            <span className="muted">—</span>
          )}
        </td>
        <td>
          <button type="button" className="link" onClick={onRemove}>
            Remove
          </button>
        </td>
      </tr>
      {[...problems.byField.keys()].some((f) => f.startsWith(at)) && (
        <tr className="row-problems">
          <td colSpan={7}>
            <FieldProblems map={problems} field={at} under />
          </td>
        </tr>
      )}
    </>
  );
}
