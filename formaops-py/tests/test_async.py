"""asyncio variants: awaitables that do not block the event loop."""

from __future__ import annotations

import asyncio
import inspect
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Set, Tuple

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


# ----- every blocking method has an `_async` twin -----

# Blocking methods of `Engine` that have no `_async` twin yet. Each is a known gap, not a
# design choice: add a name only in review, with the reason. A method added to `Engine` must
# come with its twin (or be listed here).
NO_TWIN_YET: Set[str] = set()


def _blocking_methods() -> Dict[str, Any]:
    return {
        name: fn
        for name, fn in inspect.getmembers(formaops.Engine)
        if not name.startswith("_")
        and not name.endswith("_async")
        and callable(fn)
        and not inspect.iscoroutinefunction(fn)
    }


def test_every_blocking_method_has_an_async_twin() -> None:
    blocking = _blocking_methods()
    missing = sorted(n for n in blocking if not hasattr(formaops.Engine, f"{n}_async") and n not in NO_TWIN_YET)
    assert not missing, f"blocking methods without an `_async` twin: {missing}"
    stale = sorted(n for n in NO_TWIN_YET if n not in blocking or hasattr(formaops.Engine, f"{n}_async"))
    assert not stale, f"NO_TWIN_YET lists methods that have a twin or are gone: {stale}"
    for name, fn in blocking.items():
        twin = getattr(formaops.Engine, f"{name}_async", None)
        if twin is None:
            continue
        assert inspect.iscoroutinefunction(twin), name
        # The same parameters, defaults and annotations: a twin is the blocking call, awaited.
        assert inspect.signature(twin).parameters == inspect.signature(fn).parameters, name
        assert twin.__doc__ and f":meth:`{name}`" in twin.__doc__, name


def test_every_native_async_method_is_used_by_the_wrapper() -> None:
    native = {n for n in dir(formaops._formaops.NativeEngine) if n.endswith("_async")}
    wrapper = {n for n in dir(formaops.Engine) if n.endswith("_async")} - {"open_async"}
    assert native == wrapper


# ----- datasets and experiments -----

WHO = ["Ada", "Grace", "Edsger"]
LAB_METHODS = {
    "create_dataset",
    "create_dataset_from_executions",
    "datasets",
    "get_dataset",
    "dataset_rows",
    "delete_dataset",
    "start_experiment",
    "get_experiment",
    "experiments",
    "experiment_results",
    "cancel_experiment",
    "follow_experiment",
}


def _greet(engine: formaops.Engine) -> formaops.Prompt:
    return engine.create_prompt(
        unique(), "Say hello to {{ who }}.", variables=[{"name": "who", "type": "string", "required": True}]
    )


def test_dataset_and_experiment_twins_return_what_the_blocking_calls_return(engine: formaops.Engine) -> None:
    p = _greet(engine)
    for who in WHO:
        engine.execute(p, {"who": who})

    async def main() -> None:
        rows = [{"inputs": {"who": w}, "expected": {"camelKey": i}} for i, w in enumerate(WHO)]
        d = await engine.create_dataset_async(unique("ds"), rows)
        assert d == engine.get_dataset(d["id"]) == await engine.get_dataset_async(d)
        assert (await engine.dataset_rows_async(d, limit=2)) == engine.dataset_rows(d, limit=2)
        page = await engine.dataset_rows_async(d, limit=2, cursor="1")
        assert page == engine.dataset_rows(d, limit=2, cursor="1")
        assert [r["expected"] for r in page] == [{"camelKey": 2}]

        d2 = await engine.create_dataset_from_executions_async(unique("ds"), p, expected_from_output=True)
        d3 = engine.create_dataset_from_executions(unique("ds"), p, expected_from_output=True)
        assert d2["row_count"] == d3["row_count"] == 3
        assert (await engine.dataset_rows_async(d2)).items == engine.dataset_rows(d3).items
        assert (await engine.datasets_async()) == engine.datasets()
        assert [x["id"] for x in await engine.datasets_async(limit=1)] == [d3["id"]]

        x = await engine.start_experiment_async(p, d2, [1], match="exact", concurrency=2)
        assert x["progress"]["total"] == 3 and [t["version"] for t in x["targets"]] == [1]
        reports = [r async for r in await engine.follow_experiment_async(x)]
        assert (reports[-1]["status"], reports[-1]["done"]) == ("COMPLETED", 3)
        got = await engine.get_experiment_async(x["id"])
        assert got == engine.get_experiment(x) and got["progress"] == reports[-1]
        assert got["status"] == "COMPLETED" and got["id"] == x["id"]
        assert (await engine.experiments_async()) == engine.experiments()
        results = await engine.experiment_results_async(x)
        assert results == engine.experiment_results(x)
        assert [(v["match_checked"], v["matched"]) for v in results["versions"]] == [(3, 3)]

        d4 = await engine.create_dataset_async(unique("ds"), rows)
        assert await engine.delete_dataset_async(d4) is None
        with pytest.raises(formaops.NotFoundError):
            await engine.get_dataset_async(d4)

    asyncio.run(main())


def test_cancel_experiment_async(slow_engine: formaops.Engine) -> None:
    engine = slow_engine
    p = _greet(engine)
    d = engine.create_dataset(unique("ds"), [{"inputs": {"who": w}} for w in WHO * 2])

    async def main() -> None:
        x = await engine.start_experiment_async(p, d, [1], concurrency=1)
        cancelled = await engine.cancel_experiment_async(x)
        assert cancelled["status"] == "CANCELLED" and cancelled["id"] == x["id"]
        assert set(cancelled["progress"]) == set(x["progress"])
        last = [r async for r in await engine.follow_experiment_async(x)][-1]
        assert (last["status"], last["in_flight"]) == ("CANCELLED", 0)
        # Settled: cancelling again (not an error) answers as the blocking call does.
        assert await engine.cancel_experiment_async(x) == engine.cancel_experiment(x)

    asyncio.run(main())


def test_the_loop_runs_during_an_awaited_experiment(slow_engine: formaops.Engine) -> None:
    engine = slow_engine
    p = _greet(engine)
    d = engine.create_dataset(unique("ds"), [{"inputs": {"who": "Ada"}}])

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.ensure_future(ticker())
        x = await engine.start_experiment_async(p, d, [1])
        async for _ in await engine.follow_experiment_async(x):
            pass
        t.cancel()
        assert (await engine.get_experiment_async(x))["status"] == "COMPLETED"
        assert ticks >= 10, ticks  # the loop ran while the 400 ms row was in flight

    asyncio.run(main())


def _lab_errors(engine: formaops.Engine) -> List[Tuple[str, Tuple[Any, ...], Dict[str, Any]]]:
    """A failing call of every dataset and experiment method: (method, args, kwargs)."""
    p = _greet(engine)
    engine.execute(p, {"who": "Ada"})
    d = engine.create_dataset(unique("ds"), [{"inputs": {"who": "Ada"}}])
    bad_rows_d = engine.create_dataset(unique("ds"), [{"inputs": {"who": "Ada"}}, {"inputs": {}}])
    x = engine.start_experiment(p, d, [1])
    list(engine.follow_experiment(x))
    taken = unique("ds")
    engine.create_dataset(taken, [{"inputs": {}}])
    missing = "00000000-0000-4000-8000-000000000000"
    now = datetime.now(timezone.utc)
    return [
        ("create_dataset", (unique("ds"), [{"input": {}}, {"inputs": "x"}]), {}),
        ("create_dataset", (unique("ds"), [{"inputs": {}}, "who=Ada"]), {}),
        ("create_dataset", (taken, [{"inputs": {}}]), {}),
        ("create_dataset", ("", [{"inputs": {}}]), {}),
        ("create_dataset_from_executions", (unique(), p), {"limit": 0}),
        ("create_dataset_from_executions", (unique(), p), {"status": "DONE"}),
        ("create_dataset_from_executions", (unique(), p), {"since": now, "until": now - timedelta(1)}),
        ("create_dataset_from_executions", (unique(), p), {"version": 7}),
        ("create_dataset_from_executions", (unique(), missing), {}),
        ("datasets", (), {"limit": 0}),
        ("datasets", (), {"cursor": "nope"}),
        ("get_dataset", ("not-a-uuid",), {}),
        ("get_dataset", (missing,), {}),
        ("get_dataset", (7,), {}),
        ("dataset_rows", (d,), {"cursor": "x"}),
        ("dataset_rows", (d,), {"limit": 0}),
        ("dataset_rows", (missing,), {}),
        ("delete_dataset", (d,), {}),
        ("delete_dataset", (missing,), {}),
        ("start_experiment", (p, d, []), {}),
        ("start_experiment", (p, d, [0]), {}),
        ("start_experiment", (p, d, "production"), {}),
        ("start_experiment", (p, d, [1]), {"match": "fuzzy"}),
        ("start_experiment", (p, d, [1]), {"priority": "urgent"}),
        ("start_experiment", (p, d, ["staging"]), {}),
        ("start_experiment", (p, bad_rows_d, [1]), {}),
        ("get_experiment", ("not-a-uuid",), {}),
        ("get_experiment", (missing,), {}),
        ("experiments", (), {"limit": 10_000}),
        ("experiment_results", (missing,), {}),
        ("cancel_experiment", (x,), {}),
        ("cancel_experiment", (missing,), {}),
        ("follow_experiment", (missing,), {}),
        ("follow_experiment", (None,), {}),
    ]


def _raised(run: Any) -> BaseException:
    try:
        run()
    except Exception as e:  # noqa: BLE001 - the test compares whatever is raised
        return e
    raise AssertionError("no exception")


def test_dataset_and_experiment_twins_raise_what_the_blocking_calls_raise(engine: formaops.Engine) -> None:
    cases = _lab_errors(engine)
    assert {name for name, _, _ in cases} == LAB_METHODS, "every dataset and experiment method has an error case"

    async def raised_async(name: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> BaseException:
        try:
            await getattr(engine, f"{name}_async")(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            return e
        raise AssertionError(f"{name}_async raised nothing")

    for name, args, kwargs in cases:
        blocking = _raised(lambda: getattr(engine, name)(*args, **kwargs))
        awaited = asyncio.run(raised_async(name, args, kwargs))
        assert type(awaited) is type(blocking), (name, args, kwargs, blocking, awaited)
        assert str(awaited) == str(blocking), (name, args, kwargs)
        assert getattr(awaited, "problems", None) == getattr(blocking, "problems", None), (name, args, kwargs)
    kinds = {type(_raised(lambda: getattr(engine, n)(*a, **k))) for n, a, k in cases}
    assert {formaops.ValidationError, formaops.NotFoundError, formaops.ConflictError, TypeError} <= kinds


# ----- prompts, labels, executions, metrics, events, health and close -----

GREET_VARIABLES = [{"name": "who", "type": "string", "required": True}]


def test_prompt_and_label_twins_return_what_the_blocking_calls_return(engine: formaops.Engine) -> None:
    async def main() -> None:
        p = await engine.create_prompt_async(
            unique(), "Say hello to {{ who }}.", variables=GREET_VARIABLES, model="gpt-4o-mini"
        )
        assert p == engine.get_prompt(p) == await engine.get_prompt_async(p)
        assert p.version is not None and p.version.version == 1
        # `parameters=` alone merges over the current model (the name is kept).
        p2 = await engine.update_prompt_async(p, parameters={"temperature": 0.5}, expected_version=1)
        assert p2.version is not None and p2.version.version == 2
        assert p2 == engine.get_prompt(p) == await engine.get_prompt_async(p, 2)
        assert p2.version.model == dict(p.version.model, parameters={"temperature": 0.5})
        assert await engine.get_prompt_async(p, label="production") == engine.get_prompt(p, label="production")
        assert await engine.list_prompts_async(limit=5) == engine.list_prompts(limit=5)
        assert await engine.versions_async(p, limit=1) == engine.versions(p, limit=1)
        page = await engine.versions_async(p, limit=1, cursor="2")
        assert page == engine.versions(p, limit=1, cursor="2") and [v.version for v in page] == [1]

        moved = await engine.set_label_async(p, "staging", 1)
        assert (moved["name"], moved["version"]) == ("staging", 1)
        assert await engine.labels_async(p) == engine.labels(p)
        assert "staging" in [x["name"] for x in await engine.labels_async(p)]
        assert await engine.label_history_async(p) == engine.label_history(p)
        assert await engine.label_history_async(p, "staging") == engine.label_history(p, "staging")
        assert await engine.delete_label_async(p, "staging") is None
        assert "staging" not in [x["name"] for x in engine.labels(p)]
        assert await engine.set_promotion_guard_async(p, True) is None
        assert await engine.diff_async(p, 1, "latest") == engine.diff(p, 1, "latest")

        validated = await engine.validate_inputs_async(p, {"who": "Ada"})
        assert validated == engine.validate_inputs(p, {"who": "Ada"}) == {"who": "Ada"}
        assert await engine.render_async(p.version, {"who": "Ada"}) == engine.render(p.version, {"who": "Ada"})

        archived = await engine.archive_prompt_async(p)
        assert archived.status == "ARCHIVED" and archived.version is None
        assert await engine.list_prompts_async(status="ARCHIVED") == engine.list_prompts(status="ARCHIVED")

    asyncio.run(main())


def test_execution_and_metrics_twins_return_what_the_blocking_calls_return(engine: formaops.Engine) -> None:
    p = _greet(engine)

    async def main() -> None:
        queued = await engine.submit_async(p, {"who": "Ada"}, idempotency_key="k1")
        assert queued.status in ("QUEUED", "RUNNING", "COMPLETED")
        done = await engine.wait_async(queued)
        assert done == engine.get_execution(queued) == await engine.get_execution_async(queued)
        # The same idempotency key answers the first execution, awaited or not.
        assert (await engine.submit_async(p, {"who": "Ada"}, idempotency_key="k1")).id == queued.id
        labelled = await engine.wait_async(await engine.submit_async(p, {"who": "Grace"}, label="production"))
        assert (labelled.status, labelled.prompt_version, labelled.label) == ("COMPLETED", 1, "production")

        assert await engine.list_executions_async() == engine.list_executions()
        assert await engine.list_executions_async(prompt_id=p, limit=1) == engine.list_executions(prompt_id=p, limit=1)
        until = datetime.now(timezone.utc) + timedelta(minutes=1)
        since = until - timedelta(hours=1)
        report = await engine.metrics_async(since=since, until=until, prompt_id=p)
        assert report == engine.metrics(since=since, until=until, prompt_id=p)
        assert report.counts.total == 2
        series = await engine.metrics_series_async("minute", since=since, until=until)
        assert series == engine.metrics_series("minute", since=since, until=until)
        assert sum(x.counts.total for x in series.points) == 2
        health = await engine.health_async()
        assert health == engine.health() and health["store_ok"]

    asyncio.run(main())


def test_retry_async_and_cancel_async() -> None:
    async def main() -> None:
        with formaops.Engine.open(mock_faults=[{"fault": "bad_request", "calls": [0]}]) as engine:
            p = _greet(engine)
            failed = await engine.execute_async(p, {"who": "Ada"})
            assert failed.status == "FAILED"
            again = await engine.retry_async(failed)
            assert again.retry_of == failed.id and again.id != failed.id
            assert (await engine.wait_async(again)).status == "COMPLETED"
        with formaops.Engine.open(mock_latency_ms=400, concurrency=1) as engine:
            p = _greet(engine)
            first = await engine.submit_async(p, {"who": "Ada"})
            second = await engine.submit_async(p, {"who": "Grace"})
            cancelled = await engine.cancel_async(second)
            assert cancelled.status == "CANCELLED" and cancelled == engine.get_execution(second)
            await engine.wait_async(first)

    asyncio.run(main())


def test_events_async_follows_one_execution(slow_engine: formaops.Engine) -> None:
    engine = slow_engine
    p = _greet(engine)

    async def main() -> None:
        x = await engine.submit_async(p, {"who": "Ada"})
        kinds = [e.kind async for e in await engine.events_async(x, timeout=5)]
        assert kinds[-1] == "completed", kinds
        # Already final: its final event, then the end, as the blocking one does.
        assert [e.kind async for e in await engine.events_async(x)] == [e.kind for e in engine.events(x)]
        every = await engine.events_async(timeout=0.05)
        assert [e async for e in every] == []

    asyncio.run(main())


def test_close_async_is_idempotent() -> None:
    async def main() -> None:
        engine = formaops.Engine.open(mock_latency_ms=1500)
        p = _greet(engine)
        await engine.submit_async(p, {"who": "Ada"})
        started = asyncio.get_running_loop().time()
        assert await engine.close_async(grace=0.1) is None
        assert asyncio.get_running_loop().time() - started < 0.8
        assert engine.closed
        assert await engine.close_async() is None  # closing twice is not an error
        engine.close()
        with pytest.raises(formaops.UnavailableError):
            await engine.get_execution_async("00000000-0000-4000-8000-000000000000")
        with pytest.raises(formaops.ValidationError):
            await formaops.Engine.open().close_async(grace=-1)

    asyncio.run(main())


def _other_errors(engine: formaops.Engine) -> List[Tuple[str, Tuple[Any, ...], Dict[str, Any]]]:
    """A failing call of every other method with a twin (health never fails): (method, args,
    kwargs)."""
    p = _greet(engine)
    done = engine.execute(p, {"who": "Ada"})
    taken = _greet(engine)
    missing = "00000000-0000-4000-8000-000000000000"
    now = datetime.now(timezone.utc)
    return [
        ("close", (), {"grace": -1}),
        ("close", (), {"grace": "soon"}),
        ("create_prompt", (taken.name, "x"), {}),
        ("create_prompt", (unique(), "{{ x }"), {}),
        ("create_prompt", (unique(), "x"), {"variables": [{"name": "x", "type": "colour"}]}),
        ("create_prompt", (unique(), "x"), {"model": 7}),
        ("create_prompt", (unique(), "x"), {"labels": "production"}),
        ("create_prompt", (unique(), "x"), {"parameters": {"temperature": "hot"}}),
        ("update_prompt", (p,), {"expected_version": 7, "template": "y"}),
        ("update_prompt", (missing,), {"parameters": {"temperature": 0.1}}),
        ("update_prompt", (p,), {"model": {"nope": 1}}),
        ("get_prompt", (p, 9), {}),
        ("get_prompt", (p,), {"version": 1, "label": "production"}),
        ("get_prompt", ("nope",), {}),
        ("set_label", (p, "latest", 1), {}),
        ("set_label", (p, "staging", 9), {}),
        ("set_label", (p, "staging", "1"), {}),
        ("delete_label", (p, "nope"), {}),
        ("labels", (missing,), {}),
        ("label_history", (missing,), {}),
        ("set_promotion_guard", (missing, True), {}),
        ("diff", (p, 1, 9), {}),
        ("diff", (p, 1, "nope"), {}),
        ("list_prompts", (), {"status": "GONE"}),
        ("list_prompts", (), {"cursor": "nope"}),
        ("versions", (p,), {"cursor": "x"}),
        ("versions", (missing,), {}),
        ("archive_prompt", (missing,), {}),
        ("validate_inputs", (p, {}), {}),
        ("validate_inputs", (p, {"who": 7}), {"version": 1}),
        ("render", (p, {}), {}),
        ("render", (p, "who=Ada"), {}),
        ("submit", (p, {}), {}),
        ("submit", (p, {"who": "Ada"}), {"priority": "urgent"}),
        ("submit", (p, {"who": "Ada"}), {"label": "nope"}),
        ("submit", (missing, {}), {}),
        ("retry", (done,), {}),
        ("retry", (missing,), {}),
        ("cancel", (done,), {}),
        ("cancel", (missing,), {}),
        ("get_execution", (missing,), {}),
        ("get_execution", ("x",), {}),
        ("list_executions", (), {"status": "DONE"}),
        ("list_executions", (), {"limit": 0}),
        ("metrics", (), {"since": now, "until": now - timedelta(1)}),
        ("metrics", (), {"version": 0}),
        ("metrics_series", ("week",), {}),
        ("metrics_series", ("minute",), {"since": now - timedelta(days=30), "until": now}),
        ("events", (missing,), {}),
        ("events", (None,), {"timeout": -1}),
    ]


def _raised_by_both(engine: formaops.Engine, cases: List[Tuple[str, Tuple[Any, ...], Dict[str, Any]]]) -> None:
    """Each case raises the same exception type, message and problems blocking and awaited."""

    async def raised_async(target: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> BaseException:
        try:
            await target(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            return e
        raise AssertionError(f"{target.__name__} raised nothing")

    for name, args, kwargs in cases:
        # `close` on a throwaway engine, so the shared one stays open.
        on = formaops.Engine.open() if name == "close" else engine
        blocking = _raised(lambda: getattr(on, name)(*args, **kwargs))
        awaited = asyncio.run(raised_async(getattr(on, f"{name}_async"), args, kwargs))
        assert type(awaited) is type(blocking), (name, args, kwargs, blocking, awaited)
        assert str(awaited) == str(blocking), (name, args, kwargs)
        assert getattr(awaited, "problems", None) == getattr(blocking, "problems", None), (name, args, kwargs)


def test_other_twins_raise_what_the_blocking_calls_raise(engine: formaops.Engine) -> None:
    cases = _other_errors(engine)
    with_twins = {n for n in _blocking_methods() if hasattr(formaops.Engine, f"{n}_async")}
    # Checked elsewhere: the lab methods above, execute/wait in test_async_errors_are_mapped;
    # open is a static method (test_arguments covers open_async); health never fails.
    covered = {name for name, _, _ in cases} | LAB_METHODS | {"execute", "wait", "open", "health"}
    assert with_twins <= covered, f"no error case for {sorted(with_twins - covered)}"
    _raised_by_both(engine, cases)
    kinds = {type(_raised(lambda: getattr(engine, n)(*a, **k))) for n, a, k in cases if n != "close"}
    assert {formaops.ValidationError, formaops.NotFoundError, formaops.ConflictError, TypeError} <= kinds
