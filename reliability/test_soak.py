"""Soak: two nodes on Postgres under steady load with 10% provider faults for SOAK_SECS.

Pass: no 5xx, no lost or stuck execution, resident memory of each node does not keep growing
(last sample <= 1.5x the sample taken after warm-up, + 32 MiB)."""

from __future__ import annotations

import time

import pytest

import harness
from conftest import Node, env_int, provider_env
from fake_openai import FakeConfig, FakeOpenAI


@pytest.mark.full
def test_soak(pg):
    secs = env_int("SOAK_SECS", 300)
    fake = FakeOpenAI(FakeConfig(latency=(0.05, 0.4), fault_rate=0.1, faults=("429", "500", "503"),
                                 retry_after=0.5)).start()
    db = pg.create_db("soak")
    harness.migrate(db)
    harness.create_user(db, "alice@rel.test")
    harness.create_user(db, "bob@rel.test")
    env = provider_env(fake)
    nodes = [harness.Server(db, f"soak-node{i}", env).start() for i in (1, 2)]
    try:
        node = Node(nodes[0], db)
        pid = harness.prompt_id(node.alice.create_prompt())
        load = harness.Load(nodes, pid, node.alice.token, rate=float(env_int("SOAK_RATE", 10)), prefix="k").start()
        samples: list[list[float | None]] = []
        t0 = time.time()
        while time.time() - t0 < secs:
            time.sleep(10)
            samples.append([harness.rss_mib(n.proc.pid) if n.proc else None for n in nodes])
        load.stop()
        ids = list(load.acked.values())
        ok, drain, counts = harness.wait_all_final(db, ids, timeout=180)
        fivexx = {k: v for k, v in load.statuses.items() if isinstance(k, int) and k >= 500}
        warm = samples[min(2, len(samples) - 1)]
        last = samples[-1]
        growth = [(w, l) for w, l in zip(warm, last) if w and l and l > 1.5 * w + 32]
        harness.record("soak", {"seconds": secs, "acked": len(ids), "final": counts, "drain_s": round(drain, 1),
                                "client_statuses": {str(k): v for k, v in load.statuses.items()},
                                "rss_mib_warm": warm, "rss_mib_last": last})
        assert all(n.alive() for n in nodes)
        assert not fivexx, fivexx
        assert ok, counts
        assert not growth, f"memory kept growing: {growth}"
        assert not load.errors, load.errors[:5]
    finally:
        for n in nodes:
            n.stop()
        fake.stop()
