"""Graceful shutdown: SIGTERM while executions run.

Pass: executions RUNNING at SIGTERM finish (COMPLETED) within the grace period; no execution
is claimed (started) after SIGTERM; the rest stay QUEUED and the next process completes them."""

from __future__ import annotations

import time
import uuid

import pytest

import harness
from conftest import Node, env_int, provider_env
from fake_openai import FakeConfig, FakeOpenAI


@pytest.mark.full
def test_sigterm_mid_load(pg):
    grace = env_int("SHUTDOWN_GRACE_SECS", 30)
    fake = FakeOpenAI(FakeConfig(latency=(3.0, 3.0))).start()
    db = pg.create_db("sigterm")
    harness.migrate(db)
    harness.create_user(db, "alice@rel.test")
    harness.create_user(db, "bob@rel.test")
    env = provider_env(fake)
    server = harness.Server(db, "sigterm-node1", env).start()
    nxt = None
    try:
        node = Node(server, db)
        pid = harness.prompt_id(node.alice.create_prompt())
        ids = []
        for i in range(env_int("SHUTDOWN_EXECUTIONS", 80)):
            r = node.alice.submit(pid, {"tag": f"s{i}-{uuid.uuid4().hex[:6]}"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        deadline = time.time() + 30
        running: list[str] = []
        while time.time() < deadline:
            running = [str(r[0]) for r in harness.sql(db, "SELECT id FROM executions WHERE status = 'RUNNING'")]
            if running:
                break
            time.sleep(0.1)
        assert running, "nothing started running"
        time.sleep(0.5)
        running = [str(r[0]) for r in harness.sql(db, "SELECT id FROM executions WHERE status = 'RUNNING'")]
        t_term = time.time()
        server.term()
        code = server.wait(grace + 90)
        t_exit = time.time()
        assert code is not None, f"the process did not exit {grace + 90}s after SIGTERM"
        rows = harness.sql(db, """SELECT id, status, extract(epoch from started_at), extract(epoch from finished_at)
                                  FROM executions WHERE id = ANY(%s::uuid[])""", (ids,))
        by_id = {str(r[0]): r for r in rows}
        unfinished_running = [i for i in running if by_id[i][1] != "COMPLETED"]
        started_after = [str(r[0]) for r in rows if r[2] is not None and float(r[2]) > t_term + 0.5
                         and str(r[0]) not in running]
        calls_after = [c for c in fake.snapshot() if c.started > t_term + 0.5]
        status_counts: dict[str, int] = {}
        for r in rows:
            status_counts[r[1]] = status_counts.get(r[1], 0) + 1
        stuck_running = [str(r[0]) for r in rows if r[1] == "RUNNING"]
        result = {"submitted": len(ids), "running_at_sigterm": len(running), "exit_code": code,
                  "exit_after_s": round(t_exit - t_term, 1), "grace_s": grace, "status_after_exit": status_counts,
                  "claimed_after_sigterm": len(started_after), "provider_calls_after_sigterm": len(calls_after)}
        # The next process picks up what was left.
        nxt = harness.Server(db, "sigterm-node2", env).start()
        ok, drain, counts = harness.wait_all_final(db, ids, timeout=120)
        result.update({"next_process_drain_s": round(drain, 1), "final_after_restart": counts})
        harness.record("graceful_shutdown", result)
        assert code == 0, f"exit code {code}"
        assert not unfinished_running, f"RUNNING at SIGTERM but not COMPLETED: {unfinished_running[:10]}"
        assert t_exit - t_term <= grace + 10, f"exit took {t_exit - t_term:.1f}s > grace {grace}s"
        assert not started_after, f"{len(started_after)} executions claimed after SIGTERM"
        assert not calls_after, f"{len(calls_after)} provider calls started after SIGTERM"
        assert not stuck_running, f"left RUNNING after exit: {stuck_running[:10]}"
        assert set(status_counts) <= {"COMPLETED", "QUEUED"}, status_counts
        assert ok and counts.get("COMPLETED", 0) == len(ids), counts
    finally:
        server.stop()
        if nxt:
            nxt.stop()
        fake.stop()
