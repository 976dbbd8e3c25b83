"""Closing: a normal end of a `with` block waits for running calls (the grace period);
leaving it because of an exception, Ctrl-C included, does not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import formaops
from conftest import unique

SLOW_MS = 1500


def _wait_running(engine: formaops.Engine, execution_id: str) -> None:
    deadline = time.monotonic() + 10
    while engine.get_execution(execution_id).status != "RUNNING":
        assert time.monotonic() < deadline, "the execution never started"
        time.sleep(0.02)


def _start_slow_call(engine: formaops.Engine) -> str:
    prompt = engine.create_prompt(name=unique("slow"), template="slow")
    execution = engine.submit(prompt.id)
    _wait_running(engine, execution.id)
    return execution.id


def test_a_normal_exit_waits_for_running_calls() -> None:
    with formaops.Engine.open(mock_latency_ms=SLOW_MS) as engine:
        _start_slow_call(engine)
        left_at = time.monotonic()
    waited = time.monotonic() - left_at
    assert waited >= 0.5, f"closing waited only {waited:.2f} s for a call running {SLOW_MS} ms"


def test_an_exception_exit_does_not_wait(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/close.db"  # tmp_path is absolute: sqlite:////tmp/...
    with pytest.raises(RuntimeError, match="boom"):
        with formaops.Engine.open(url, mock_latency_ms=SLOW_MS) as engine:
            execution_id = _start_slow_call(engine)
            left_at = time.monotonic()
            raise RuntimeError("boom")
    waited = time.monotonic() - left_at
    assert waited < 0.5, f"leaving on an exception waited {waited:.2f} s"
    assert engine.closed
    # The abandoned call is not lost: it is still leased (RUNNING) in the store, for the
    # next engine's rescuer once the lease expires.
    with formaops.Engine.open(url) as again:
        assert again.get_execution(execution_id).status == "RUNNING"


def test_close_takes_a_grace_period() -> None:
    engine = formaops.Engine.open(mock_latency_ms=SLOW_MS)
    _start_slow_call(engine)
    started = time.monotonic()
    engine.close(grace=0.1)
    assert time.monotonic() - started < 0.8
    with pytest.raises(formaops.ValidationError):
        formaops.Engine.open().close(grace=-1)


CHILD = textwrap.dedent(
    """
    import formaops

    with formaops.Engine.open(mock_latency_ms=60_000) as engine:
        prompt = engine.create_prompt(name="slow", template="slow")
        print("ready", flush=True)
        engine.execute(prompt.id)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_inside_with_exits_promptly() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the call is running in the engine by now
        interrupted_at = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            _, stderr = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the process did not exit within 10 s of Ctrl-C")
        took = time.monotonic() - interrupted_at
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert "KeyboardInterrupt" in stderr, stderr
    assert child.returncode != 0
    assert took < 3, f"exited {took:.1f} s after Ctrl-C"
