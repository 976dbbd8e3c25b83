import { describe, expect, it } from 'vitest';
import { ApiError, toApiError } from '../api/client';
import { messagesFor, messagesUnder, problemsFromError, unplaced } from './problems';

const invalidPrompt = toApiError(422, {
  error: {
    code: 'invalid_prompt',
    message: 'invalid prompt: 3 problems',
    details: {
      problems: [
        { field: 'template', code: 'syntax', message: 'unexpected end of input' },
        { field: 'variables[1].values', code: 'missing', message: 'an enum variable needs `values`' },
        { field: 'variables[1].name', code: 'invalid', message: 'bad name' },
        { field: 'model.model', code: 'missing', message: 'the model name must not be empty' },
        { field: 'template', code: 'undeclared', message: '`x` is not declared' },
        { field: 'somethingNew', code: 'x', message: 'a field the form does not show' },
      ],
    },
  },
});

describe('problemsFromError', () => {
  it('groups 422 problems by the field they name, in order', () => {
    const map = problemsFromError(invalidPrompt);
    expect(messagesFor(map, 'template')).toEqual(['unexpected end of input', '`x` is not declared']);
    expect(messagesFor(map, 'model.model')).toEqual(['the model name must not be empty']);
    expect(messagesFor(map, 'name')).toEqual([]);
    expect(map.general).toEqual([]);
  });

  it('collects a row’s problems under its prefix, without matching a longer index', () => {
    const map = problemsFromError(invalidPrompt);
    expect(messagesUnder(map, 'variables[1]')).toEqual(['values: an enum variable needs `values`', 'name: bad name']);
    expect(messagesUnder(map, 'variables[11]')).toEqual([]);
  });

  it('lists problems no field on the form shows, with their field name', () => {
    const map = problemsFromError(invalidPrompt);
    const shown = (f: string) => f !== 'somethingNew';
    expect(unplaced(map, shown)).toEqual(['somethingNew: a field the form does not show']);
  });

  it('maps invalid_argument details.field to that field', () => {
    const err = toApiError(400, { error: { code: 'invalid_argument', message: 'invalid promptId: a prompt id (UUID)', details: { field: 'promptId' } } });
    expect(messagesFor(problemsFromError(err), 'promptId')).toEqual(['invalid promptId: a prompt id (UUID)']);
  });

  it('keeps other errors as form-level messages', () => {
    const conflict = toApiError(409, { error: { code: 'conflict', message: 'version 3 is no longer current', details: null } });
    expect(problemsFromError(conflict).general).toEqual(['version 3 is no longer current']);
    expect(problemsFromError(new Error('offline')).general).toEqual(['offline']);
  });

  it('survives a body that is not our error shape', () => {
    const e = toApiError(502, '<html>bad gateway</html>');
    expect(e).toBeInstanceOf(ApiError);
    expect(e.message).toBe('request failed (502)');
    expect(problemsFromError(e).general).toEqual(['request failed (502)']);
  });
});
