import { describe, expect, it } from 'vitest';
import type { VersionDto } from '../api/types';
import { emptyForm, emptyVariable, fromVersion, toRequest } from './promptForm';

describe('toRequest', () => {
  it('builds the create body with typed defaults, enum values, rules and model', () => {
    const form = {
      ...emptyForm(),
      name: ' summary ',
      template: 'Write {{ words }} words on {{ topic }} in a {{ tone }} tone.',
      variables: [
        { ...emptyVariable(), name: 'topic' },
        { ...emptyVariable(), name: 'words', type: 'integer' as const, required: false, defaultValue: '30' },
        { ...emptyVariable(), name: 'tone', type: 'enum' as const, values: 'dry, warm ,' },
        { ...emptyVariable(), name: 'cfg', type: 'json' as const, defaultValue: '{"a":1}', schema: '{"type":"object"}' },
      ],
      validations: [
        { type: 'min_length' as const, param: '5' },
        { type: 'regex' as const, param: '^W' },
        { type: 'json' as const, param: '' },
      ],
      provider: 'mock',
      model: 'mock-1',
      temperature: '0.2',
      stop: 'END\n\n',
    };
    const { body, problems } = toRequest(form);
    expect(problems).toEqual([]);
    expect(body).toEqual({
      name: 'summary',
      template: form.template,
      variables: [
        { name: 'topic', type: 'string', required: true },
        { name: 'words', type: 'integer', required: false, defaultValue: 30 },
        { name: 'tone', type: 'enum', required: true, values: ['dry', 'warm'] },
        { name: 'cfg', type: 'json', required: true, defaultValue: { a: 1 }, schema: { type: 'object' } },
      ],
      validations: [{ type: 'min_length', value: 5 }, { type: 'regex', pattern: '^W' }, { type: 'json' }],
      model: { provider: 'mock', model: 'mock-1', parameters: { temperature: 0.2, stop: ['END'] } },
    });
  });

  it('leaves the model out when nothing about it was set (the server default applies)', () => {
    const { body } = toRequest({ ...emptyForm(), name: 'a', template: 'x' });
    expect(body.model).toBeUndefined();
  });

  it('names what does not parse with the server field names', () => {
    const { problems } = toRequest({
      ...emptyForm(),
      variables: [{ ...emptyVariable(), name: 'n', type: 'number', defaultValue: 'ten' }, { ...emptyVariable(), name: 'j', type: 'json', schema: '{' }],
      validations: [{ type: 'max_length', param: '' }],
      temperature: 'hot',
    });
    expect(problems.map((p) => p.field)).toEqual(['variables[0].defaultValue', 'variables[1].schema', 'validations[0].value', 'model.parameters.temperature']);
  });
});

describe('fromVersion', () => {
  it('round-trips a version through the form', () => {
    const v = {
      promptId: 'p',
      version: 2,
      template: 'Hi {{ name }}',
      systemTemplate: 'Be brief',
      variables: [
        { name: 'name', type: 'string', required: true },
        { name: 'level', type: 'enum', required: false, values: ['a', 'b'], defaultValue: 'a' },
      ],
      validations: [{ type: 'contains', value: 'Hi' }],
      model: { model: 'gpt-4o-mini', parameters: { maxCompletionTokens: 100 } },
      createdAt: '2026-01-01T00:00:00Z',
      author: 'u',
    } as unknown as VersionDto;
    const form = fromVersion('greet', null, v);
    expect(form.variables[1]).toMatchObject({ values: 'a, b', defaultValue: 'a' });
    expect(form.maxCompletionTokens).toBe('100');
    const { body, problems } = toRequest(form);
    expect(problems).toEqual([]);
    expect(body).toMatchObject({
      name: 'greet',
      systemTemplate: 'Be brief',
      variables: v.variables,
      validations: v.validations,
      model: { model: 'gpt-4o-mini', parameters: { maxCompletionTokens: 100 } },
    });
  });
});
