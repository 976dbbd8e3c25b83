"""Every core error reaches Python as the right exception, with its data."""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path

import pytest

import formaops
from conftest import unique


def test_hierarchy() -> None:
    for cls in (
        formaops.ValidationError,
        formaops.NotFoundError,
        formaops.ConflictError,
        formaops.ProviderError,
        formaops.UnavailableError,
    ):
        assert issubclass(cls, formaops.FormaOpsError)
        assert cls.__module__ == "formaops"
    assert issubclass(formaops.FormaOpsError, Exception)
    # attributes exist even on instances raised by user code
    assert formaops.ValidationError("x").problems == ()
    assert formaops.ProviderError("x").transient is False


def test_missing_things_are_not_found(engine: formaops.Engine) -> None:
    missing = str(uuid.uuid4())
    for call in (
        lambda: engine.get_prompt(missing),
        lambda: engine.update_prompt(missing, template="x"),
        lambda: engine.archive_prompt(missing),
        lambda: engine.versions(missing),
        lambda: engine.render(missing, {}),
        lambda: engine.execute(missing, {}),
        lambda: engine.get_execution(missing),
        lambda: engine.retry(missing),
        lambda: engine.cancel(missing),
        lambda: engine.wait(missing, timeout=0.1),
    ):
        with pytest.raises(formaops.NotFoundError):
            call()


def test_a_missing_version_is_not_found(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    with pytest.raises(formaops.NotFoundError):
        engine.get_prompt(greet.id, version=9)


def test_malformed_arguments_name_the_field(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    cases = [
        (lambda: engine.get_prompt("not-a-uuid"), "prompt_id"),
        (lambda: engine.get_execution("nope"), "execution_id"),
        (lambda: engine.execute(greet.id, {"who": "x"}, priority="URGENT"), "priority"),
        (lambda: engine.list_prompts(limit=0), "limit"),
        (lambda: engine.list_prompts(limit=100_000), "limit"),
        (lambda: engine.list_prompts(cursor="garbage"), "cursor"),
        (lambda: engine.list_executions(status="DONE"), "status"),
        (lambda: engine.get_prompt(greet.id, version=0), "version"),
        (lambda: engine.wait(str(uuid.uuid4()), timeout=-1), "timeout"),
        (lambda: engine.metrics(version=1), "version"),
    ]
    for call, field in cases:
        with pytest.raises(formaops.ValidationError) as info:
            call()
        assert [p["field"] for p in info.value.problems] == [field], info.value


def test_invalid_prompt_definitions(engine: formaops.Engine) -> None:
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_prompt(name=unique(), template="{{ unclosed")
    assert info.value.problems[0]["field"] == "template"
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_prompt(name=unique(), template="x", variables=[{"name": "a", "type": "colour"}])
    assert info.value.problems[0]["field"] == "variables"
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_prompt(name=unique(), template="x", validations=[{"type": "regex", "pattern": "("}])
    assert info.value.problems


def test_duplicate_name_conflicts(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    with pytest.raises(formaops.ConflictError):
        engine.create_prompt(name=greet.name, template="again")


def test_retry_and_cancel_of_a_completed_execution_conflict(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    done = engine.execute(greet.id, {"who": "Ada"})
    assert done.status == "COMPLETED"
    with pytest.raises(formaops.ConflictError):
        engine.retry(done.id)
    with pytest.raises(formaops.ConflictError):
        engine.cancel(done.id)


def test_idempotency_key_reused_with_other_inputs_conflicts(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    engine.execute(greet.id, {"who": "Ada"}, idempotency_key="k1")
    with pytest.raises(formaops.ConflictError):
        engine.execute(greet.id, {"who": "Bob"}, idempotency_key="k1")


def test_inputs_must_be_json_compatible(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    with pytest.raises(TypeError, match="inputs.who"):
        engine.validate_inputs(greet.id, {"who": object()})
    with pytest.raises(ValueError, match="finite"):
        engine.validate_inputs(greet.id, {"who": math.nan})
    with pytest.raises(TypeError, match="keys must be str"):
        engine.validate_inputs(greet.id, {1: "x"})  # type: ignore[dict-item]
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        engine.validate_inputs(greet.id, {"who": deep})
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="nested deeper"):
        engine.validate_inputs(greet.id, {"who": cyclic})
    with pytest.raises(ValueError, match="64-bit"):
        engine.validate_inputs(greet.id, {"who": 2**80})


def test_closed_engine_is_unavailable() -> None:
    e = formaops.Engine.open()
    e.close()
    e.close()  # idempotent
    assert e.closed
    with pytest.raises(formaops.UnavailableError):
        e.list_prompts()


def test_bad_open_arguments() -> None:
    with pytest.raises(formaops.ValidationError) as info:
        formaops.Engine.open(user="not an email")
    assert info.value.problems[0]["field"] == "user"
    with pytest.raises(formaops.ValidationError):
        formaops.Engine.open(provider="no-such-provider")
    with pytest.raises(formaops.ValidationError):
        formaops.Engine.open(max_attempts=0)
    with pytest.raises(formaops.FormaOpsError):
        formaops.Engine.open("mysql://nope")


def test_problems_name_fields_as_python_spells_them(engine: formaops.Engine) -> None:
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_prompt(
            name=unique(), template="{{ n }}", variables=[{"name": "n", "type": "integer", "default_value": "x"}]
        )
    assert [p["field"] for p in info.value.problems] == ["variables[0].default_value"]
    assert "defaultValue" not in str(info.value)
    assert "variables[0].default_value" in str(info.value)
    # serde's complaint about an unknown key names the keys in snake_case too.
    with pytest.raises(formaops.ValidationError) as info:
        engine.create_prompt(name=unique(), template="x", variables=[{"name": "n", "type": "string", "max_lenght": 3}])
    message = info.value.problems[0]["message"]
    assert "`max_lenght`" in message and "`max_length`" in message and "maxLength" not in message, message
    # Input names are the user's own: kept as written.
    prompt = engine.create_prompt(
        name=unique(), template="{{ myVar }}", variables=[{"name": "myVar", "type": "integer", "required": True}]
    )
    with pytest.raises(formaops.ValidationError) as info:
        engine.validate_inputs(prompt.id, {"myVar": "x"})
    assert info.value.problems[0]["field"] == "inputs.myVar"


def test_a_missing_sqlite_directory_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(formaops.FormaOpsError) as info:
        formaops.Engine.open(f"sqlite:///{missing}/x.db")  # absolute: sqlite:////tmp/...
    message = str(info.value)
    assert "internal error" not in message
    assert f"{missing} does not exist: create it first" in message, message
    assert message.startswith("invalid database url: the directory "), message


def test_a_missing_postgres_database_says_what_to_do() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("DATABASE_URL not set")
    name = f"formaops_missing_{uuid.uuid4().hex[:8]}"
    base = url.split("?")[0].rpartition("/")[0]
    with pytest.raises(formaops.FormaOpsError) as info:
        formaops.Engine.open(f"{base}/{name}")
    message = str(info.value)
    assert "internal error" not in message and "3D000" not in message, message
    assert f'database "{name}" does not exist: create it with `createdb {name}`' in message, message
