"""Datasets and experiments from Python: the issue's flow (labels, a regression set from
production traffic, production vs staging, promote, roll back), progress as an iterator and
an async iterator, and bad arguments and rows named in the errors."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import pytest

import formaops

from conftest import unique

WHO = ["Ada", "Grace", "Edsger"]


def _prompt(engine: formaops.Engine) -> formaops.Prompt:
    return engine.create_prompt(
        unique(),
        "Say hello to {{ who }}.",
        variables=[{"name": "who", "type": "string", "required": True}],
    )


def test_production_vs_staging_promote_and_roll_back(engine: formaops.Engine) -> None:
    p = _prompt(engine)
    engine.set_label(p, "production", 1)
    engine.update_prompt(p, template="Greet {{ who }} warmly.")
    engine.set_label(p, "staging", 2)
    for who in WHO:
        assert engine.execute(p, {"who": who}, label="production").prompt_version == 1
    engine.execute(p, {"who": "Alan"}, label="staging")  # a v2 execution, filtered out below

    d = engine.create_dataset_from_executions(unique("ds"), p, version=1, expected_from_output=True)
    assert d["row_count"] == 3
    rows = engine.dataset_rows(d)
    assert rows.next_cursor is None
    assert sorted(r["inputs"]["who"] for r in rows) == sorted(WHO)
    assert all(isinstance(r["expected"], str) and r["expected"] for r in rows)
    assert [x["id"] for x in engine.datasets()] == [d["id"]]

    x = engine.start_experiment(p, d, ["production", "staging"], match="exact", concurrency=2)
    assert [(t["requested"], t["version"]) for t in x["targets"]] == [("production", 1), ("staging", 2)]
    assert x["progress"]["total"] == 6

    reports: List[Dict[str, Any]] = list(engine.follow_experiment(x["id"]))
    assert reports, "at least the first report"
    last = reports[-1]
    assert (last["status"], last["done"], last["failed"], last["in_flight"]) == ("COMPLETED", 6, 0, 0)
    assert [r["done"] for r in reports] == sorted(r["done"] for r in reports)
    assert engine.get_experiment(x)["progress"] == last
    assert [e["id"] for e in engine.experiments()] == [x["id"]]

    c = engine.experiment_results(x)
    assert [(v["version"], v["requested"]) for v in c["versions"]] == [(1, "production"), (2, "staging")]
    # v1 reproduces the outputs it recorded; v2's new template does not.
    assert [(v["match_checked"], v["matched"]) for v in c["versions"]] == [(3, 3), (3, 0)]
    assert len(c["rows"]) == 3
    for row in c["rows"]:
        assert [r["version"] for r in row["results"]] == [1, 2]
        assert all(r["status"] == "COMPLETED" for r in row["results"])
        assert row["results"][1]["output"] and "Greet" in row["results"][1]["output"]
        assert row["results"][0]["output"] == row["expected"]

    engine.set_label(p, "production", 2)
    assert engine.execute(p, {"who": "Ada"}, label="production").prompt_version == 2
    engine.set_label(p, "production", 1)
    assert engine.execute(p, {"who": "Ada"}, label="production").prompt_version == 1

    # The dataset is in use by the experiment.
    with pytest.raises(formaops.ConflictError):
        engine.delete_dataset(d)
    with pytest.raises(formaops.ConflictError):
        engine.cancel_experiment(x)


def test_rows_paging_and_delete(engine: formaops.Engine) -> None:
    rows = [{"inputs": {"who": f"n{i}"}, "expected": {"camelKey": i}} for i in range(5)]
    d = engine.create_dataset(unique("ds"), rows)
    first = engine.dataset_rows(d["id"], limit=2)
    assert [r["index"] for r in first] == [0, 1] and first.next_cursor == "1"
    # `expected` is user data: its keys are not renamed.
    assert first.items[1]["expected"] == {"camelKey": 1}
    rest = engine.dataset_rows(d["id"], limit=3, cursor=first.next_cursor)
    assert [r["index"] for r in rest] == [2, 3, 4]
    engine.delete_dataset(d["id"])
    with pytest.raises(formaops.NotFoundError):
        engine.get_dataset(d["id"])
    with pytest.raises(formaops.ConflictError):
        name = unique("ds")
        engine.create_dataset(name, rows)
        engine.create_dataset(name, rows)


def test_cancel_and_async_progress(slow_engine: formaops.Engine) -> None:
    engine = slow_engine
    p = _prompt(engine)
    d = engine.create_dataset(unique("ds"), [{"inputs": {"who": w}} for w in WHO * 2])
    x = engine.start_experiment(p, d, [1], concurrency=1)
    cancelled = engine.cancel_experiment(x)
    assert cancelled["status"] == "CANCELLED"
    assert engine.cancel_experiment(x)["status"] == "CANCELLED"  # twice is not an error

    async def follow() -> List[Dict[str, Any]]:
        return [r async for r in engine.follow_experiment(x["id"])]

    reports = asyncio.run(follow())
    last = reports[-1]
    assert (last["status"], last["in_flight"]) == ("CANCELLED", 0)
    # Rows not run by the cancel stay unrun (no execution); the slow mock finished at most one.
    assert last["total"] == 6 and last["done"] <= 1
    results = [r for row in engine.experiment_results(x)["rows"] for r in row["results"]]
    assert len(results) == 6
    assert sum(r["status"] in (None, "CANCELLED") for r in results) >= 5


def test_bad_rows_are_all_listed(engine: formaops.Engine) -> None:
    bad = [
        {"inputs": {"who": "Ada"}},
        {"input": {"who": "Ada"}},
        {"inputs": {"who": "a\x00b"}},
        {"inputs": "Ada"},
    ]
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_dataset(unique("ds"), bad)
    assert [pr["field"] for pr in info.value.problems] == ["rows[1]", "rows[2].inputs.who", "rows[3]"]
    with pytest.raises(TypeError, match=r"^rows\[1\] must be a mapping"):
        engine.create_dataset(unique("ds"), [{"inputs": {}}, "who=Ada"])  # type: ignore[list-item]
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_dataset(unique("ds"), [])
    assert [pr["field"] for pr in info.value.problems] == ["rows"]

    # A row the version would refuse is named with the variable.
    p = _prompt(engine)
    d = engine.create_dataset(unique("ds"), [{"inputs": {"who": "Ada"}}, {"inputs": {}}])
    with pytest.raises(formaops.ValidationError) as info:
        engine.start_experiment(p, d, [1])
    assert [pr["field"] for pr in info.value.problems] == ["rows[1].inputs.who"]


def test_bad_values_name_the_argument(engine: formaops.Engine) -> None:
    p = _prompt(engine)
    engine.execute(p, {"who": "Ada"})
    d = engine.create_dataset(unique("ds"), [{"inputs": {"who": "Ada"}}])
    now = datetime.now(timezone.utc)
    cases = [
        (lambda: engine.start_experiment(p, d, []), "versions"),
        (lambda: engine.start_experiment(p, d, list(range(1, 13))), "versions"),
        (lambda: engine.start_experiment(p, d, [0]), "versions[0]"),
        (lambda: engine.start_experiment(p, d, [1], concurrency=0), "concurrency"),
        (lambda: engine.start_experiment(p, d, [1], match="fuzzy"), "match"),
        (lambda: engine.start_experiment(p, d, [1], priority="urgent"), "priority"),
        (lambda: engine.start_experiment(p, d, ["no such label!"]), "versions"),
        (lambda: engine.create_dataset_from_executions(unique(), p, limit=0), "limit"),
        (lambda: engine.create_dataset_from_executions(unique(), p, status="DONE"), "status"),
        (lambda: engine.create_dataset_from_executions(unique(), p, since=now, until=now - timedelta(1)), "since"),
        (lambda: engine.create_dataset_from_executions(unique(), p, version=7), "filters"),
        (lambda: engine.create_dataset("", [{"inputs": {}}]), "name"),
        (lambda: engine.dataset_rows(d, cursor="x"), "cursor"),
        (lambda: engine.dataset_rows(d, limit=0), "limit"),
        (lambda: engine.get_experiment("not-a-uuid"), "experiment_id"),
    ]
    for run, field in cases:
        with pytest.raises(formaops.ValidationError) as info:
            run()
        assert field in [pr["field"] for pr in info.value.problems] or field in str(info.value), (field, info.value)
    with pytest.raises(formaops.NotFoundError):
        engine.start_experiment(p, d, ["staging"])
    with pytest.raises(TypeError, match=r"^versions must be a list"):
        engine.start_experiment(p, d, "production")  # type: ignore[arg-type]
