import { describe, expect, it } from 'vitest';
import type { EventFrame, Execution } from '../api/types';
import { applyFrame, initialLive, withRecord } from './liveExecution';

const exec = (status: string, output: string | null = null) => ({ id: 'e1', status, output, attempts: 0 }) as unknown as Execution;

describe('applyFrame', () => {
  it('follows queued -> running -> streamed text -> completed', () => {
    const frames: EventFrame[] = [
      { kind: 'snapshot', execution: exec('QUEUED') },
      { kind: 'running', executionId: 'e1', status: 'RUNNING', attempt: 1 },
      { kind: 'partial', executionId: 'e1', status: 'RUNNING', delta: 'Hel' },
      { kind: 'partial', executionId: 'e1', status: 'RUNNING', delta: 'lo' },
      { kind: 'completed', executionId: 'e1', status: 'COMPLETED' },
    ];
    const s = frames.reduce(applyFrame, initialLive());
    expect(s.seen).toEqual(['QUEUED', 'RUNNING', 'COMPLETED']);
    expect(s.streamed).toBe('Hello');
    expect(s.attempt).toBe(1);
    expect(s.final).toBe(true);
    const done = withRecord(s, exec('COMPLETED', 'Hello!'));
    expect(done.streamed).toBe('Hello!');
  });

  it('drops streamed text when a retry is scheduled and keeps the error', () => {
    let s = applyFrame(initialLive(), { kind: 'partial', executionId: 'e1', status: 'RUNNING', delta: 'partial' });
    s = applyFrame(s, { kind: 'retry_scheduled', executionId: 'e1', status: 'QUEUED', error: { code: 'timeout', message: 'slow', transient: true } });
    expect(s.streamed).toBe('');
    expect(s.lastError?.code).toBe('timeout');
    expect(s.final).toBe(false);
  });

  it('is final at once for a snapshot of a finished execution', () => {
    const s = applyFrame(initialLive(), { kind: 'snapshot', execution: exec('FAILED') });
    expect(s.final).toBe(true);
    expect(s.status).toBe('FAILED');
  });
});
