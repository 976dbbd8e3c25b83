"""Shared fixtures: engines on the in-memory store with the mock provider, SQLite files,
and Postgres when DATABASE_URL names a server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from typing import Iterator, Optional

import pytest

import formaops

GREET = "Say hello to {{ who }}{% if excited %}!{% endif %}"
GREET_VARIABLES = [
    {"name": "who", "type": "string", "required": True, "description": "who to greet"},
    {"name": "excited", "type": "boolean", "required": False, "default_value": False},
]


def unique(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine() -> Iterator[formaops.Engine]:
    """A fresh in-memory engine with the instant mock provider."""
    with formaops.Engine.open() as e:
        yield e


@pytest.fixture
def slow_engine() -> Iterator[formaops.Engine]:
    """Mock provider answering after 400 ms, one call at a time."""
    with formaops.Engine.open(mock_latency_ms=400, concurrency=1) as e:
        yield e


@pytest.fixture
def greet(engine: formaops.Engine) -> formaops.Prompt:
    return engine.create_prompt(name=unique("greet"), template=GREET, variables=GREET_VARIABLES)


def _create_database(url: str) -> Optional[str]:
    """A fresh database on the server of `url` (via psql when available), else None."""
    psql = shutil.which("psql")
    if psql is None:
        return None
    name = f"formaops_py_{uuid.uuid4().hex[:10]}"
    done = subprocess.run(
        [psql, url, "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {name}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"could not create a database with psql: {done.stderr.strip()}", file=sys.stderr)
        return None
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A Postgres URL for this run: a fresh database on DATABASE_URL's server when psql can
    create one, else DATABASE_URL itself (tests scope their data by a unique user)."""
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith(("postgres://", "postgresql://")):
        message = (
            "\n!!! DATABASE_URL is not set: the Postgres tests of the Python suite are SKIPPED.\n"
            "!!! CI sets it; set it locally to run them (postgres://user@host:port/db).\n"
        )
        print(message, file=sys.stderr)
        if os.environ.get("CI"):
            pytest.fail("DATABASE_URL must be set in CI")
        pytest.skip("DATABASE_URL not set (Postgres tests skipped, see the notice above)")
    fresh = _create_database(url)
    yield fresh or url
    if fresh:
        psql = shutil.which("psql")
        name = fresh.rpartition("/")[2]
        if psql:
            subprocess.run([psql, url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
