"""Auth: logout revokes, tokens are unguessable, Argon2id at OWASP strength, no user
enumeration, throttling of repeated failures."""

from __future__ import annotations

import math
import re
import string

import harness


def test_logout_then_reuse_is_401(module_node):
    api = harness.Api(module_node.server.url)
    token = api.login(module_node.alice_email)
    assert api.req("GET", "/api/auth/me").status_code == 200
    r = api.req("POST", "/api/auth/logout")
    assert r.status_code in (200, 204), r.text
    again = harness.Api(module_node.server.url, token).req("GET", "/api/auth/me")
    assert again.status_code == 401, f"revoked token still works: {again.status_code} {again.text[:200]}"
    body = again.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    # Other endpoints refuse it too.
    assert harness.Api(module_node.server.url, token).req("GET", "/api/prompts").status_code == 401


def alphabet_bits(tokens: list[str]) -> float:
    chars = set("".join(tokens))
    for alphabet in (string.hexdigits.lower(), string.ascii_letters + string.digits + "-_",
                     string.ascii_letters + string.digits + "+/="):
        if chars <= set(alphabet):
            return math.log2(len(set(alphabet) - {"="}))
    return math.log2(max(len(chars), 2))


def test_session_tokens_are_long_random_and_unique(module_node):
    tokens = []
    for _ in range(40):
        api = harness.Api(module_node.server.url)
        tokens.append(api.login(module_node.bob_email))
    assert len(set(tokens)) == len(tokens), "duplicate session tokens"
    # A token may carry a fixed prefix (e.g. "fo_s_"); measure the varying part.
    prefix = _common_prefix(tokens)
    bodies = [t[len(prefix):] for t in tokens]
    bits = min(len(b) for b in bodies) * alphabet_bits(bodies)
    harness.record("auth.token_entropy", {"prefix": prefix, "min_len": min(len(b) for b in bodies),
                                         "estimated_bits": round(bits, 1), "logins": len(tokens)})
    assert bits >= 128, f"session tokens carry about {bits:.0f} bits (< 128): e.g. {tokens[0][:6]}..."
    # Every position varies across tokens (no constant filler padded onto a short secret).
    constant = [i for i in range(min(len(b) for b in bodies)) if len({b[i] for b in bodies}) == 1]
    assert len(constant) <= 1, f"constant positions in the random part: {constant}"


def _common_prefix(values: list[str]) -> str:
    p = values[0]
    for v in values[1:]:
        while not v.startswith(p):
            p = p[:-1]
    return p


PHC = re.compile(r"^\$argon2id\$v=(\d+)\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


def test_password_hashes_are_argon2id_at_owasp_parameters(module_node):
    rows = harness.sql(module_node.db_url, "SELECT email, password_hash FROM users")
    assert rows, "no users in the database"
    for email, phc in rows:
        m = PHC.match(phc)
        assert m, f"{email}: stored hash is not an Argon2id PHC string: {phc[:20]}..."
        version, mem, t, p = map(int, m.groups())
        assert version == 19 and mem >= 19456 and t >= 2 and p >= 1, f"{email}: weak parameters m={mem},t={t},p={p}"
    harness.record("auth.argon2", {"users": len(rows), "params": PHC.match(rows[0][1]).groups()})


def test_unknown_user_and_wrong_password_are_indistinguishable(module_node):
    api = harness.Api(module_node.server.url)
    wrong = api.req("POST", "/api/auth/login", json_body={"email": module_node.alice_email, "password": "nope-nope-nope"})
    unknown = api.req("POST", "/api/auth/login", json_body={"email": "nobody@rel.test", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401, (wrong.status_code, unknown.status_code)
    assert wrong.json() == unknown.json(), f"bodies differ: {wrong.text} vs {unknown.text}"
    strip = {"date", "content-length", "x-request-id"}
    wh = {k.lower(): v for k, v in wrong.headers.items() if k.lower() not in strip}
    uh = {k.lower(): v for k, v in unknown.headers.items() if k.lower() not in strip}
    assert wh == uh, f"headers differ: {wh} vs {uh}"


def test_repeated_failures_for_one_account_are_throttled(module_node):
    api = harness.Api(module_node.server.url)
    email = "throttle-target@rel.test"
    harness.create_user(module_node.db_url, email)
    statuses = []
    for _ in range(30):
        r = api.req("POST", "/api/auth/login", json_body={"email": email, "password": "wrong password!"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert "error" in r.json(), r.text
            break
    harness.record("auth.throttle", {"attempts_until_429": len(statuses), "statuses": sorted(set(statuses))})
    assert 429 in statuses, f"30 wrong passwords never answered 429: {statuses}"
    assert set(statuses) <= {401, 429}, statuses
    # The throttle is per account: another account still logs in.
    assert harness.Api(module_node.server.url).login(module_node.bob_email)
