"""Tenant isolation matrix: user B against every operation of the OpenAPI document with
user A's ids. Pass: 0 leaks (none of A's ids or marker strings in B's answers), 0 changes to
A's data, and a uniform 404 (same status and body shape as for a random missing id)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests

import harness

MARK = "SECRET-MARKER-" + uuid.uuid4().hex[:8]


def body_shape(r: requests.Response):
    try:
        b = r.json()
    except ValueError:
        return ("non-json", r.headers.get("content-type"))
    if isinstance(b, dict) and "error" in b and isinstance(b["error"], dict):
        return ("error", b["error"].get("code"), tuple(sorted(b["error"])))
    return ("json", tuple(sorted(b)) if isinstance(b, dict) else type(b).__name__)


@pytest.fixture(scope="module")
def world(module_node):
    a, b = module_node.alice, module_node.bob
    created = a.create_prompt(name=f"alice-{MARK}", template=f"{MARK} TAG[{{{{ tag }}}}]",
                              description=f"desc {MARK}")
    pid = harness.prompt_id(created)
    # A second version so version history has something to leak.
    r = a.req("PUT", f"/api/prompts/{pid}", json_body={"template": f"{MARK} v2 TAG[{{{{ tag }}}}]"})
    assert r.status_code == 200, r.text
    sub = a.submit(pid, {"tag": f"iso-{MARK}"})
    assert sub.status_code == 202, sub.text
    eid = sub.json()["id"]
    ok, _, counts = harness.wait_all_final(module_node.db_url, [eid], timeout=60)
    assert ok, counts
    doc = module_node.anon.req("GET", "/api/openapi.json").json()
    key_id = None
    key_secret = None
    for path, ops in doc["paths"].items():
        if path.rstrip("/").endswith("/keys") and "post" in ops:
            r = a.req("POST", "/api" + path if not path.startswith("/api") else path, json_body={"name": f"k-{MARK}"})
            if r.status_code in (200, 201):
                kb = r.json()
                key_id = kb.get("id") or kb.get("key", {}).get("id")
                key_secret = kb.get("token") or kb.get("key", {}).get("token")
    ids = {"prompt": pid, "execution": eid}
    if key_id:
        ids["key"] = key_id
    return {"ids": ids, "doc": doc, "key_secret": key_secret}


def a_snapshot(node, ids) -> dict:
    a = node.alice
    snap = {
        "prompt": a.req("GET", f"/api/prompts/{ids['prompt']}").json(),
        "versions": a.req("GET", f"/api/prompts/{ids['prompt']}/versions").json(),
        "execution": a.req("GET", f"/api/executions/{ids['execution']}").json(),
        "rows": harness.sql(node.db_url, """
            SELECT (SELECT count(*) FROM prompts p JOIN users u ON u.id = p.user_id WHERE u.email = %s),
                   (SELECT count(*) FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id
                      JOIN users u ON u.id = p.user_id WHERE u.email = %s),
                   (SELECT count(*) FROM executions e JOIN users u ON u.id = e.user_id WHERE u.email = %s),
                   (SELECT count(*) FROM credentials c JOIN users u ON u.id = c.user_id
                      WHERE u.email = %s AND c.revoked_at IS NULL AND c.kind = 'api_key')
            """, (node.alice_email,) * 4),
    }
    return snap


def request_body(path: str, method: str, op: dict):
    if "requestBody" not in op:
        return None
    if path.endswith("/execute"):
        return {"inputs": {"tag": "from-bob"}}
    # Valid bodies for the label operations, so the probe reaches the ownership check.
    if path.endswith("/label-settings"):
        return {"guardProduction": True}
    if "/labels/" in path and method == "put":
        return {"version": 1}
    if method == "put":
        return {"template": "bob was here TAG[{{ tag }}]"}
    if path.rstrip("/").endswith("/keys"):
        return {"name": "bob-key"}
    if path.rstrip("/").endswith("/prompts"):
        return {"name": f"bob-{uuid.uuid4().hex[:6]}", "template": "x"}
    if path.endswith("/login"):
        return None
    return {}


def request_params(path: str):
    """Query parameters an operation needs to be valid (so the probe reaches the ownership check)."""
    if path.endswith("/diff"):
        return {"from": "1", "to": "latest"}
    return None


def call(api: harness.Api, method: str, path: str, body, params=None) -> requests.Response:
    is_stream = "events" in path or path.endswith("/ws")
    r = api.http.request(method.upper(), api.base + path, json=body, params=params, headers=api.headers(),
                         timeout=(5, 3), stream=is_stream)
    if is_stream:
        chunks = b""
        try:
            for c in r.iter_content(1024):
                chunks += c
                if len(chunks) > 65536:
                    break
        except requests.exceptions.RequestException:
            pass  # read timeout on an open stream: what arrived so far is what we check
        r._content = chunks
    return r


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and s in text]


def test_isolation_matrix(module_node, world):
    ids, doc = world["ids"], world["doc"]
    secrets = [MARK, *ids.values(), world["key_secret"] or ""]
    before = a_snapshot(module_node, ids)
    b = module_node.bob
    findings: list[str] = []
    checked = 0
    for raw_path, ops in sorted(doc["paths"].items()):
        path = raw_path if raw_path.startswith("/api") else "/api" + raw_path
        if path.endswith("/logout") or path.endswith("/login"):
            continue
        params = re.findall(r"\{(\w+)\}", path)
        for method, op in ops.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = request_body(path, method, op)
            if params:
                for kind, victim in ids.items():
                    url = re.sub(r"\{\w+\}", victim, path)
                    missing = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
                    r = call(b, method, url, body, request_params(path))
                    m = call(b, method, missing, body, request_params(path))
                    checked += 1
                    where = f"{method.upper()} {raw_path} with A's {kind} id"
                    if r.status_code != 404:
                        findings.append(f"{where}: status {r.status_code} (missing id: {m.status_code}): {r.text[:200]}")
                    elif (r.status_code, body_shape(r)) != (m.status_code, body_shape(m)):
                        findings.append(f"{where}: answer differs from a missing id: {r.text[:200]} vs {m.text[:200]}")
                    if leaks(r.text.replace(victim, ""), secrets) or leaks(json.dumps(dict(r.headers)), [MARK]):
                        findings.append(f"{where}: LEAK {leaks(r.text, secrets)}")
            else:
                if method != "get" and not path.endswith("/prompts"):
                    continue
                query_sets = [None]
                for p in op.get("parameters", []):
                    if p.get("in") == "query" and p["name"].lower().endswith("id"):
                        query_sets += [{p["name"]: v} for v in ids.values()]
                for q in query_sets:
                    r = call(b, method, path, body, params=q)
                    checked += 1
                    text = r.text
                    if q:
                        text = text.replace(next(iter(q.values())), "")
                    found = leaks(text, secrets)
                    if found:
                        findings.append(f"{method.upper()} {raw_path} {q or ''}: LEAK of {found}: {r.text[:200]}")
                    if r.status_code >= 500:
                        findings.append(f"{method.upper()} {raw_path} {q or ''}: {r.status_code}")
    # The API key of A is not usable to reach B, and B cannot revoke it.
    after = a_snapshot(module_node, ids)
    for k in before:
        if before[k] != after[k]:
            findings.append(f"A's {k} changed: {json.dumps(before[k])[:300]} -> {json.dumps(after[k])[:300]}")
    harness.record("isolation.matrix", {"requests": checked, "findings": len(findings)})
    assert checked >= len(doc["paths"]), f"only {checked} checks for {len(doc['paths'])} paths"
    assert not findings, "\n".join(findings)
