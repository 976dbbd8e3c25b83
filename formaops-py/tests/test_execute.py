"""Executions: execute, submit + wait, idempotency, list, retry, cancel, metrics."""

from __future__ import annotations

import datetime as dt

import pytest

import formaops
from conftest import unique


def test_execute_completes_with_output_and_metrics(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    r = engine.execute(greet.id, {"who": "Ada"})
    assert isinstance(r, formaops.Execution)
    assert r.status == "COMPLETED" and r.is_final
    assert isinstance(r.output, str) and r.output
    assert r.inputs == {"who": "Ada", "excited": False}
    assert r.prompt_id == greet.id and r.prompt_version == 1
    assert r.priority == "NORMAL" and r.provider == "mock" and r.model == "gpt-4o-mini"
    assert r.error is None and r.attempts == 1
    m = r.metrics
    assert isinstance(m, formaops.ExecutionMetrics)
    assert m.token_usage.input > 0 and m.token_usage.output > 0
    assert m.token_usage.total == m.token_usage.input + m.token_usage.output
    assert m.cost_usd is not None and m.cost_usd > 0  # gpt-4o-mini is priced
    assert m.latency_ms >= 0
    assert isinstance(r.finished_at, dt.datetime) and r.finished_at >= r.created_at
    d = r.to_dict()
    assert d["metrics"]["token_usage"]["total"] == m.token_usage.total
    assert d["inputs"] == {"who": "Ada", "excited": False}


def test_unpriced_model_has_no_cost(engine: formaops.Engine) -> None:
    p = engine.create_prompt(name=unique(), template="x", model="my-local-model")
    r = engine.execute(p.id)
    assert r.status == "COMPLETED"
    assert r.metrics is not None and r.metrics.cost_usd is None


def test_execute_accepts_objects_and_priority(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    r = engine.execute(greet, {"who": "Ada"}, priority="high")
    assert r.priority == "HIGH"
    assert engine.get_execution(r).id == r.id


def test_invalid_inputs_queue_nothing(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    with pytest.raises(formaops.ValidationError) as info:
        engine.execute(greet.id, {})
    assert info.value.problems[0]["field"] == "inputs.who"
    assert engine.list_executions().items == []


def test_submit_then_wait(slow_engine: formaops.Engine) -> None:
    p = slow_engine.create_prompt(name=unique(), template="x")
    queued = slow_engine.submit(p.id)
    assert queued.status in ("QUEUED", "RUNNING") and not queued.is_final
    early = slow_engine.wait(queued.id, timeout=0.01)
    assert early.id == queued.id and not early.is_final
    done = slow_engine.wait(queued)
    assert done.status == "COMPLETED" and done.output


def test_idempotency_key_returns_the_first_execution(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    a = engine.execute(greet.id, {"who": "Ada"}, idempotency_key="same")
    b = engine.execute(greet.id, {"who": "Ada"}, idempotency_key="same")
    assert a.id == b.id and b.idempotency_key == "same"
    assert len(engine.list_executions().items) == 1


def test_validate_output(engine: formaops.Engine) -> None:
    p = engine.create_prompt(
        name=unique(),
        template="xy",
        validations=[{"type": "min_length", "value": 1}, {"type": "max_length", "value": 1}],
    )
    r = engine.execute(p.id, validate_output=True)
    assert r.status == "COMPLETED" and r.output == "xy"  # the mock echoes the prompt
    assert isinstance(r.validation, formaops.ValidationVerdict)
    assert [o.rule for o in r.validation.results] == ["min_length", "max_length"]
    assert r.validation.results[0].passed and r.validation.results[0].reason is None
    assert not r.validation.results[1].passed and r.validation.results[1].reason
    assert r.validation.passed is False
    unvalidated = engine.execute(p.id)
    assert unvalidated.validation is None


def test_validated_output_is_parsed_json() -> None:
    with formaops.Engine.open(mock_reply='```json\n{"score": 7, "tags": ["a"]}\n```') as e:
        p = e.create_prompt(
            name=unique(),
            template="rate it",
            validations=[{"type": "json_schema", "schema": {"type": "object", "required": ["score"]}}],
        )
        r = e.execute(p.id, validate_output=True)
        assert r.validation is not None and r.validation.passed
        assert r.validated_output == {"score": 7, "tags": ["a"]}
        assert p.version is not None
        assert p.version.validations[0]["schema"] == {"type": "object", "required": ["score"]}


def test_json_schema_rule_strict_is_validated_when_saved() -> None:
    optional_zip = {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
    }
    with formaops.Engine.open(mock_reply='{"city": "Paris"}') as e:
        with pytest.raises(formaops.ValidationError) as info:
            e.create_prompt(
                name=unique(),
                template="where?",
                validations=[{"type": "json_schema", "schema": optional_zip, "strict": True}],
            )
        problem = info.value.problems[0]
        assert problem["field"] == "validations[0].schema"
        assert "`zip` is not in `required`" in problem["message"]
        for strict in ("auto", False):
            p = e.create_prompt(
                name=unique(),
                template="where?",
                validations=[{"type": "json_schema", "schema": optional_zip, "strict": strict}],
            )
            r = e.execute(p.id, validate_output=True)
            assert r.validation is not None and r.validation.passed


def test_list_executions_filters_and_pages(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    other = engine.create_prompt(name=unique(), template="y")
    ids = [engine.execute(greet.id, {"who": str(i)}).id for i in range(5)]
    engine.execute(other.id)
    mine = engine.list_executions(prompt_id=greet)
    assert [e.id for e in mine] == list(reversed(ids))
    page = engine.list_executions(prompt_id=greet.id, limit=2)
    assert len(page) == 2 and page.next_cursor
    nxt = engine.list_executions(prompt_id=greet.id, limit=2, cursor=page.next_cursor)
    assert [e.id for e in nxt] == list(reversed(ids))[2:4]
    assert len(engine.list_executions(status="COMPLETED")) == 6
    assert len(engine.list_executions(status="FAILED")) == 0
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    assert len(engine.list_executions(since=future)) == 0
    assert len(engine.list_executions(until=future)) == 6


def test_cancel_a_queued_execution() -> None:
    with formaops.Engine.open(mock_latency_ms=500, concurrency=1) as e:
        p = e.create_prompt(name=unique(), template="x")
        running = e.submit(p.id)
        queued = e.submit(p.id)
        cancelled = e.cancel(queued.id)
        assert cancelled.status == "CANCELLED"
        assert e.wait(running.id).status == "COMPLETED"
        assert e.get_execution(queued.id).status == "CANCELLED"


def test_metrics(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    for i in range(3):
        engine.execute(greet.id, {"who": str(i)})
    report = engine.metrics()
    assert isinstance(report, formaops.MetricsReport)
    assert report.counts.completed == 3 and report.counts.total == 3
    assert report.tokens.total > 0 and report.cost_usd > 0
    assert report.latency_ms.p50 is not None
    assert [m.prompt_id for m in report.by_prompt] == [greet.id]
    scoped = engine.metrics(prompt_id=greet.id, version=1)
    assert scoped.counts.total == 3
    assert engine.metrics(prompt_id=greet.id, version=2).counts.total == 0
    assert report.to_dict()["counts"]["completed"] == 3


def test_users_are_isolated() -> None:
    # Two engines on one store are not possible with memory://, so use two users on SQLite.
    import tempfile, os

    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{os.path.join(d, 'iso.db')}"
        with formaops.Engine.open(url, user="ann@example.com") as ann:
            p = ann.create_prompt(name="shared-name", template="x")
            r = ann.execute(p.id)
        with formaops.Engine.open(url, user="bob@example.com") as bob:
            assert bob.user_id != ann.user_id and bob.user_email == "bob@example.com"
            with pytest.raises(formaops.NotFoundError):
                bob.get_prompt(p.id)
            with pytest.raises(formaops.NotFoundError):
                bob.get_execution(r.id)
            assert bob.list_prompts().items == []
            bob.create_prompt(name="shared-name", template="x")  # names are per user


def test_health(engine: formaops.Engine) -> None:
    h = engine.health()
    assert h["store_ok"] is True
    assert [p["name"] for p in h["providers"]] == ["mock"]


def test_metrics_per_label_and_series(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    engine.execute(greet.id, {"who": "a"}, label="production")
    plain = engine.execute(greet.id, {"who": "b"})
    assert plain.label is None
    report = engine.metrics(prompt_id=greet.id)
    assert [v.version for v in report.by_version] == [1]
    assert [m.label for m in report.by_label] == [None, "production"]
    assert report.by_label[1].share == 0.5 and report.by_label[1].counts.completed == 1
    series = engine.metrics_series("minute")
    assert isinstance(series, formaops.MetricsSeries) and series.bucket == "minute"
    assert sum(p.counts.completed for p in series.points) == 2
    assert series.points[0].latency_ms.p50 is not None
    labelled = engine.metrics_series("hour", prompt_id=greet.id, label="production")
    assert sum(p.counts.total for p in labelled.points) == 1
    with pytest.raises(formaops.ValidationError):
        engine.metrics_series("week")
