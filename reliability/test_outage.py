"""Database outage: the throwaway Postgres is stopped for OUTAGE_SECS (10) under load, then
started again.

Pass: during the outage every answer is 503 (health and API), none hangs (each request has an
8 s timeout), every request sent 6 s or more after the stop answers within 1 s (the outage is
known by then: no waiting for the pool's 5 s acquire timeout), the process stays up; it recovers without a restart; nothing acknowledged is lost
and everything acknowledged ends final."""

from __future__ import annotations

import threading
import time

import pytest
import requests

import harness
from conftest import Node, env_int, provider_env
from fake_openai import FakeConfig, FakeOpenAI


@pytest.mark.full
def test_database_outage(own_pg):
    outage = env_int("OUTAGE_SECS", 10)
    fake = FakeOpenAI(FakeConfig(latency=(0.1, 0.5))).start()
    db = own_pg.create_db("outage")
    harness.migrate(db)
    harness.create_user(db, "alice@rel.test")
    harness.create_user(db, "bob@rel.test")
    server = harness.Server(db, "outage-node", provider_env(fake)).start()
    try:
        node = Node(server, db)
        pid = harness.prompt_id(node.alice.create_prompt())
        load = harness.Load([server], pid, node.alice.token, rate=4.0, prefix="o").start()
        time.sleep(5)
        probes: list[tuple[float, str, int | str, float]] = []
        stop = threading.Event()

        def probe(what: str, method: str, path: str, body) -> None:
            api = harness.Api(server.url, node.alice.token)
            while not stop.is_set():
                t = time.time()
                try:
                    r = api.req(method, path, json_body=body, timeout=8)
                    probes.append((t, what, r.status_code, time.time() - t))
                except requests.exceptions.Timeout:
                    probes.append((t, what, "timeout", time.time() - t))
                except requests.exceptions.ConnectionError:
                    probes.append((t, what, "connection", time.time() - t))
                stop.wait(0.3)

        probers = [threading.Thread(target=probe, args=a, daemon=True) for a in (
            ("health", "GET", "/api/health", None),
            ("list", "GET", "/api/executions", None),
            ("get_prompt", "GET", f"/api/prompts/{pid}", None),
            ("submit", "POST", f"/api/prompts/{pid}/execute?mode=async", {"inputs": {"tag": "probe"}}),
        )]
        for t in probers:
            t.start()
        own_pg.stop("fast")
        t_down = time.time()  # pg_ctl -w returned: the database is down from here
        time.sleep(outage)
        own_pg.start()  # pg_ctl -w: accepting connections again
        t_up = time.time()
        recovered_at = None
        while time.time() < t_up + 60:
            try:
                if harness.Api(server.url).req("GET", "/api/health", timeout=5).status_code == 200:
                    recovered_at = time.time()
                    break
            except requests.exceptions.RequestException:
                pass
            time.sleep(0.2)
        time.sleep(5)
        stop.set()
        for t in probers:
            t.join(30)
        load.stop()
        ids = list(load.acked.values())
        ok, drain, counts = harness.wait_all_final(db, ids, timeout=180)
        present = {str(r[0]) for r in harness.sql(db, "SELECT id FROM executions WHERE id = ANY(%s::uuid[])", (ids,))}
        lost = [i for i in ids if i not in present]
        # Answers to requests sent while the database was down.
        during = [p for p in probes if t_down <= p[0] and p[0] + p[3] <= t_up]
        bad = [p for p in during if p[2] != 503]
        slow = [p for p in during if p[0] >= t_down + 6 and p[3] > 1.0]
        dist: dict[str, int] = {}
        for p in during:
            dist[f"{p[1]}:{p[2]}"] = dist.get(f"{p[1]}:{p[2]}", 0) + 1
        detail = [f"{p[1]}:{p[2]} sent {p[0] - t_down:+.2f}s after the stop, answered {p[0] + p[3] - t_up:+.2f}s from the restart"
                  for p in bad]
        result = {"outage_s": outage, "non_503_during": detail, "probes_during": len(during), "answers_during": dist,
                  "max_probe_latency_s": round(max((p[3] for p in during), default=0), 2),
                  "max_latency_once_known_s": round(max((p[3] for p in during if p[0] >= t_down + 6), default=0), 2),
                  "recovered_after_s": round(recovered_at - t_up, 1) if recovered_at else None,
                  "process_alive": server.alive(), "acked": len(ids), "lost": len(lost), "final": counts,
                  "client_statuses": {str(k): v for k, v in load.statuses.items()}}
        harness.record("db_outage", result)
        assert server.alive(), "the server died during the outage"
        assert during, "no probe ran during the outage"
        assert not bad, f"{len(bad)} answers other than 503 during the outage: {dist}"
        assert not slow, f"{len(slow)} answers took over 1 s once the outage was known: {slow[:5]}"
        assert recovered_at, "health did not come back within 60 s of the database"
        assert not lost, f"lost {len(lost)} acknowledged executions"
        assert ok, f"not all final: {counts}"
        assert not load.errors, load.errors[:5]
    finally:
        server.stop()
        fake.stop()
