"""Providers from Python: mock latency, replies and faults; an OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, Iterator, List

import pytest

import formaops
from conftest import unique


def test_transient_faults_are_retried() -> None:
    with formaops.Engine.open(mock_faults=[{"fault": "server_error", "status": 503, "first": 1}]) as e:
        p = e.create_prompt(name=unique(), template="x")
        r = e.execute(p.id)
        assert r.status == "COMPLETED" and r.attempts == 2 and r.error is None


def test_permanent_faults_fail_and_retry_reruns() -> None:
    with formaops.Engine.open(mock_faults=[{"fault": "bad_request", "calls": [0]}]) as e:
        p = e.create_prompt(name=unique(), template="x")
        failed = e.execute(p.id)
        assert failed.status == "FAILED" and failed.attempts == 1
        assert failed.error is not None
        assert failed.error.code == "bad_request" and failed.error.transient is False
        again = e.retry(failed)
        assert again.id != failed.id and again.retry_of == failed.id
        assert e.wait(again.id).status == "COMPLETED"
        assert len(e.list_executions(status="FAILED")) == 1


def test_attempts_are_bounded_by_max_attempts() -> None:
    with formaops.Engine.open(max_attempts=1, mock_faults=[{"fault": "connection", "rate": 1.0}]) as e:
        p = e.create_prompt(name=unique(), template="x")
        r = e.execute(p.id)
        assert r.status == "FAILED" and r.attempts == 1 and r.max_attempts == 1
        assert r.error is not None and r.error.transient is True


def test_timeout_fault_hangs_as_long_as_asked() -> None:
    import time

    with formaops.Engine.open(mock_faults=[{"fault": "timeout", "first": 1, "after": 0.05}]) as e:
        p = e.create_prompt(name=unique(), template="x")
        started = time.monotonic()
        r = e.execute(p.id)
        assert r.status == "COMPLETED" and r.attempts == 2
        assert time.monotonic() - started < 10, "the timeout fault waited for the deadline"


def test_mock_options_are_checked() -> None:
    cases: List[Dict[str, Any]] = [
        {"mock_faults": [{"fault": "nope", "first": 1}]},
        {"mock_faults": [{"fault": "timeout"}]},
        {"mock_faults": [{"fault": "timeout", "first": 1, "typo": 2}]},
        {"mock_faults": [{"fault": "server_error", "status": 404, "first": 1}]},
        {"mock_faults": [{"fault": "timeout", "first": 1, "after": -1}]},
        {"mock_latency_ms": 10**9},
        {"api_key": "k"},  # not for the mock
    ]
    for kwargs in cases:
        with pytest.raises(formaops.ValidationError):
            formaops.Engine.open(**kwargs)


class _FakeOpenAI(BaseHTTPRequestHandler):
    requests: List[Dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        reply = {
            "id": "c1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    _FakeOpenAI.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_base_url(fake_openai: str) -> None:
    with formaops.Engine.open(provider="openai", base_url=fake_openai, api_key="sk-test-secret") as e:
        assert "sk-test-secret" not in repr(e)
        p = e.create_prompt(name=unique(), template="Say hello in {{ lang }}", variables=[{"name": "lang", "type": "string", "required": True}])
        r = e.execute(p.id, {"lang": "French"})
        assert r.status == "COMPLETED", r.error
        assert r.output == "Bonjour" and r.provider == "openai"
        assert r.metrics is not None and r.metrics.token_usage.input == 11 and r.metrics.token_usage.output == 2
        sent = _FakeOpenAI.requests[-1]
        assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test-secret"
        assert sent["body"]["messages"][-1] == {"role": "user", "content": "Say hello in French"}
        # the mock stays available by name
        m = e.create_prompt(name=unique(), template="echo", provider="mock")
        assert e.execute(m.id).output == "echo"
