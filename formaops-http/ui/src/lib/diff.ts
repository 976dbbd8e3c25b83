// Reading a unified diff (as `GET /api/prompts/{id}/diff` returns it) into lines to show.

export type DiffLineKind = 'add' | 'remove' | 'hunk' | 'context' | 'header';

export interface DiffLine {
  kind: DiffLineKind;
  text: string;
}

/** Classifies each line of a unified diff; an empty diff is no lines. */
export function diffLines(unified: string): DiffLine[] {
  if (!unified) return [];
  const lines = unified.endsWith('\n') ? unified.slice(0, -1).split('\n') : unified.split('\n');
  return lines.map((text) => {
    if (text.startsWith('+++') || text.startsWith('---')) return { kind: 'header', text };
    if (text.startsWith('@@')) return { kind: 'hunk', text };
    if (text.startsWith('+')) return { kind: 'add', text };
    if (text.startsWith('-')) return { kind: 'remove', text };
    return { kind: 'context', text };
  });
}
