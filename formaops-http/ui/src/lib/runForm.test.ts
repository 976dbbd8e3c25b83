import { describe, expect, it } from 'vitest';
import type { VariableDefinition } from '../api/types';
import { coerceInputs, initialValues, runFields } from './runForm';

const defs: VariableDefinition[] = [
  { name: 'topic', type: 'string', required: true, description: 'What to write about', maxLength: 200 },
  { name: 'words', type: 'integer', required: true, defaultValue: 50 },
  { name: 'ratio', type: 'number' },
  { name: 'formal', type: 'boolean', defaultValue: true },
  { name: 'tone', type: 'enum', required: true, values: ['dry', 'warm'] },
  { name: 'mood', type: 'enum', values: ['calm', 'loud'] },
  { name: 'extra', type: 'json', defaultValue: { a: [1, 2] } },
];

describe('runFields', () => {
  it('makes one field per definition with the control its type needs', () => {
    const fields = runFields(defs);
    expect(fields.map((f) => [f.name, f.kind])).toEqual([
      ['topic', 'text'],
      ['words', 'number'],
      ['ratio', 'number'],
      ['formal', 'checkbox'],
      ['tone', 'select'],
      ['mood', 'select'],
      ['extra', 'json'],
    ]);
    expect(fields[0]).toMatchObject({ required: true, description: 'What to write about', maxLength: 200 });
    expect(fields[1]?.integer).toBe(true);
    expect(fields[2]?.integer).toBeUndefined();
    expect(fields[4]?.options).toEqual(['dry', 'warm']);
  });

  it('starts from the defaults, a required select on its first choice', () => {
    expect(initialValues(runFields(defs))).toEqual({
      topic: '',
      words: '50',
      ratio: '',
      formal: true,
      tone: 'dry',
      mood: '',
      extra: JSON.stringify({ a: [1, 2] }, null, 2),
    });
  });
});

describe('coerceInputs', () => {
  it('turns form text into typed inputs and leaves out empty optional ones', () => {
    const { inputs, problems } = coerceInputs(defs, {
      topic: 'rust',
      words: ' 40 ',
      ratio: '',
      formal: false,
      tone: 'warm',
      mood: '',
      extra: '{"k": [true, null]}',
    });
    expect(problems).toEqual([]);
    expect(inputs).toEqual({ topic: 'rust', words: 40, formal: false, tone: 'warm', extra: { k: [true, null] } });
  });

  it('keeps string whitespace as typed', () => {
    expect(coerceInputs([{ name: 's', type: 'string' }], { s: '  padded ' }).inputs).toEqual({ s: '  padded ' });
  });

  it('names every problem by the server field name inputs.<name>', () => {
    const { inputs, problems } = coerceInputs(defs, {
      topic: '',
      words: '2.5',
      ratio: 'abc',
      formal: true,
      tone: 'loud',
      mood: '',
      extra: '{oops',
    });
    expect(problems.map((p) => [p.field, p.code])).toEqual([
      ['inputs.topic', 'missing'],
      ['inputs.words', 'wrong_type'],
      ['inputs.ratio', 'wrong_type'],
      ['inputs.tone', 'not_allowed'],
      ['inputs.extra', 'malformed_json'],
    ]);
    expect(inputs).toEqual({ formal: true });
  });

  it('reports a missing required number, and sends an unchecked checkbox as false', () => {
    const { inputs, problems } = coerceInputs(
      [
        { name: 'n', type: 'number', required: true },
        { name: 'b', type: 'boolean', required: true },
      ],
      { n: '   ' },
    );
    expect(problems).toEqual([{ field: 'inputs.n', code: 'missing', message: 'required' }]);
    expect(inputs).toEqual({ b: false });
  });
});
