// The console's own logic for datasets and experiments: what a file upload is sent as, and the
// versions field of the new-experiment form.

/** The content type a dataset file is uploaded as, from its name; `null`: not JSONL or CSV. */
export function datasetContentType(fileName: string): 'application/jsonl' | 'text/csv' | null {
  const ext = fileName.toLowerCase().split('.').pop() ?? '';
  if (ext === 'jsonl' || ext === 'ndjson') return 'application/jsonl';
  if (ext === 'csv') return 'text/csv';
  return null;
}

/** A dataset name from a file name: the name without its extension. */
export function datasetName(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  const dot = base.lastIndexOf('.');
  return (dot > 0 ? base.slice(0, dot) : base).trim();
}

/**
 * The `versions` of an experiment from "1, staging": numbers as numbers, other words as
 * labels, each once, in order. An empty list or an empty item is an error naming it.
 */
export function parseTargets(text: string): { targets: (number | string)[] } | { error: string } {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length === 1 && parts[0] === '') return { error: 'give at least one version or label' };
  const targets: (number | string)[] = [];
  for (const p of parts) {
    if (p === '') return { error: 'an empty item between commas' };
    const t: number | string = /^\d+$/.test(p) ? Number(p) : p;
    if (!targets.includes(t)) targets.push(t);
  }
  return { targets };
}
