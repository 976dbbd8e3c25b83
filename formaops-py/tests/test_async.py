"""asyncio variants: awaitables that do not block the event loop."""

from __future__ import annotations

import asyncio

import pytest

import formaops
from conftest import unique


def test_execute_async_and_wait_async() -> None:
    async def main() -> None:
        engine = await formaops.Engine.open_async(mock_latency_ms=300, concurrency=8)
        try:
            p = engine.create_prompt(name=unique(), template="Hi {{ n }}", variables=[{"name": "n", "type": "integer", "required": True}])
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            t = asyncio.ensure_future(ticker())
            results = await asyncio.gather(*(engine.execute_async(p.id, {"n": i}) for i in range(8)))
            t.cancel()
            assert [r.status for r in results] == ["COMPLETED"] * 8
            assert sorted(r.inputs["n"] for r in results) == list(range(8))
            assert ticks >= 10, ticks  # the loop kept running during the 300 ms calls

            queued = engine.submit(p.id, {"n": 1})
            done = await engine.wait_async(queued.id)
            assert done.status == "COMPLETED" and done.id == queued.id
        finally:
            engine.close()

    asyncio.run(main())


def test_async_errors_are_mapped() -> None:
    async def main() -> None:
        with formaops.Engine.open() as engine:
            p = engine.create_prompt(name=unique(), template="{{ a }}", variables=[{"name": "a", "type": "string", "required": True}])
            with pytest.raises(formaops.ValidationError) as info:
                await engine.execute_async(p.id, {})
            assert info.value.problems[0]["field"] == "inputs.a"

    asyncio.run(main())


def test_async_event_iteration() -> None:
    async def main() -> None:
        with formaops.Engine.open(mock_latency_ms=50) as engine:
            p = engine.create_prompt(name=unique(), template="x")
            events = engine.events(timeout=5)
            e = engine.submit(p.id)
            kinds = []
            async for ev in events:
                if ev.execution_id == e.id:
                    kinds.append(ev.kind)
                    if ev.kind == "completed":
                        break
            assert kinds[-1] == "completed" and "running" in kinds

    asyncio.run(main())
