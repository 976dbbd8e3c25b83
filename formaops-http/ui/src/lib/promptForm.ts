// The editor's form state and its translation to and from the API's prompt shape. Text
// fields hold what the user typed; `toRequest` parses them and reports what does not parse
// under the server's field names (`variables[1].defaultValue`, `model.parameters.temperature`).
import type { Problem } from '../api/client';
import type {
  CreatePromptRequest,
  ModelConfig,
  ValidationRule,
  ValidationType,
  VariableDefinition,
  VariableType,
  VersionDto,
} from '../api/types';

export interface VariableRow {
  name: string;
  type: VariableType;
  required: boolean;
  description: string;
  /** As typed: text for strings, `42`, `true`, JSON for json. */
  defaultValue: string;
  /** Enum values, comma-separated. */
  values: string;
  /** JSON Schema text, for json. */
  schema: string;
}

export interface RuleRow {
  type: ValidationType;
  /** Pattern, needle, length or JSON Schema text depending on the type. */
  param: string;
}

export interface PromptForm {
  name: string;
  description: string;
  template: string;
  systemTemplate: string;
  variables: VariableRow[];
  validations: RuleRow[];
  provider: string;
  model: string;
  temperature: string;
  topP: string;
  maxCompletionTokens: string;
  seed: string;
  /** Stop sequences, one per line. */
  stop: string;
}

export const emptyVariable = (): VariableRow => ({
  name: '',
  type: 'string',
  required: true,
  description: '',
  defaultValue: '',
  values: '',
  schema: '',
});

export function emptyForm(): PromptForm {
  return {
    name: '',
    description: '',
    template: '',
    systemTemplate: '',
    variables: [],
    validations: [],
    provider: '',
    model: '',
    temperature: '',
    topP: '',
    maxCompletionTokens: '',
    seed: '',
    stop: '',
  };
}

/** Which parameter a rule type takes. */
export function ruleParam(type: ValidationType): 'none' | 'schema' | 'pattern' | 'number' | 'text' {
  switch (type) {
    case 'json':
      return 'none';
    case 'json_schema':
      return 'schema';
    case 'regex':
      return 'pattern';
    case 'min_length':
    case 'max_length':
      return 'number';
    case 'contains':
    case 'not_contains':
      return 'text';
  }
}

/** The rule attribute the server names in problems (`validations[0].pattern`). */
export function ruleAttr(type: ValidationType): string | null {
  switch (ruleParam(type)) {
    case 'none':
      return null;
    case 'schema':
      return 'schema';
    case 'pattern':
      return 'pattern';
    default:
      return 'value';
  }
}

const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

function defaultText(d: VariableDefinition): string {
  if (d.defaultValue === undefined || d.defaultValue === null) return '';
  if (d.type === 'json') return JSON.stringify(d.defaultValue, null, 2);
  return String(d.defaultValue);
}

/** The form for an existing version (the editor starts from the current one). */
export function fromVersion(name: string, description: string | null | undefined, v: VersionDto): PromptForm {
  const model = v.model as unknown as ModelConfig;
  const p = model.parameters ?? {};
  return {
    name,
    description: description ?? '',
    template: v.template,
    systemTemplate: v.systemTemplate ?? '',
    variables: (v.variables as unknown as VariableDefinition[]).map((d) => ({
      name: d.name,
      type: d.type,
      required: d.required === true,
      description: d.description ?? '',
      defaultValue: defaultText(d),
      values: (d.values ?? []).join(', '),
      schema: d.schema === undefined ? '' : JSON.stringify(d.schema, null, 2),
    })),
    validations: (v.validations as unknown as ValidationRule[]).map((r) => {
      switch (r.type) {
        case 'json':
          return { type: r.type, param: '' };
        case 'json_schema':
          return { type: r.type, param: JSON.stringify(r.schema, null, 2) };
        case 'regex':
          return { type: r.type, param: r.pattern };
        default:
          return { type: r.type, param: str(r.value) };
      }
    }),
    provider: model.provider ?? '',
    model: model.model,
    temperature: str(p.temperature),
    topP: str(p.topP),
    maxCompletionTokens: str(p.maxCompletionTokens),
    seed: str(p.seed),
    stop: (p.stop ?? []).join('\n'),
  };
}

export interface Built {
  body: CreatePromptRequest;
  problems: Problem[];
}

function parseJson(text: string, field: string, problems: Problem[]): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    problems.push({ field, code: 'malformed_json', message: `not valid JSON: ${(e as Error).message}` });
    return undefined;
  }
}

function parseNumber(text: string, field: string, problems: Problem[], integer: boolean): number | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  const n = Number(t);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    problems.push({ field, code: 'wrong_type', message: integer ? 'must be a whole number' : 'must be a number' });
    return undefined;
  }
  return n;
}

function parseDefault(row: VariableRow, field: string, problems: Problem[]): unknown {
  const t = row.defaultValue;
  if (t.trim() === '') return undefined;
  switch (row.type) {
    case 'string':
    case 'enum':
      return t;
    case 'number':
    case 'integer':
      return parseNumber(t, field, problems, row.type === 'integer');
    case 'boolean':
      if (t.trim() === 'true') return true;
      if (t.trim() === 'false') return false;
      problems.push({ field, code: 'wrong_type', message: 'must be true or false' });
      return undefined;
    case 'json':
      return parseJson(t, field, problems);
  }
}

/**
 * The request body for the form, and every problem found before sending (the server checks
 * the rest: template syntax, undeclared variables, regex and schema validity, ...).
 */
export function toRequest(form: PromptForm): Built {
  const problems: Problem[] = [];
  const variables: VariableDefinition[] = form.variables.map((row, i) => {
    const at = `variables[${i}]`;
    const d: VariableDefinition = { name: row.name.trim(), type: row.type, required: row.required };
    if (row.description.trim()) d.description = row.description.trim();
    const dv = parseDefault(row, `${at}.defaultValue`, problems);
    if (dv !== undefined) d.defaultValue = dv;
    if (row.type === 'enum') {
      d.values = row.values
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    }
    if (row.type === 'json' && row.schema.trim()) {
      const schema = parseJson(row.schema, `${at}.schema`, problems);
      if (schema !== undefined) d.schema = schema;
    }
    return d;
  });
  const validations: ValidationRule[] = [];
  form.validations.forEach((row, i) => {
    const at = `validations[${i}]`;
    switch (row.type) {
      case 'json':
        validations.push({ type: 'json' });
        break;
      case 'json_schema': {
        const schema = parseJson(row.param, `${at}.schema`, problems);
        validations.push({ type: 'json_schema', schema: schema ?? {} });
        break;
      }
      case 'regex':
        validations.push({ type: 'regex', pattern: row.param });
        break;
      case 'min_length':
      case 'max_length': {
        const n = parseNumber(row.param, `${at}.value`, problems, true);
        if (n === undefined && row.param.trim() === '') {
          problems.push({ field: `${at}.value`, code: 'missing', message: 'a length is required' });
        }
        validations.push({ type: row.type, value: n ?? 0 });
        break;
      }
      case 'contains':
      case 'not_contains':
        validations.push({ type: row.type, value: row.param });
        break;
    }
  });
  const parameters: NonNullable<ModelConfig['parameters']> = {};
  const temperature = parseNumber(form.temperature, 'model.parameters.temperature', problems, false);
  if (temperature !== undefined) parameters.temperature = temperature;
  const topP = parseNumber(form.topP, 'model.parameters.topP', problems, false);
  if (topP !== undefined) parameters.topP = topP;
  const maxTokens = parseNumber(form.maxCompletionTokens, 'model.parameters.maxCompletionTokens', problems, true);
  if (maxTokens !== undefined) parameters.maxCompletionTokens = maxTokens;
  const seed = parseNumber(form.seed, 'model.parameters.seed', problems, true);
  if (seed !== undefined) parameters.seed = seed;
  const stop = form.stop
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (stop.length > 0) parameters.stop = stop;

  const body: CreatePromptRequest = {
    name: form.name.trim(),
    template: form.template,
    variables: variables as unknown as CreatePromptRequest['variables'],
    validations: validations as unknown as CreatePromptRequest['validations'],
  };
  if (form.description.trim()) body.description = form.description.trim();
  if (form.systemTemplate.trim()) body.systemTemplate = form.systemTemplate;
  if (form.model.trim() || form.provider.trim() || Object.keys(parameters).length > 0) {
    const model: ModelConfig = { model: form.model.trim(), parameters };
    if (form.provider.trim()) model.provider = form.provider.trim();
    body.model = model as unknown as CreatePromptRequest['model'];
  }
  return { body, problems };
}
