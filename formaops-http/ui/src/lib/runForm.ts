// The run form: one field per variable definition, and the coercion of what was typed into
// the `inputs` object the server expects. Problems use the server's field names
// (`inputs.<name>`), so client-side and server-side problems display the same way.
import type { Problem } from '../api/client';
import type { VariableDefinition } from '../api/types';

export type FieldKind = 'text' | 'number' | 'checkbox' | 'select' | 'json';

export interface RunField {
  name: string;
  kind: FieldKind;
  label: string;
  required: boolean;
  description?: string;
  /** Choices for `select`. */
  options?: string[];
  /** `step` for number inputs: 1 for integers, any for numbers. */
  integer?: boolean;
  maxLength?: number;
  /** The initial form value: a string for text-like fields, a boolean for checkboxes. */
  initial: string | boolean;
}

export type FormValues = Record<string, string | boolean>;

const KIND: Record<VariableDefinition['type'], FieldKind> = {
  string: 'text',
  number: 'number',
  integer: 'number',
  boolean: 'checkbox',
  enum: 'select',
  json: 'json',
};

/** The form for a version's variable definitions, in their declared order. */
export function runFields(defs: readonly VariableDefinition[]): RunField[] {
  return defs.map((d) => {
    const kind = KIND[d.type] ?? 'text';
    const field: RunField = {
      name: d.name,
      kind,
      label: d.name,
      required: d.required === true,
      initial: initialValue(d, kind),
    };
    if (d.description) field.description = d.description;
    if (kind === 'select') field.options = d.values ?? [];
    if (d.type === 'integer') field.integer = true;
    if (d.maxLength !== undefined) field.maxLength = d.maxLength;
    return field;
  });
}

function initialValue(d: VariableDefinition, kind: FieldKind): string | boolean {
  const v = d.defaultValue;
  if (kind === 'checkbox') return v === true;
  if (v === undefined || v === null) {
    // A required select starts on its first choice; an optional one on "(none)".
    if (kind === 'select' && d.required) return d.values?.[0] ?? '';
    return '';
  }
  if (kind === 'json') return JSON.stringify(v, null, 2);
  return String(v);
}

export interface Coerced {
  inputs: Record<string, unknown>;
  problems: Problem[];
}

/**
 * Turns form values into typed inputs. Empty optional fields are left out (the server then
 * applies the default); empty required ones are a `missing` problem. Checkboxes always send
 * their boolean.
 */
export function coerceInputs(defs: readonly VariableDefinition[], values: FormValues): Coerced {
  const inputs: Record<string, unknown> = {};
  const problems: Problem[] = [];
  for (const d of defs) {
    const field = `inputs.${d.name}`;
    const raw = values[d.name];
    if (d.type === 'boolean') {
      inputs[d.name] = raw === true;
      continue;
    }
    const text = typeof raw === 'string' ? raw : '';
    if (text.trim() === '' && d.type !== 'string') {
      if (d.required) problems.push({ field, code: 'missing', message: 'required' });
      continue;
    }
    if (text === '' && d.type === 'string') {
      if (d.required) problems.push({ field, code: 'missing', message: 'required' });
      continue;
    }
    switch (d.type) {
      case 'string':
        inputs[d.name] = text;
        break;
      case 'number':
      case 'integer': {
        const n = Number(text.trim());
        if (!Number.isFinite(n)) {
          problems.push({ field, code: 'wrong_type', message: 'must be a number' });
        } else if (d.type === 'integer' && !Number.isInteger(n)) {
          problems.push({ field, code: 'wrong_type', message: 'must be a whole number' });
        } else {
          inputs[d.name] = n;
        }
        break;
      }
      case 'enum':
        if (d.values && !d.values.includes(text)) {
          problems.push({ field, code: 'not_allowed', message: `must be one of: ${d.values.join(', ')}` });
        } else {
          inputs[d.name] = text;
        }
        break;
      case 'json':
        try {
          inputs[d.name] = JSON.parse(text);
        } catch (e) {
          problems.push({ field, code: 'malformed_json', message: `not valid JSON: ${(e as Error).message}` });
        }
        break;
    }
  }
  return { inputs, problems };
}

/** Initial form values for a set of fields. */
export function initialValues(fields: readonly RunField[]): FormValues {
  return Object.fromEntries(fields.map((f) => [f.name, f.initial]));
}
