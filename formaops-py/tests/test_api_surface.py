"""The stubs match the native module, the dataclasses match the native dicts and the REST
records, and the README's quickstart runs."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import typing
from datetime import datetime
from pathlib import Path

import pytest

import formaops
from formaops import _formaops
from conftest import unique

ROOT = Path(__file__).resolve().parents[2]


def test_stubs_match_the_native_module() -> None:
    pytest.importorskip("mypy", reason="mypy is installed by scripts/test.sh")
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "formaops._formaops"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_package_type_checks() -> None:
    pytest.importorskip("mypy", reason="mypy is installed by scripts/test.sh")
    package = Path(formaops.__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(package)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_open_async_takes_exactly_the_options_of_open(tmp_path: Path) -> None:
    sync = inspect.signature(formaops.Engine.open).parameters
    assert list(inspect.signature(formaops.Engine.open_async).parameters.values()) == list(sync.values())
    pytest.importorskip("mypy", reason="mypy is installed by scripts/test.sh")
    script = tmp_path / "misspelt.py"
    script.write_text(
        "import formaops\n\n"
        "async def main() -> None:\n"
        "    good = await formaops.Engine.open_async('memory://', mock_latency_ms=5, concurrency=2)\n"
        "    good.close()\n"
        "    await formaops.Engine.open_async('memory://', mock_latncy_ms=5)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(script)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'Unexpected keyword argument "mock_latncy_ms"' in done.stdout, done.stdout
    assert done.stdout.count("error:") == 1, done.stdout


def _fields(cls: type) -> set:
    return {f.name for f in dataclasses.fields(cls)}


def _assert_timestamps(cls: type, record: dict) -> None:
    """Every field the dataclass types as a ``datetime`` arrives as one (or None)."""
    for name, kind in typing.get_type_hints(cls).items():
        if kind in (datetime, typing.Optional[datetime]) and name in record:
            value = record[name]
            assert value is None or isinstance(value, datetime), f"{cls.__name__}.{name}: {value!r}"


def test_dataclasses_cover_every_native_field(engine: formaops.Engine) -> None:
    native = engine._native
    p = native.create_prompt(unique(), "Hi {{ a }}", variables=[{"name": "a", "type": "string", "required": True}])
    assert set(p) == _fields(formaops.Prompt)
    assert set(p["version"]) == _fields(formaops.PromptVersion)
    ex = native.execute(p["id"], {"a": "x"})
    assert set(ex) == _fields(formaops.Execution)
    assert set(ex["metrics"]) == _fields(formaops.ExecutionMetrics)
    assert set(ex["metrics"]["token_usage"]) == _fields(formaops.TokenUsage)
    report = native.metrics()
    assert set(report) == _fields(formaops.MetricsReport)
    assert set(report["by_prompt"][0]) == _fields(formaops.PromptMetrics)
    assert set(report["counts"]) == _fields(formaops.StatusCounts)
    assert set(report["tokens"]) == _fields(formaops.TokenTotals)
    assert set(report["latency_ms"]) == _fields(formaops.Percentiles)
    per_prompt = native.metrics(prompt_id=p["id"])
    assert set(per_prompt["by_version"][0]) == _fields(formaops.VersionMetrics)
    assert set(per_prompt["by_label"][0]) == _fields(formaops.LabelMetrics)
    series = native.metrics_series("minute")
    assert set(series["points"][0]) == _fields(formaops.SeriesPoint)
    for cls, record in [
        (formaops.Prompt, p), (formaops.PromptVersion, p["version"]), (formaops.Execution, ex),
        (formaops.MetricsReport, report), (formaops.MetricsSeries, series),
        (formaops.SeriesPoint, series["points"][0]),
    ]:
        _assert_timestamps(cls, record)
    events = native.events(None, timeout=5)
    native.submit(p["id"], {"a": "y"})
    ev = next(events)
    assert set(ev) <= _fields(formaops.Event)
    assert {f.name for f in dataclasses.fields(formaops.Event) if f.default is dataclasses.MISSING} <= set(ev)
    assert set(native.render(p["id"], {"a": "x"})[0]) == _fields(formaops.Message)


def test_metrics_records_lead_with_their_key() -> None:
    """The records share their summary fields; each keeps its key first (positional order)."""

    def names(cls: type) -> list:
        return [f.name for f in dataclasses.fields(cls)]

    summary = names(formaops.PromptMetrics)[1:]
    assert names(formaops.PromptMetrics)[0] == "prompt_id" and "counts" in summary
    assert names(formaops.VersionMetrics) == ["version", "share", *summary]
    assert names(formaops.LabelMetrics) == ["label", "share", *summary]
    assert names(formaops.SeriesPoint) == ["start", *summary]
    assert names(formaops.MetricsReport) == [
        "since", "until", *summary, "queue_depth", "by_prompt", "by_version", "by_label"
    ]


def _snake(key: str) -> str:
    """The Python spelling of a REST (camelCase) field name: ``promptVersion`` -> ``prompt_version``."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)


# The field names of each REST record, as the server sends them. Written and checked by the
# Rust test `rest_records_are_the_core_types_with_the_python_fields` (formaops-http/tests/router.rs),
# so a field added to, removed from or hidden in either REST or Python fails a test.
REST_FIELDS: dict = json.loads((Path(__file__).parent / "rest_fields.json").read_text())


@pytest.mark.parametrize("record", sorted(REST_FIELDS))
def test_dataclasses_have_the_rest_fields(record: str) -> None:
    assert {_snake(k) for k in REST_FIELDS[record]} == _fields(getattr(formaops, record))


def test_rest_fields_cover_the_records_python_returns() -> None:
    assert {"Execution", "Prompt", "PromptVersion", "MetricsReport"} <= set(REST_FIELDS)


def test_every_public_engine_method_is_in_the_stub() -> None:
    stub = (Path(formaops.__file__).parent / "_formaops.pyi").read_text()
    for name in dir(_formaops.NativeEngine):
        if not name.startswith("_"):
            assert f"def {name}(" in stub, name


def test_quickstart_example_runs() -> None:
    script = ROOT / "examples" / "python" / "quickstart.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "status: COMPLETED" in out
    for word in ("output:", "latency:", "tokens:", "cost:"):
        assert word in out, out
