// Maps an API error to messages shown next to the fields they name. The server answers 422
// with `details.problems: [{field, code, message}]` (`template`, `systemTemplate`,
// `variables[2].values`, `validations[0].pattern`, `model.model`, `inputs.topic`, ...) and
// 400 `invalid_argument` with `details.field`; anything else is a form-level message.
import { ApiError, type Problem } from '../api/client';

export interface ProblemMap {
  /** Messages by field name, in the order the server sent them. */
  byField: Map<string, string[]>;
  /** Messages that name no field. */
  general: string[];
}

export function emptyProblems(): ProblemMap {
  return { byField: new Map(), general: [] };
}

function isProblem(p: unknown): p is Problem {
  if (!p || typeof p !== 'object') return false;
  const o = p as Record<string, unknown>;
  return typeof o.field === 'string' && typeof o.message === 'string';
}

export function fromProblems(problems: readonly Problem[], general: readonly string[] = []): ProblemMap {
  const map = emptyProblems();
  map.general.push(...general);
  for (const p of problems) {
    if (!p.field) {
      map.general.push(p.message);
      continue;
    }
    const list = map.byField.get(p.field) ?? [];
    list.push(p.message);
    map.byField.set(p.field, list);
  }
  return map;
}

/** Every problem an error carries, by field where it names one. */
export function problemsFromError(err: unknown): ProblemMap {
  if (!(err instanceof ApiError)) {
    return fromProblems([], [err instanceof Error ? err.message : String(err)]);
  }
  const details = err.details;
  if (details && typeof details === 'object') {
    const d = details as Record<string, unknown>;
    if (Array.isArray(d.problems)) {
      const problems = d.problems.filter(isProblem);
      if (problems.length > 0) return fromProblems(problems);
    }
    if (typeof d.field === 'string' && d.field) {
      return fromProblems([{ field: d.field, code: err.code, message: err.message }]);
    }
  }
  return fromProblems([], [err.message]);
}

/** Messages for exactly this field. */
export function messagesFor(map: ProblemMap, field: string): string[] {
  return map.byField.get(field) ?? [];
}

/**
 * Messages for this field and everything under it (`variables[0]` also collects
 * `variables[0].name`), for rows that show one summary.
 */
export function messagesUnder(map: ProblemMap, prefix: string): string[] {
  const out: string[] = [];
  for (const [field, messages] of map.byField) {
    if (field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`)) {
      out.push(...messages.map((m) => (field === prefix ? m : `${field.slice(prefix.length).replace(/^\./, '')}: ${m}`)));
    }
  }
  return out;
}

/**
 * Problems whose field is shown nowhere on the form (so none is lost): `isShown` says
 * whether a field has a place; the rest are listed at the top with their field name.
 */
export function unplaced(map: ProblemMap, isShown: (field: string) => boolean): string[] {
  const out = [...map.general];
  for (const [field, messages] of map.byField) {
    if (!isShown(field)) out.push(...messages.map((m) => `${field}: ${m}`));
  }
  return out;
}
