"""Limits: oversized bodies, huge values, thousands of variables, deeply nested JSON and
hostile templates all get a 4xx with a clear message, and the server stays healthy."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

import harness


def healthy(node) -> None:
    r = node.anon.req("GET", "/api/health", timeout=10)
    assert r.status_code == 200, f"health after the request: {r.status_code} {r.text[:200]}"
    assert node.server.alive()


def clear_4xx(r, *codes: int) -> dict:
    assert 400 <= r.status_code < 500, f"expected a 4xx, got {r.status_code}: {r.text[:300]}"
    if codes:
        assert r.status_code in codes, f"expected {codes}, got {r.status_code}: {r.text[:300]}"
    body = r.json()
    err = body["error"]
    assert err["code"] and len(err["message"]) >= 8, f"unclear error: {body}"
    return err


def test_oversized_body_is_413(module_node):
    big = json.dumps({"name": "big", "template": "x" * (3 * 1024 * 1024), "variables": []}).encode()
    r = module_node.alice.req("POST", "/api/prompts", data=big)
    clear_4xx(r, 413)
    healthy(module_node)


@pytest.fixture(scope="module")
def prompt(module_node):
    return harness.prompt_id(module_node.alice.create_prompt(template="Hi {{ tag }}"))


def test_huge_variable_value_is_rejected_and_named(module_node, prompt):
    r = module_node.alice.submit(prompt, {"tag": "x" * (900 * 1024)})
    err = clear_4xx(r, 413, 422)
    if r.status_code == 422:
        assert "tag" in json.dumps(err), f"problem does not name the variable: {err}"
    healthy(module_node)


def test_thousands_of_variables(module_node, prompt):
    many = [{"name": f"v{i}", "type": "string", "required": False} for i in range(5000)]
    r = module_node.alice.req("POST", "/api/prompts", json_body={"name": f"many-{uuid.uuid4().hex[:6]}",
                                                                "template": "x", "variables": many})
    clear_4xx(r, 400, 413, 422)
    r = module_node.alice.submit(prompt, {f"v{i}": "x" for i in range(5000)} | {"tag": "t"})
    clear_4xx(r, 400, 413, 422)
    healthy(module_node)


@pytest.mark.parametrize("depth", [200, 10_000])
def test_deeply_nested_json(module_node, prompt, depth):
    nested = "[" * depth + "1" + "]" * depth
    body = ('{"inputs": {"tag": "t", "deep": ' + nested + "}}").encode()
    r = module_node.alice.req("POST", f"/api/prompts/{prompt}/execute?mode=async", data=body)
    clear_4xx(r, 400, 413, 422)
    obj = '{"a":' * depth + "1" + "}" * depth
    body = ('{"name": "deep", "template": "x", "variables": [{"name": "j", "type": "json", "schema": ' + obj + "}]}")
    r = module_node.alice.req("POST", "/api/prompts", data=body.encode())
    clear_4xx(r, 400, 413, 422)
    healthy(module_node)


def test_malformed_json_gets_the_error_shape(module_node, prompt):
    for raw in (b"{", b"\xff\xfe", b'{"inputs": }', b"null", b"[]", b'{"inputs": {"tag": "\\ud800"}}'):
        r = module_node.alice.req("POST", f"/api/prompts/{prompt}/execute?mode=async", data=raw)
        clear_4xx(r)
    healthy(module_node)


@pytest.mark.parametrize("template", [
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ [1] * 100000000 }}",
    "{% set x = 'a' * 100000000 %}{{ x ~ x ~ x ~ x }}",
    "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
])
def test_hostile_templates_fail_cleanly(module_node, template):
    """Either refused at save (4xx) or the execution ends FAILED with a template error."""
    r = module_node.alice.req("POST", "/api/prompts", json_body={"name": f"evil-{uuid.uuid4().hex[:6]}",
                                                                "template": template, "variables": [],
                                                                "model": {"provider": "mock", "model": "m"}})
    if r.status_code >= 400:
        clear_4xx(r)
    else:
        pid = harness.prompt_id(r.json())
        ex = module_node.alice.req("POST", f"/api/prompts/{pid}/execute", json_body={"inputs": {}}, timeout=60)
        assert ex.status_code in (200, 202, 422), f"{ex.status_code} {ex.text[:300]}"
        if ex.status_code != 422:
            e = ex.json()
            eid = e["id"]
            ok, _, counts = harness.wait_all_final(module_node.db_url, [eid], timeout=60)
            assert ok, counts
            final = module_node.alice.execution(eid)
            assert final["status"] == "FAILED", final["status"]
            assert final["error"], final
    healthy(module_node)


def test_many_requests_with_garbage_headers(module_node):
    for h in ({"Authorization": "Bearer " + "A" * 100_000}, {"Authorization": "Basic Zm9vOmJhcg=="},
              {"Authorization": "Bearer \u00e9".encode("utf-8").decode("latin-1")}, {"Authorization": "Bearer"}):
        try:
            r = harness.Api(module_node.server.url).req("GET", "/api/prompts", headers=h)
            assert r.status_code in (400, 401, 431), f"{h['Authorization'][:20]}: {r.status_code}"
        except UnicodeError:
            pass  # the client refused to send it: not a server finding
        except requests.exceptions.ConnectionError:
            pass  # closing the connection on a 100 KB header is an acceptable refusal
    healthy(module_node)
