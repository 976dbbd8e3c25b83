"""A tiny OpenAI-compatible chat-completions server with injectable faults.

It answers ``POST /v1/chat/completions`` (and ``/chat/completions``), plain or streamed
(``"stream": true`` -> server-sent events), and records every request: which execution it
belonged to (the ``TAG[...]`` marker the tests put in the prompt), when it started and ended,
and what it answered. Faults, at ``fault_rate``, are drawn from ``faults``:

- ``429``: HTTP 429 with ``Retry-After: <retry_after>`` seconds;
- ``500`` / ``503``: an OpenAI-style error body;
- ``timeout``: the reply is held ``hang_seconds`` (longer than the client's attempt timeout);
- ``truncated``: a stream cut before ``[DONE]`` (or a body shorter than its Content-Length);
- ``invalid_json``: HTTP 200 with a body that is not JSON.

Only the standard library is used; it runs in a thread of the test process.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TAG_RE = re.compile(r"TAG\[([A-Za-z0-9_.:-]{1,80})\]")
ALL_FAULTS = ("429", "500", "503", "timeout", "truncated", "invalid_json")


@dataclass
class Call:
    tag: str | None
    started: float
    ended: float = 0.0
    kind: str = "ok"  # "ok" or a fault name
    stream: bool = False
    retry_after: float | None = None


@dataclass
class FakeConfig:
    latency: tuple[float, float] = (0.0, 0.0)
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ALL_FAULTS
    retry_after: float = 1.0
    hang_seconds: float = 10.0
    seed: int = 7


@dataclass
class FakeOpenAI:
    config: FakeConfig = field(default_factory=FakeConfig)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.config.seed)
        self._counter = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}'
                self._send(200, body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, 10 * 1024 * 1024))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')
                    return
                try:
                    req = json.loads(raw)
                except ValueError:
                    self._send(400, b'{"error":{"message":"bad json","type":"invalid_request_error"}}')
                    return
                fake._handle(self, req)

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)

    # ----- lifecycle -----
    def start(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def calls_for(self, tag: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.tag == tag]

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    # ----- behaviour -----
    def _draw(self) -> tuple[str, float]:
        with self._lock:
            self._counter += 1
            cfg = self.config
            lo, hi = cfg.latency
            latency = self._rng.uniform(lo, hi) if hi > 0 else 0.0
            if cfg.fault_rate > 0 and self._rng.random() < cfg.fault_rate:
                return self._rng.choice(cfg.faults), latency
            return "ok", latency

    def _handle(self, h: BaseHTTPRequestHandler, req: dict) -> None:
        text = json.dumps(req.get("messages", []))
        m = TAG_RE.search(text)
        call = Call(tag=m.group(1) if m else None, started=time.time(), stream=bool(req.get("stream")))
        kind, latency = self._draw()
        call.kind = kind
        with self._lock:
            self.calls.append(call)
        try:
            if latency:
                time.sleep(latency)
            self._reply(h, req, call, kind)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        finally:
            call.ended = time.time()

    def _reply(self, h, req: dict, call: Call, kind: str) -> None:
        model = req.get("model", "gpt-4o-mini")
        cfg = self.config
        if kind == "429":
            call.retry_after = cfg.retry_after
            h._send(429, _err("Rate limit reached", "rate_limit_exceeded"), {"Retry-After": _fmt(cfg.retry_after)})
        elif kind in ("500", "503"):
            h._send(int(kind), _err(f"injected {kind}", "server_error"))
        elif kind == "timeout":
            time.sleep(cfg.hang_seconds)
            h._send(504, _err("upstream timeout (after hang)", "timeout"))
        elif kind == "invalid_json":
            h._send(200, b'{"id": "chatcmpl-x", "choices": [ {"message": ')
        elif kind == "truncated":
            if call.stream:
                h.send_response(200)
                h.send_header("Content-Type", "text/event-stream")
                h.send_header("Connection", "close")
                h.end_headers()
                h.wfile.write(b"data: " + json.dumps(_chunk(model, "partial ")).encode() + b"\n\n")
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
            else:
                body = json.dumps(_completion(model, "cut")).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body) + 100))
                h.end_headers()
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
        else:
            content = f"ok TAG[{call.tag}] at {call.started:.3f}"
            if call.stream:
                h.send_response(200)
                h.send_header("Content-Type", "text/event-stream")
                h.send_header("Cache-Control", "no-cache")
                h.send_header("Connection", "close")
                h.end_headers()
                for piece in (content[:8], content[8:]):
                    h.wfile.write(b"data: " + json.dumps(_chunk(model, piece)).encode() + b"\n\n")
                final = _chunk(model, "", finish="stop")
                h.wfile.write(b"data: " + json.dumps(final).encode() + b"\n\n")
                usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                         "model": model, "choices": [], "usage": _usage()}
                h.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
                h.wfile.write(b"data: [DONE]\n\n")
                h.wfile.flush()
                h.close_connection = True
            else:
                h._send(200, json.dumps(_completion(model, content)).encode())


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"


def _err(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": code, "param": None, "code": code}}).encode()


def _usage() -> dict:
    return {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def _completion(model: str, content: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": _usage(),
    }


def _chunk(model: str, content: str, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
