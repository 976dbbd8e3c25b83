"""Starts the real `formaops` binary (in-memory SQLite, the zero-config mock provider,
`mock-fail` and a streaming mock) on a free loopback port, and gives the tests an API key of its admin."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "sdk@example.com"
PASSWORD = "openai-sdk-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")


# A mock that streams its reply in pieces over 300 ms (the engine's `partial` events).
STREAMING_PROVIDER = "mock-stream"
CONFIG = f"""
[providers.{STREAMING_PROVIDER}]
kind = "mock"
stream = true
latency_ms = 300
"""


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = os.environ.get("FORMAOPS_BIN", str(ROOT / "target" / "debug" / "formaops"))
    port = _free_port()
    config = tmp_path_factory.mktemp("formaops") / "formaops.toml"
    config.write_text(CONFIG)
    env = dict(os.environ, FORMAOPS_ADMIN_EMAIL=EMAIL, FORMAOPS_ADMIN_PASSWORD=PASSWORD)
    env["FORMAOPS_CONFIG"] = str(config)
    proc = subprocess.Popen(
        [binary, "--database-url", "sqlite://", "--bind", f"127.0.0.1:{port}", "--mock-fail-provider", "true"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    srv = Server(f"http://127.0.0.1:{port}")
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError(f"formaops exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                srv.call("GET", "/api/health")
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("formaops did not answer /api/health within 10 s")
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def api_key(server: Server) -> str:
    session = server.call("POST", "/api/auth/login", body={"email": EMAIL, "password": PASSWORD})["token"]
    return server.call("POST", "/api/auth/keys", session, {"name": "openai-sdk"})["token"]
