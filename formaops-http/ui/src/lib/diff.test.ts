import { describe, expect, it } from 'vitest';
import { diffLines } from './diff';

describe('diffLines', () => {
  it('tells added, removed, hunk, header and context lines apart', () => {
    const unified = '--- v1\n+++ v2\n@@ -1,2 +1,2 @@\n Hello\n-{{ name }}\n+{{ name | upper }}\n';
    expect(diffLines(unified).map((l) => l.kind)).toEqual(['header', 'header', 'hunk', 'context', 'remove', 'add']);
    expect(diffLines(unified)[5]?.text).toBe('+{{ name | upper }}');
  });
  it('reads an empty diff as no lines', () => {
    expect(diffLines('')).toEqual([]);
  });
});
