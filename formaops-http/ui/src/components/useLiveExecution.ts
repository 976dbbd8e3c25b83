// Follows one execution live over the server's WebSocket (authenticated by the session
// cookie, which the browser sends on the same-origin upgrade). When the socket cannot be
// used, it polls `GET /api/executions/{id}` instead.
import { useEffect, useState } from 'react';
import { get } from '../api/client';
import type { Execution } from '../api/types';
import { FINAL_STATUSES } from '../api/types';
import { applyFrame, initialLive, isFrame, withRecord, type LiveState } from '../lib/liveExecution';

export function useLiveExecution(id: string | null): LiveState {
  const [state, setState] = useState<LiveState>(initialLive);

  useEffect(() => {
    if (!id) return;
    setState(initialLive());
    let closed = false;
    let poll: ReturnType<typeof setTimeout> | undefined;
    let fetchedFinal = false;

    const fetchRecord = async () => {
      try {
        const e = await get<Execution>(`/api/executions/${id}`);
        if (closed) return e;
        setState((s) => withRecord(s, e));
        return e;
      } catch {
        return null;
      }
    };
    let polling = false;
    const startPolling = () => {
      if (polling) return;
      polling = true;
      const tick = async () => {
        const e = await fetchRecord();
        if (!closed && !(e && FINAL_STATUSES.includes(e.status))) poll = setTimeout(tick, 1000);
      };
      void tick();
    };

    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${window.location.host}/api/ws?executionId=${encodeURIComponent(id)}`);
    let finished = false;
    ws.onmessage = (m) => {
      let frame: unknown;
      try {
        frame = JSON.parse(String(m.data));
      } catch {
        return;
      }
      if (!isFrame(frame)) return;
      setState((s) => applyFrame(s, frame));
      const status = frame.kind === 'snapshot' ? frame.execution.status : frame.status;
      if (FINAL_STATUSES.includes(status)) {
        finished = true;
        if (!fetchedFinal) {
          fetchedFinal = true;
          void fetchRecord();
        }
      }
    };
    ws.onerror = () => {
      if (!closed && !finished) startPolling();
    };
    ws.onclose = () => {
      if (!closed && !finished) startPolling();
    };
    return () => {
      closed = true;
      if (poll) clearTimeout(poll);
      ws.onclose = null;
      ws.onerror = null;
      ws.close();
    };
  }, [id]);

  return state;
}
