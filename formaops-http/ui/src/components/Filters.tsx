// The filter row shared by the executions list and the metrics page: the filters live in the
// page's URL query (so a filtered view can be bookmarked and shared), a prompt picker fed by
// the caller's prompts, and a local-time range sent to the API as RFC 3339 UTC.
import { useMemo } from 'react';
import { useSearchParams } from 'react-router';
import { useQuery } from '@tanstack/react-query';
import { get } from '../api/client';
import type { PromptPage } from '../api/types';
import { shortId } from './format';

/** `datetime-local` value (local time, no zone) to RFC 3339 UTC; empty or invalid is `undefined`. */
export function localToRfc3339(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/**
 * The URL query parameters `keys` as filter values ('' when absent), and a setter that
 * replaces the history entry. Setting a key also clears the keys `clears[key]` names (a
 * version filter means nothing once the prompt changes).
 */
export function useUrlFilters<K extends string>(keys: readonly K[], clears: Partial<Record<K, K[]>> = {}) {
  const [params, setParams] = useSearchParams();
  const values = Object.fromEntries(keys.map((k) => [k, params.get(k) ?? ''])) as Record<K, string>;
  const setFilter = (k: K, v: string) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    for (const c of clears[k] ?? []) next.delete(c);
    setParams(next, { replace: true });
  };
  return [values, setFilter] as const;
}

/** The caller's prompts (first 200), for pickers, and a map from prompt id to name. */
export function usePromptNames() {
  const prompts = useQuery({ queryKey: ['prompts', 'ACTIVE', 'names'], queryFn: () => get<PromptPage>('/api/prompts', { limit: 200 }) });
  const items = useMemo(() => prompts.data?.items ?? [], [prompts.data]);
  const names = useMemo(() => new Map(items.map((p) => [p.id, p.name])), [items]);
  return { items, names };
}

/** A prompt picker; `value` '' is "any" (shown as `anyLabel`). A selected id not among the listed prompts stays selectable. */
export function PromptSelect(props: { value: string; onChange: (id: string) => void; anyLabel: string; testId?: string }) {
  const { items, names } = usePromptNames();
  return (
    <label>
      Prompt
      <select value={props.value} onChange={(e) => props.onChange(e.target.value)} data-testid={props.testId}>
        <option value="">{props.anyLabel}</option>
        {items.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
          </option>
        ))}
        {props.value && !names.has(props.value) && <option value={props.value}>{shortId(props.value)}</option>}
      </select>
    </label>
  );
}

/** "From" and "To" local date-times (the values are `datetime-local` strings). */
export function TimeRange(props: { since: string; until: string; onChange: (key: 'since' | 'until', v: string) => void }) {
  return (
    <>
      <label>
        From
        <input type="datetime-local" value={props.since} onChange={(e) => props.onChange('since', e.target.value)} />
      </label>
      <label>
        To
        <input type="datetime-local" value={props.until} onChange={(e) => props.onChange('until', e.target.value)} />
      </label>
    </>
  );
}
