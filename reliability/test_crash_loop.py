"""Crash loop: two `formaops serve` processes on one (throwaway) Postgres under steady async
load; one of them is killed with SIGKILL at random points, at least CRASH_KILLS (20) times,
and restarted each time.

Pass: 0 acknowledged executions lost; at most one execution per idempotency key and at most one
COMPLETED result per execution (SQL and API agree); every execution final within
lease + backoff (+ the time to drain the backlog) once a node is up."""

from __future__ import annotations

import random
import time

import pytest

import harness
from conftest import Node, env_int, provider_env
from fake_openai import FakeConfig, FakeOpenAI

LEASE_S = env_int("CRASH_LEASE_SECS", 30)
BACKOFF_MAX_S = env_int("CRASH_BACKOFF_MAX_SECS", 30)


@pytest.mark.full
def test_crash_loop(own_pg):
    kills = env_int("CRASH_KILLS", 20)
    rng = random.Random(env_int("CRASH_SEED", 5))
    fake = FakeOpenAI(FakeConfig(latency=(0.2, 1.5))).start()
    db = own_pg.create_db("crash")
    harness.migrate(db)
    harness.create_user(db, "alice@rel.test")
    harness.create_user(db, "bob@rel.test")
    env = provider_env(fake, harness_engine_env())
    nodes = [harness.Server(db, f"crash-node{i}", env) for i in (1, 2)]
    for n in nodes:
        n.start()
    try:
        node = Node(nodes[0], db)
        pid = harness.prompt_id(node.alice.create_prompt())
        load = harness.Load(nodes, pid, node.alice.token, rate=float(env_int("CRASH_RATE", 6)), prefix="c").start()
        kill_log = []
        for k in range(kills):
            time.sleep(rng.uniform(0.5, 4.0))
            victim = rng.choice(nodes)
            victim.kill()
            kill_log.append((time.time(), victim.name))
            time.sleep(rng.uniform(0.0, 1.5))
            victim.start()
        time.sleep(3)
        load.stop()
        last_up = time.time()
        acked = dict(load.acked)
        ids = list(acked.values())
        bound = LEASE_S + BACKOFF_MAX_S + 60
        ok, drain_s, counts = harness.wait_all_final(db, ids, timeout=bound + 120)

        present = {str(r[0]) for r in harness.sql(db, "SELECT id FROM executions WHERE id = ANY(%s::uuid[])", (ids,))}
        lost = [i for i in ids if i not in present]
        dup_keys = harness.sql(db, """SELECT idempotency_key, count(*) FROM executions
                                      WHERE idempotency_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1""")
        completed_multi = harness.sql(db, """SELECT inputs->>'tag', count(*) FROM executions WHERE status = 'COMPLETED'
                                             GROUP BY 1 HAVING count(*) > 1""")
        api_mismatch = []
        for tag, eid in acked.items():
            e = node.alice.execution(eid)
            row = harness.sql(db, "SELECT status FROM executions WHERE id = %s::uuid", (eid,))
            if not row or row[0][0] != e["status"]:
                api_mismatch.append((eid, e["status"], row))
            if e["status"] == "COMPLETED" and f"TAG[{tag}]" not in (e.get("output") or ""):
                api_mismatch.append((eid, "output", e.get("output")))
        calls = fake.snapshot()
        per_tag: dict[str, int] = {}
        for c in calls:
            per_tag[c.tag or ""] = per_tag.get(c.tag or "", 0) + 1
        result = {
            "kills": len(kill_log), "acked": len(ids), "lost": len(lost), "unacked_after_retries": len(load.unacked),
            "final_status_counts": counts, "drain_after_last_restart_s": round(drain_s, 1),
            "bound_s": bound, "duplicate_idempotency_keys": len(dup_keys),
            "tags_completed_more_than_once": len(completed_multi), "api_sql_mismatches": len(api_mismatch),
            "provider_calls": len(calls), "tags_with_repeated_provider_calls": sum(1 for v in per_tag.values() if v > 1),
            "client_statuses": {str(k): v for k, v in load.statuses.items()}, "client_errors": load.errors[:5],
        }
        harness.record("crash_loop", result)
        assert len(kill_log) >= kills
        assert len(ids) > 0
        assert not lost, f"{len(lost)} acknowledged executions lost: {lost[:10]}"
        assert not dup_keys, f"idempotency keys with several executions: {dup_keys[:10]}"
        assert not completed_multi, f"submissions completed more than once: {completed_multi[:10]}"
        assert not api_mismatch, f"API and SQL disagree: {api_mismatch[:10]}"
        assert ok, f"not every execution final {drain_s:.0f}s after the last restart: {counts}"
        assert drain_s <= bound, f"drain took {drain_s:.0f}s > lease + backoff + margin = {bound}s"
        assert not load.errors, load.errors[:10]
        assert not load.unacked
        del last_up
    finally:
        for n in nodes:
            n.stop()
        fake.stop()


def harness_engine_env() -> dict[str, str]:
    """Short leases keep the run short (names per formaops-http's configuration)."""
    return {}
