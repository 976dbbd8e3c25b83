"""The GIL is released while Rust works, and one engine is safe to share between threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import formaops
from conftest import unique


def test_other_python_threads_run_during_a_blocking_execute() -> None:
    with formaops.Engine.open(mock_latency_ms=500) as engine:
        p = engine.create_prompt(name=unique(), template="x")
        stop = threading.Event()
        ticks = [0]

        def spin() -> None:
            while not stop.is_set():
                ticks[0] += 1

        t = threading.Thread(target=spin)
        t.start()
        try:
            time.sleep(0.05)  # let the spinner start
            before = ticks[0]
            r = engine.execute(p.id)
            during = ticks[0] - before
        finally:
            stop.set()
            t.join()
        assert r.status == "COMPLETED"
        assert r.metrics is not None and r.metrics.provider_latency_ms >= 500
        # Holding the GIL for 500 ms would leave the spinner at a handful of ticks (one
        # switch interval at most); released, it counts freely, typically millions.
        assert during > 100_000, during


def test_a_blocking_execute_in_a_thread_does_not_block_the_main_thread() -> None:
    with formaops.Engine.open(mock_latency_ms=400) as engine:
        p = engine.create_prompt(name=unique(), template="x")
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(engine.execute, p.id)
            ticks = 0
            while not fut.done():
                ticks += 1
            assert fut.result().status == "COMPLETED"
        assert ticks > 100_000, ticks


def test_one_engine_from_many_threads(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    threads, per_thread = 8, 15

    def work(t: int) -> list:
        out = []
        for i in range(per_thread):
            r = engine.execute(greet.id, {"who": f"{t}-{i}"})
            assert r.status == "COMPLETED"
            out.append((r.id, r.inputs["who"]))
            if i % 5 == 0:
                engine.list_executions(limit=5)
                engine.render(greet.id, {"who": "x"})
        return out

    with ThreadPoolExecutor(threads) as pool:
        results = [x for chunk in pool.map(work, range(threads)) for x in chunk]
    assert len({r[0] for r in results}) == threads * per_thread
    assert {r[1] for r in results} == {f"{t}-{i}" for t in range(threads) for i in range(per_thread)}
    assert engine.metrics().counts.completed == threads * per_thread


def test_slow_executions_overlap_across_threads() -> None:
    with formaops.Engine.open(mock_latency_ms=300, concurrency=4) as engine:
        p = engine.create_prompt(name=unique(), template="x")
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: engine.execute(p.id), range(4)))
        assert all(r.status == "COMPLETED" for r in results)
        started = sorted(r.started_at for r in results)
        finished = sorted(r.finished_at for r in results)
        # all four were running at once: every one started before any finished
        assert started[-1] < finished[0]


def test_ctrl_c_interrupts_a_blocking_call() -> None:
    import _thread

    with formaops.Engine.open(mock_latency_ms=10_000) as engine:
        p = engine.create_prompt(name=unique(), template="x")
        timer = threading.Timer(0.3, _thread.interrupt_main)
        start = time.monotonic()
        timer.start()
        try:
            engine.execute(p.id)
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("execute was not interrupted")
        finally:
            timer.cancel()
        # interrupted within a signal-check slice, not after the 10 s call
        assert time.monotonic() - start < 3
