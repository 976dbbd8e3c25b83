"""Provider faults: the fake OpenAI server answers 30% of calls with 429 + Retry-After, 500,
503, a hang past the attempt timeout, a truncated stream or invalid JSON.

Pass: every execution ends COMPLETED within its max attempts, or FAILED naming the provider's
reason; the provider never sees more calls for one execution than its max attempts;
Retry-After is honoured (the next call for that execution starts no earlier)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

import harness
from conftest import env_int, make_node
from fake_openai import ALL_FAULTS, FakeConfig, FakeOpenAI

REASON_WORDS = {
    "429": ("429", "rate", "Rate"),
    "500": ("500", "server", "injected"),
    "503": ("503", "unavailable", "injected", "server"),
    "timeout": ("timeout", "timed out", "deadline", "504"),
    "truncated": ("stream", "truncat", "incomplete", "decod", "body", "connection", "closed", "EOF", "eof"),
    "invalid_json": ("json", "JSON", "parse", "decod", "invalid", "body"),
}


def run_faults(pg, count: int, name: str, retry_after: float = 1.0) -> dict:
    hang = float(env_int("FAKE_HANG_SECONDS", 8))
    fake = FakeOpenAI(FakeConfig(latency=(0.0, 0.05), fault_rate=0.3, faults=ALL_FAULTS, retry_after=retry_after,
                                 hang_seconds=hang, seed=env_int("FAULT_SEED", 11))).start()
    # A per-call timeout well under the fake's hang, so "timeout" faults are real timeouts.
    node = make_node(pg, fake, name, timeout_ms=env_int("FAULT_ATTEMPT_TIMEOUT_MS", 3000))
    try:
        pid = harness.prompt_id(node.alice.create_prompt())
        tags = {}
        for i in range(count):
            tag = f"f{i}-{uuid.uuid4().hex[:6]}"
            r = node.alice.submit(pid, {"tag": tag}, key=tag)
            assert r.status_code == 202, r.text
            tags[tag] = r.json()["id"]
        ok, secs, counts = harness.wait_all_final(node.db_url, list(tags.values()), timeout=600)
        assert ok, f"not all final after {secs:.0f}s: {counts}"
        findings, stats = [], {"COMPLETED": 0, "FAILED": 0, "calls": 0, "retry_after_checked": 0,
                               "faults": {k: 0 for k in ALL_FAULTS}}
        for tag, eid in tags.items():
            e = node.alice.execution(eid)
            calls = sorted(fake.calls_for(tag), key=lambda c: c.started)
            stats["calls"] += len(calls)
            for c in calls:
                if c.kind != "ok":
                    stats["faults"][c.kind] += 1
            stats[e["status"]] = stats.get(e["status"], 0) + 1
            if e["status"] not in ("COMPLETED", "FAILED"):
                findings.append(f"{eid}: final status {e['status']}")
            if e["attempts"] > e["maxAttempts"]:
                findings.append(f"{eid}: attempts {e['attempts']} > maxAttempts {e['maxAttempts']}")
            if len(calls) > e["maxAttempts"]:
                findings.append(f"{eid}: provider saw {len(calls)} calls > maxAttempts {e['maxAttempts']}")
            for prev, nxt in zip(calls, calls[1:]):
                if prev.kind == "429" and prev.retry_after:
                    stats["retry_after_checked"] += 1
                    gap = nxt.started - prev.ended
                    if gap < prev.retry_after - 0.05:
                        findings.append(f"{eid}: Retry-After {prev.retry_after}s not honoured (next call after {gap:.3f}s)")
            if e["status"] == "COMPLETED":
                if f"TAG[{tag}]" not in (e.get("output") or ""):
                    findings.append(f"{eid}: COMPLETED with unexpected output {e.get('output')!r}")
                if not calls or calls[-1].kind != "ok":
                    findings.append(f"{eid}: COMPLETED but the last provider call was {calls[-1].kind if calls else 'none'}")
            elif e["status"] == "FAILED":
                err = json.dumps(e.get("error"))
                last = calls[-1].kind if calls else None
                if not e.get("error"):
                    findings.append(f"{eid}: FAILED without an error")
                elif last and last != "ok" and not any(w in err for w in REASON_WORDS[last]):
                    findings.append(f"{eid}: FAILED after a {last} but the error does not say so: {err[:200]}")
                if len(calls) < e["maxAttempts"] and "deadline" not in err.lower() and "timeout" not in err.lower():
                    findings.append(f"{eid}: FAILED after {len(calls)} of {e['maxAttempts']} attempts on transient faults: {err[:200]}")
        harness.record(f"provider_faults.{name}", {"executions": count, **stats, "findings": len(findings),
                                                   "drain_s": round(secs, 1)})
        assert not findings, "\n".join(findings[:40])
        assert stats["retry_after_checked"] > 0 or stats["faults"]["429"] == 0
        r = node.anon.req("GET", "/api/health")
        assert r.status_code == 200
        return stats
    finally:
        node.server.stop()
        fake.stop()


def test_provider_faults_small(pg):
    run_faults(pg, env_int("FAULT_EXECUTIONS_QUICK", 30), "faults_small")


@pytest.mark.full
def test_provider_faults_large(pg):
    run_faults(pg, env_int("FAULT_EXECUTIONS_FULL", 200), "faults_large", retry_after=2.0)
