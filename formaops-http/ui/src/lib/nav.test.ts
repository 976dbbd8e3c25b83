import { describe, expect, it } from 'vitest';
import { safeNext } from './nav';

describe('safeNext', () => {
  it('follows paths on this site', () => {
    expect(safeNext('/executions?status=FAILED')).toBe('/executions?status=FAILED');
  });
  it('refuses other sites and nothing', () => {
    for (const bad of [null, '', 'https://evil.example/', '//evil.example/x', '/\\evil.example', 'javascript:alert(1)']) {
      expect(safeNext(bad)).toBe('/prompts');
    }
  });
});
