"""Fixtures: the throwaway Postgres cluster, the fault-injecting fake provider, servers, users."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from fake_openai import FakeConfig, FakeOpenAI  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full: long tests (crash loop, outage, SIGTERM, soak); `reliability.sh full`")


@pytest.fixture(scope="session", autouse=True)
def formaops_binary() -> Path:
    b = harness.binary()
    if not b.exists():
        pytest.exit(f"{b} is missing: build it with `cargo build --release -p formaops-http --bin formaops`", 2)
    return b


@pytest.fixture(scope="session")
def pg():
    """One private cluster for the quick tests (they never stop it)."""
    cluster = harness.PgCluster("shared").init()
    yield cluster
    cluster.destroy()


@pytest.fixture
def own_pg():
    """A private cluster for a test that stops or kills things."""
    cluster = harness.PgCluster("own").init()
    yield cluster
    cluster.destroy()


@pytest.fixture
def fake():
    f = FakeOpenAI(FakeConfig(latency=(0.0, 0.02))).start()
    yield f
    f.stop()


def provider_env(fake: FakeOpenAI, extra: dict[str, str] | None = None, timeout_ms: int | None = None,
                 concurrency: int = 16) -> dict[str, str]:
    """Environment that points the server's `openai` provider at the fake, through a config
    file (`[llm.providers.openai]`) so the per-call timeout can be short."""
    import uuid

    cfg = harness.RUNS / f"formaops-{uuid.uuid4().hex[:8]}.toml"
    harness.RUNS.mkdir(parents=True, exist_ok=True)
    lines = ["[llm]", 'default = "openai"', "[llm.providers.openai]", 'kind = "openai"',
             f'base_url = "{fake.base_url}"', 'api_key = "sk-reliability-fake"', f"concurrency = {concurrency}"]
    if timeout_ms:
        lines.append(f"timeout_ms = {timeout_ms}")
    cfg.write_text("\n".join(lines) + "\n")
    env = {"FORMAOPS_CONFIG": str(cfg)}
    env.update(extra or {})
    return env


class Node:
    """A started server with two logged-in users."""

    def __init__(self, server: harness.Server, db_url: str) -> None:
        self.server = server
        self.db_url = db_url
        self.anon = harness.Api(server.url)
        self.alice_email = "alice@rel.test"
        self.bob_email = "bob@rel.test"
        self.alice = harness.Api(server.url)
        self.alice.login(self.alice_email)
        self.bob = harness.Api(server.url)
        self.bob.login(self.bob_email)


def make_node(pg: harness.PgCluster, fake: FakeOpenAI, name: str, env: dict[str, str] | None = None,
              timeout_ms: int | None = None) -> Node:
    db = pg.create_db(name)
    harness.migrate(db)
    harness.create_user(db, "alice@rel.test")
    harness.create_user(db, "bob@rel.test")
    server = harness.Server(db, name, provider_env(fake, env, timeout_ms=timeout_ms)).start()
    return Node(server, db)


@pytest.fixture
def node(pg, fake, request):
    n = make_node(pg, fake, request.node.name.split("[")[0][:40])
    yield n
    n.server.stop()


@pytest.fixture(scope="module")
def module_fake():
    f = FakeOpenAI(FakeConfig(latency=(0.0, 0.02))).start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def module_node(pg, module_fake, request):
    n = make_node(pg, module_fake, Path(str(request.module.__file__)).stem)
    yield n
    n.server.stop()


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default
