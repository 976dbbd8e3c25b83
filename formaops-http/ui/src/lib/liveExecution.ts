// Folding the live event stream of one execution (`/api/ws?executionId=`) into what the page
// shows: the status as it changes, the text streamed so far, and the final record.
import type { EventFrame, Execution, ExecutionErrorInfo } from '../api/types';
import { FINAL_STATUSES } from '../api/types';

export interface LiveState {
  execution: Execution | null;
  status: string;
  /** Text received in `partial` events (the output before the final record arrives). */
  streamed: string;
  attempt: number;
  lastError: ExecutionErrorInfo | null;
  /** A final event was seen: the full record should be fetched. */
  final: boolean;
  /** Statuses in the order they were seen (QUEUED -> RUNNING -> COMPLETED). */
  seen: string[];
}

export const initialLive = (): LiveState => ({ execution: null, status: 'QUEUED', streamed: '', attempt: 0, lastError: null, final: false, seen: [] });

function see(seen: string[], status: string): string[] {
  return seen[seen.length - 1] === status ? seen : [...seen, status];
}

export function applyFrame(state: LiveState, frame: EventFrame): LiveState {
  if (frame.kind === 'snapshot') {
    const e = frame.execution;
    return {
      ...state,
      execution: e,
      status: e.status,
      streamed: e.output ?? state.streamed,
      attempt: e.attempts,
      final: FINAL_STATUSES.includes(e.status),
      seen: see(state.seen, e.status),
    };
  }
  const next: LiveState = { ...state, status: frame.status, seen: see(state.seen, frame.status) };
  if (frame.attempt !== undefined) next.attempt = frame.attempt;
  if (frame.error) next.lastError = frame.error;
  if (frame.kind === 'partial' && frame.delta) next.streamed = state.streamed + frame.delta;
  if (frame.kind === 'retry_scheduled') next.streamed = '';
  if (FINAL_STATUSES.includes(frame.status)) next.final = true;
  return next;
}

/** With the final record fetched, the record wins over what was streamed. */
export function withRecord(state: LiveState, e: Execution): LiveState {
  return { ...state, execution: e, status: e.status, streamed: e.output ?? state.streamed, final: FINAL_STATUSES.includes(e.status), seen: see(state.seen, e.status) };
}

export function isFrame(v: unknown): v is EventFrame {
  return !!v && typeof v === 'object' && typeof (v as { kind?: unknown }).kind === 'string';
}
