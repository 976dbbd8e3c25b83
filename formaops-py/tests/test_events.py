"""Execution events as an iterator."""

from __future__ import annotations

import time

import formaops
from conftest import unique


def test_events_of_all_executions(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    events = engine.events(timeout=5)
    e = engine.submit(greet.id, {"who": "Ada"})
    seen = []
    for ev in events:
        assert isinstance(ev, formaops.Event)
        if ev.execution_id == e.id:
            seen.append((ev.kind, ev.status))
            if ev.kind == "completed":
                break
    assert seen[0] == ("queued", "QUEUED")
    assert ("running", "RUNNING") in seen
    assert seen[-1] == ("completed", "COMPLETED")
    events.close()
    assert list(events) == []


def test_events_of_one_execution_end_after_its_final_event(slow_engine: formaops.Engine) -> None:
    p = slow_engine.create_prompt(name=unique(), template="x")
    e = slow_engine.submit(p.id)
    kinds = [ev.kind for ev in slow_engine.events(e.id, timeout=10)]
    assert kinds[0] in ("queued", "running"), kinds  # its state when following began
    assert kinds[-1] == "completed"
    assert all(k in ("queued", "running", "partial", "completed") for k in kinds)


def test_events_of_a_finished_execution_yield_its_final_state_and_end(
    engine: formaops.Engine, greet: formaops.Prompt
) -> None:
    e = engine.execute(greet.id, {"who": "Ada"})
    start = time.monotonic()
    got = list(engine.events(e, timeout=30))
    assert [(ev.kind, ev.status, ev.execution_id, ev.attempt) for ev in got] == [
        ("completed", "COMPLETED", e.id, 1)
    ]
    assert got[0].at == e.finished_at
    assert time.monotonic() - start < 5


def test_events_timeout_ends_iteration(engine: formaops.Engine) -> None:
    start = time.monotonic()
    assert list(engine.events(timeout=0.2)) == []
    assert time.monotonic() - start >= 0.2
