"""Every argument of every method checks its Python type: a value of the wrong type is a
TypeError naming the argument and the type expected (never a ValueError from deep inside,
never silently accepted)."""

from __future__ import annotations

import asyncio
import inspect
import types
from datetime import datetime
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

import formaops
from conftest import GREET, GREET_VARIABLES, unique

# Wrong values of each kind of argument, and a word the TypeError must use for the type expected.
WRONG: Dict[str, Tuple[List[Any], str]] = {
    "id": ([42, 1.5, b"abc", ["x"], None], "str"),
    "optional id": ([42, b"abc", ["x"]], "str"),
    "str": ([42, 1.5, b"abc", ["x"], {"a": 1}], "str"),
    "required str": ([42, None, b"abc"], "str"),
    "int": (["2", 1.5, True, [1]], "int"),
    "bool": ([1, "yes", [True]], "bool"),
    "seconds": (["5", True, [1]], "seconds"),
    "datetime": (["2024-01-01", 1_700_000_000, datetime(2024, 1, 1)], "datetime"),
    "mapping": ([["s", "x"], "s=x", [("s", "x")], 42, {"s"}, b"s=x"], "mapping"),
    "list of mappings": (["abc", {"name": "x"}, 42, ["x"], [42], [("name", "x")]], "mapping"),
    "model": ([42, ["gpt-4o"], 1.5], "str"),
    "list of str": (["abc", 42, [42]], "list"),
    "version or label": ([1.5, b"abc", [1], True], "int"),
    "required int": (["2", 1.5, True, [1], None], "int"),
    "path": ([42, ["prices.toml"], b"prices.toml"], "path"),
    "versions": (["staging", 42, [1.5], [b"x"], [True], None], "int"),
}

# method -> {argument: kind}. The valid values of the other arguments come from `base_args`.
ARGUMENTS: Dict[str, Dict[str, str]] = {
    "open": {
        "url": "str",
        "provider": "str",
        "base_url": "str",
        "api_key": "str",
        "user": "str",
        "mock_latency_ms": "int",
        "mock_reply": "str",
        "mock_faults": "list of mappings",
        "max_attempts": "int",
        "execution_timeout": "seconds",
        "concurrency": "int",
        "prices_file": "path",
        "durability": "str",
    },
    "close": {"grace": "seconds"},
    "create_prompt": {
        "name": "required str",
        "template": "required str",
        "description": "str",
        "system_template": "str",
        "variables": "list of mappings",
        "validations": "list of mappings",
        "model": "model",
        "parameters": "mapping",
        "provider": "str",
        "labels": "list of str",
    },
    "update_prompt": {
        "prompt_id": "id",
        "name": "str",
        "description": "str",
        "template": "str",
        "system_template": "str",
        "variables": "list of mappings",
        "validations": "list of mappings",
        "model": "model",
        "parameters": "mapping",
        "provider": "str",
        "expected_version": "int",
    },
    "get_prompt": {"prompt_id": "id", "version": "int", "label": "str"},
    "set_label": {"prompt_id": "id", "name": "required str", "version": "required int"},
    "delete_label": {"prompt_id": "id", "name": "required str"},
    "labels": {"prompt_id": "id"},
    "label_history": {"prompt_id": "id", "label": "str"},
    "set_promotion_guard": {"prompt_id": "id", "enabled": "bool"},
    "diff": {"prompt_id": "id", "from_": "version or label", "to": "version or label"},
    "list_prompts": {"status": "str", "limit": "int", "cursor": "str"},
    "versions": {"prompt_id": "id", "limit": "int", "cursor": "str"},
    "archive_prompt": {"prompt_id": "id"},
    "validate_inputs": {"prompt_id": "id", "inputs": "mapping", "version": "int"},
    "render": {"prompt_id": "id", "inputs": "mapping", "version": "int"},
    "wait": {"execution_id": "id", "timeout": "seconds"},
    "retry": {"execution_id": "id"},
    "cancel": {"execution_id": "id"},
    "get_execution": {"execution_id": "id"},
    "list_executions": {
        "status": "str",
        "prompt_id": "optional id",
        "since": "datetime",
        "until": "datetime",
        "limit": "int",
        "cursor": "str",
    },
    "metrics": {"since": "datetime", "until": "datetime", "prompt_id": "optional id", "version": "int"},
    "metrics_series": {
        "bucket": "required str",
        "since": "datetime",
        "until": "datetime",
        "prompt_id": "optional id",
        "version": "int",
        "label": "str",
    },
    "events": {"execution_id": "optional id", "timeout": "seconds"},
    "create_dataset": {"name": "required str", "rows": "list of mappings"},
    "create_dataset_from_executions": {
        "name": "required str",
        "prompt_id": "id",
        "status": "str",
        "version": "int",
        "since": "datetime",
        "until": "datetime",
        "limit": "int",
        "expected_from_output": "bool",
    },
    "datasets": {"limit": "int", "cursor": "str"},
    "get_dataset": {"dataset_id": "id"},
    "dataset_rows": {"dataset_id": "id", "limit": "int", "cursor": "str"},
    "delete_dataset": {"dataset_id": "id"},
    "start_experiment": {
        "prompt_id": "id",
        "dataset_id": "id",
        "versions": "versions",
        "priority": "str",
        "concurrency": "int",
        "match": "str",
        "validate_output": "bool",
    },
    "get_experiment": {"experiment_id": "id"},
    "experiments": {"limit": "int", "cursor": "str"},
    "experiment_results": {"experiment_id": "id"},
    "cancel_experiment": {"experiment_id": "id"},
    "follow_experiment": {"experiment_id": "id"},
}
_EXECUTE = {
    "prompt_id": "id",
    "inputs": "mapping",
    "version": "int",
    "priority": "str",
    "validate_output": "bool",
    "idempotency_key": "str",
    "label": "str",
}
for _name in ("execute", "submit"):
    ARGUMENTS[_name] = dict(_EXECUTE)
# An `_async` twin takes the arguments of its blocking method.
for _name in list(ARGUMENTS):
    if hasattr(formaops.Engine, f"{_name}_async"):
        ARGUMENTS[f"{_name}_async"] = dict(ARGUMENTS[_name])


def _cases() -> Iterator[Any]:
    for method, arguments in ARGUMENTS.items():
        for argument, kind in arguments.items():
            values, word = WRONG[kind]
            for i, value in enumerate(values):
                yield pytest.param(method, argument, value, word, id=f"{method}-{argument}-{i}")


class Ids:
    prompt: str
    execution: str
    dataset: str
    experiment: str


@pytest.fixture(scope="module")
def shared() -> Iterator[Tuple[formaops.Engine, Ids]]:
    with formaops.Engine.open() as engine:
        ids = Ids()
        prompt = engine.create_prompt(name=unique("args"), template=GREET, variables=GREET_VARIABLES)
        ids.prompt = prompt.id
        ids.execution = engine.execute(prompt.id, {"who": "Ada"}).id
        ids.dataset = engine.create_dataset(unique("args"), [{"inputs": {"who": "Ada"}}])["id"]
        ids.experiment = engine.start_experiment(prompt.id, ids.dataset, [1])["id"]
        for _ in engine.follow_experiment(ids.experiment):
            pass
        yield engine, ids


def base_args(method: str, ids: Ids) -> Dict[str, Any]:
    """Valid arguments for `method` or its `_async` twin (so only the one under test is wrong)."""
    by_prompt = {"prompt_id": ids.prompt}
    with_inputs = {"prompt_id": ids.prompt, "inputs": {"who": "Ada"}}
    return {
        "create_prompt": {"name": unique("args"), "template": "x"},
        "validate_inputs": with_inputs,
        "render": with_inputs,
        "execute": with_inputs,
        "submit": with_inputs,
        "update_prompt": by_prompt,
        "get_prompt": by_prompt,
        "set_label": {"prompt_id": ids.prompt, "name": "staging", "version": 1},
        "delete_label": {"prompt_id": ids.prompt, "name": "staging"},
        "labels": by_prompt,
        "label_history": by_prompt,
        "set_promotion_guard": {"prompt_id": ids.prompt, "enabled": False},
        "diff": {"prompt_id": ids.prompt, "from_": 1, "to": 1},
        "versions": by_prompt,
        "archive_prompt": by_prompt,
        "wait": {"execution_id": ids.execution},
        "retry": {"execution_id": ids.execution},
        "cancel": {"execution_id": ids.execution},
        "get_execution": {"execution_id": ids.execution},
        "create_dataset": {"name": unique("args"), "rows": [{"inputs": {"who": "Ada"}}]},
        "create_dataset_from_executions": {"name": unique("args"), "prompt_id": ids.prompt},
        "get_dataset": {"dataset_id": ids.dataset},
        "dataset_rows": {"dataset_id": ids.dataset},
        "delete_dataset": {"dataset_id": ids.dataset},
        "start_experiment": {"prompt_id": ids.prompt, "dataset_id": ids.dataset, "versions": [1]},
        "get_experiment": {"experiment_id": ids.experiment},
        "experiment_results": {"experiment_id": ids.experiment},
        "cancel_experiment": {"experiment_id": ids.experiment},
        "follow_experiment": {"experiment_id": ids.experiment},
        "metrics_series": {"bucket": "hour", "prompt_id": ids.prompt},
    }.get(method.removesuffix("_async"), {})


def call(engine: formaops.Engine, method: str, kwargs: Dict[str, Any]) -> Any:
    if method in ("open", "open_async"):
        target: Callable[..., Any] = getattr(formaops.Engine, method)
    elif method in ("close", "close_async"):
        # A throwaway engine, so the shared one stays open.
        target = getattr(formaops.Engine.open(), method)
    else:
        target = getattr(engine, method)
    result = target(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    return result


@pytest.mark.parametrize("method,argument,value,word", list(_cases()))
def test_a_wrong_type_is_a_type_error_naming_the_argument(
    shared: Tuple[formaops.Engine, Ids], method: str, argument: str, value: Any, word: str
) -> None:
    engine, ids = shared
    kwargs = base_args(method, ids)
    kwargs[argument] = value
    with pytest.raises(TypeError) as info:
        call(engine, method, kwargs)
    message = str(info.value)
    assert message.startswith(argument), message
    assert word in message, message


def test_every_public_method_and_argument_is_covered() -> None:
    methods = {
        name: member
        for name, member in inspect.getmembers(formaops.Engine)
        if not name.startswith("_") and callable(member) and name not in ("health", "health_async")
    }
    assert set(methods) == set(ARGUMENTS), set(methods) ^ set(ARGUMENTS)
    for name, member in methods.items():
        params = [p for p in inspect.signature(member).parameters if p not in ("self", "cls")]
        assert set(params) == set(ARGUMENTS[name]), (name, set(params) ^ set(ARGUMENTS[name]))


def test_the_reported_cases(engine: formaops.Engine) -> None:
    prompt = engine.create_prompt(
        name=unique(), template="{{ s }}", variables=[{"name": "s", "type": "string", "required": True}]
    )
    for inputs in (["s", "x"], "s=x", [("s", "x")], 42):
        with pytest.raises(TypeError, match=r"^inputs must be a mapping \(dict\) of variable names to values, not "):
            engine.execute(prompt.id, inputs)  # type: ignore[arg-type]


def test_any_mapping_and_sequence_is_accepted(engine: formaops.Engine) -> None:
    variables = (types.MappingProxyType({"name": "who", "type": "string", "required": True}),)
    prompt = engine.create_prompt(name=unique(), template="Hi {{ who }}", variables=variables)
    done = engine.execute(prompt.id, types.MappingProxyType({"who": "Ada"}))
    assert done.status == "COMPLETED"
    assert done.inputs == {"who": "Ada"}


def test_right_type_wrong_value_is_a_validation_error(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    cases = [
        (lambda: formaops.Engine.open(mock_latency_ms=-1), "mock_latency_ms"),
        (lambda: formaops.Engine.open(concurrency=-2), "concurrency"),
        (lambda: engine.get_prompt(greet.id, version=2**80), "version"),
        (lambda: engine.update_prompt(greet.id, expected_version=0), "expected_version"),
    ]
    for run, field in cases:
        with pytest.raises(formaops.ValidationError) as info:
            run()
        assert [p["field"] for p in info.value.problems] == [field], info.value
