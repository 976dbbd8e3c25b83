import { describe, expect, it } from 'vitest';
import { datasetContentType, datasetName, parseTargets } from './experiments';

describe('dataset uploads', () => {
  it('sends JSONL and CSV files with their content type, and nothing else', () => {
    expect(datasetContentType('rows.jsonl')).toBe('application/jsonl');
    expect(datasetContentType('ROWS.NDJSON')).toBe('application/jsonl');
    expect(datasetContentType('rows.csv')).toBe('text/csv');
    expect(datasetContentType('rows.json')).toBeNull();
    expect(datasetContentType('rows')).toBeNull();
  });
  it('names a dataset after its file', () => {
    expect(datasetName('C:\\data\\golden set.csv')).toBe('golden set');
    expect(datasetName('rows.v2.jsonl')).toBe('rows.v2');
    expect(datasetName('.hidden')).toBe('.hidden');
  });
});

describe('parseTargets', () => {
  it('reads numbers as versions and words as labels, each once', () => {
    expect(parseTargets('1, staging,2,1')).toEqual({ targets: [1, 'staging', 2] });
    expect(parseTargets('production')).toEqual({ targets: ['production'] });
  });
  it('names what is wrong', () => {
    expect(parseTargets('  ')).toEqual({ error: 'give at least one version or label' });
    expect(parseTargets('1,,2')).toEqual({ error: 'an empty item between commas' });
  });
});
