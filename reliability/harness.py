"""Processes and clients for the reliability suite: a throwaway PostgreSQL cluster, the real
``formaops`` binary, and a small REST client.

Everything binds to 127.0.0.1 on free ports; every process started here is stopped by the
fixtures (and by the trap in scripts/reliability.sh if pytest itself dies).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
RUNS = Path(os.environ.get("RELIABILITY_RUN_DIR", ROOT / "reliability" / "runs" / "latest"))
# Starts, stops and removes throwaway clusters (PG_BIN, if set, names the server binaries).
PG_SH = ROOT / "scripts" / "lib" / "pg.sh"
PASSWORD = "correct horse battery staple 42"


def binary() -> Path:
    return Path(os.environ.get("FORMAOPS_BIN", ROOT / "target" / "release" / "formaops"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_path(name: str) -> Path:
    RUNS.mkdir(parents=True, exist_ok=True)
    return RUNS / f"{name}.log"


# --------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------
class PgCluster:
    """A private PostgreSQL cluster in a temp dir on a free port: stopping it hurts nobody.

    Started, stopped and removed by scripts/lib/pg.sh (the one copy of that logic, shared with
    scripts/test.sh; as root it runs the server as the `postgres` user)."""

    def __init__(self, name: str = "pg") -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"formaops-rel-{name}-"))
        self.data = self.dir / "data"
        self.port = free_port()
        # The server log lives in the cluster's own directory: the `postgres` user may not be
        # able to reach the checkout (a 0700 temp dir, say). `destroy` copies it to the run dir.
        self.log = self.dir / "postgres.log"

    def _pg(self, *args: str, check: bool = True, timeout: float = 120) -> None:
        out = subprocess.run(["bash", str(PG_SH), *args], capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(f"pg.sh {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")

    def init(self) -> "PgCluster":
        with open(RUNS / "pg_dirs.txt", "a") as f:
            f.write(f"{self.data}\n")
        self.start()
        return self

    def start(self) -> None:
        self._pg("start", str(self.dir), str(self.port))

    def stop(self, mode: str = "fast") -> None:
        self._pg("stop", str(self.dir), mode, check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        try:
            shutil.copy(self.log, log_path(f"postgres-{self.name}"))
        except OSError:
            pass
        self._pg("remove", str(self.dir), check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, prefix: str = "rel") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        sql(self.url(), f'CREATE DATABASE "{name}"', autocommit=True)
        return self.url(name)


def sql(url: str, query: str, params: Any = None, autocommit: bool = False) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=autocommit, connect_timeout=5) as conn:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []


# --------------------------------------------------------------------------------------
# The formaops binary
# --------------------------------------------------------------------------------------
def base_env(db_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FORMAOPS_"))}
    env.update({
        "DATABASE_URL": db_url,
        "RUST_LOG": os.environ.get("RELIABILITY_RUST_LOG", "info"),
        "FORMAOPS_ADMIN_EMAIL": "admin@rel.test",
        "FORMAOPS_ADMIN_PASSWORD": PASSWORD,
    })
    env.update(extra or {})
    return env


def migrate(db_url: str) -> None:
    subprocess.run([str(binary()), "migrate"], env=base_env(db_url), check=True, capture_output=True, timeout=120)


def create_user(db_url: str, email: str, password: str = PASSWORD) -> str:
    env = base_env(db_url, {"REL_USER_PASSWORD": password})
    out = subprocess.run([str(binary()), "users", "create", "--email", email, "--password-env", "REL_USER_PASSWORD"],
                         env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"users create {email} failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


class Server:
    """One `formaops serve` process."""

    def __init__(self, db_url: str, name: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.db_url = db_url
        self.name = name
        self.env = env or {}
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Server":
        self.starts += 1
        log = open(log_path(self.name), "ab")
        log.write(f"\n==== start #{self.starts} at {time.time():.3f}\n".encode())
        log.flush()
        cmd = [str(binary()), "serve", "--bind", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(cmd, env=base_env(self.db_url, self.env), stdout=subprocess.PIPE,
                                     stderr=log, start_new_session=True)
        log.close()
        with open(RUNS / "pids.txt", "a") as f:
            f.write(f"{self.proc.pid}\n")
        ready = threading.Event()
        proc = self.proc
        path = log_path(self.name)

        def pump() -> None:
            assert proc.stdout is not None
            with open(path, "ab") as out:
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    if b"listening on" in line:
                        ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if ready.wait(0.1):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {proc.returncode} before listening; see {path}")
        else:
            self.kill()
            raise RuntimeError(f"{self.name} did not listen within {timeout}s; see {path}")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def term(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.alive():
            self.term()
            if self.wait(30) is None:
                self.kill()


# --------------------------------------------------------------------------------------
# REST client
# --------------------------------------------------------------------------------------
class Api:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.http = requests.Session()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(extra or {})
        return h

    def req(self, method: str, path: str, *, json_body: Any = None, data: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30, params: dict | None = None) -> requests.Response:
        h = self.headers(headers)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        return self.http.request(method, self.base + path, json=json_body, data=data, headers=h, timeout=timeout,
                                 params=params)

    def login(self, email: str, password: str = PASSWORD) -> str:
        r = self.req("POST", "/api/auth/login", json_body={"email": email, "password": password})
        if r.status_code != 200:
            raise RuntimeError(f"login {email}: {r.status_code} {r.text[:300]}")
        self.token = r.json()["token"]
        return self.token

    def as_user(self, token: str) -> "Api":
        return Api(self.base, token)

    # ----- domain helpers -----
    def create_prompt(self, name: str | None = None, template: str = "Say hi. TAG[{{ tag }}]",
                      provider: str | None = "openai", variables: list | None = None, **extra: Any) -> dict:
        body: dict[str, Any] = {
            "name": name or f"p-{uuid.uuid4().hex[:8]}",
            "template": template,
            "variables": variables if variables is not None else
            [{"name": "tag", "type": "string", "required": True}],
        }
        if provider:
            body["model"] = {"provider": provider, "model": "gpt-4o-mini"}
        body.update(extra)
        r = self.req("POST", "/api/prompts", json_body=body)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"create prompt: {r.status_code} {r.text[:500]}")
        return r.json()

    def submit(self, prompt_id: str, inputs: dict, key: str | None = None, timeout: float = 10,
               priority: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else None
        body: dict[str, Any] = {"inputs": inputs}
        if priority:
            body["priority"] = priority
        return self.req("POST", f"/api/prompts/{prompt_id}/execute", json_body=body, headers=headers,
                        params={"mode": "async"}, timeout=timeout)

    def execution(self, eid: str) -> dict:
        r = self.req("GET", f"/api/executions/{eid}")
        r.raise_for_status()
        return r.json()


def prompt_id(created: dict) -> str:
    """The prompt id from a create answer (`{...prompt}` or `{"prompt": {...}, ...}`)."""
    if "id" in created:
        return created["id"]
    return created["prompt"]["id"]


FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def wait_all_final(db_url: str, ids: list[str], timeout: float, poll: float = 0.5) -> tuple[bool, float, dict]:
    """Polls the executions table until every id is final. Returns (ok, seconds, status counts)."""
    t0 = time.time()
    counts: dict[str, int] = {}
    while True:
        rows = sql(db_url, "SELECT status, count(*) FROM executions WHERE id = ANY(%s::uuid[]) GROUP BY status",
                   (ids,))
        counts = {s: n for s, n in rows}
        if sum(n for s, n in counts.items() if s in FINAL) == len(ids):
            return True, time.time() - t0, counts
        if time.time() - t0 > timeout:
            return False, time.time() - t0, counts
        time.sleep(poll)


def record(name: str, result: dict) -> None:
    """Appends a measured result to runs/<run>/results.jsonl (RELIABILITY.md is written from it)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    result = {"test": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    with open(RUNS / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")


class Load:
    """Submits executions at a steady rate across nodes, in a thread, until stopped.

    Every submission carries an Idempotency-Key (its tag). A submission whose answer was lost
    (connection refused or reset, timeout) is retried with the same key on another node until
    acknowledged, so `acked` ends up holding every execution the system said it accepted."""

    def __init__(self, nodes: list[Server], prompt: str, token: str, rate: float, prefix: str = "t",
                 timeout: float = 8.0) -> None:
        self.nodes = nodes
        self.prompt = prompt
        self.token = token
        self.interval = 1.0 / rate
        self.prefix = prefix
        self.timeout = timeout
        self.acked: dict[str, str] = {}
        self.statuses: dict[int | str, int] = {}
        self.errors: list[str] = []
        self.unacked: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._n = 0

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)

    def _count(self, key) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def _submit(self, tag: str, max_tries: int = 200) -> None:
        import random

        for attempt in range(max_tries):
            node = random.choice(self.nodes)
            api = Api(node.url, self.token)
            try:
                r = api.submit(self.prompt, {"tag": tag}, key=tag, timeout=self.timeout)
            except requests.exceptions.Timeout:
                self._count("timeout")
                time.sleep(0.2)
                continue
            except requests.exceptions.ConnectionError:
                self._count("connection")
                time.sleep(0.1)
                continue
            self._count(r.status_code)
            if r.status_code in (200, 202):
                self.acked[tag] = r.json()["id"]
                return
            if r.status_code == 503 or r.status_code == 429:
                time.sleep(0.3)
                continue
            self.errors.append(f"{tag}: {r.status_code} {r.text[:200]}")
            return
        self.unacked.append(tag)

    def _run(self) -> None:
        next_at = time.time()
        while not self._stop.is_set():
            self._n += 1
            self._submit(f"{self.prefix}{self._n}-{uuid.uuid4().hex[:6]}")
            next_at += self.interval
            delay = next_at - time.time()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.time()


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
