import { describe, expect, it } from 'vitest';
import { localToRfc3339 } from './Filters';

describe('localToRfc3339', () => {
  it('turns a local date-time into the same instant in UTC', () => {
    const local = '2026-11-30T12:34';
    expect(localToRfc3339(local)).toBe(new Date(2026, 10, 30, 12, 34).toISOString());
  });
  it('leaves an empty or unreadable value out of the query', () => {
    expect(localToRfc3339('')).toBeUndefined();
    expect(localToRfc3339('not a date')).toBeUndefined();
  });
});
