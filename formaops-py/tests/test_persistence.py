"""SQLite persistence across reopen; Postgres when DATABASE_URL is set."""

from __future__ import annotations

import os
import uuid

import pytest

import formaops
from conftest import GREET, GREET_VARIABLES, unique


def _roundtrip(url: str, user: str) -> None:
    with formaops.Engine.open(url, user=user) as first:
        p = first.create_prompt(name=unique(), template=GREET, variables=GREET_VARIABLES)
        first.update_prompt(p.id, template="Hi {{ who }}")
        r = first.execute(p.id, {"who": "Ada"})
        user_id = first.user_id
    with formaops.Engine.open(url, user=user) as again:
        assert again.user_id == user_id
        got = again.get_prompt(p.id)
        assert got.current_version == 2 and got.version is not None and got.version.template == "Hi {{ who }}"
        assert [v.version for v in again.versions(p.id)] == [2, 1]
        stored = again.get_execution(r.id)
        assert stored.status == "COMPLETED" and stored.output == r.output
        assert stored.metrics == r.metrics and stored.inputs == r.inputs
        assert again.metrics(prompt_id=p.id).counts.completed == 1
        assert again.execute(p.id, {"who": "Bob"}).status == "COMPLETED"


def test_sqlite_survives_reopen(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "formaops.db")
    _roundtrip(f"sqlite:///{path}", "ann@example.com")
    assert os.path.getsize(path) > 0


def test_default_user_is_stable_across_reopen(tmp_path: "os.PathLike[str]") -> None:
    url = f"sqlite:///{os.path.join(str(tmp_path), 'x.db')}"
    with formaops.Engine.open(url) as a:
        first = a.user_id
        assert a.user_email == formaops.DEFAULT_USER_EMAIL
    with formaops.Engine.open(url) as b:
        assert b.user_id == first


def test_sqlite_three_slashes_is_relative_to_the_working_directory(
    tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLAlchemy's convention: sqlite:///rel.db is relative, sqlite:////abs.db absolute.
    # (pytest runs tests one at a time, so changing the working directory here is safe.)
    monkeypatch.chdir(tmp_path)
    os.mkdir("sub")
    for url, created in [("sqlite:///rel.db", "rel.db"), ("sqlite:///sub/rel.db", os.path.join("sub", "rel.db"))]:
        with formaops.Engine.open(url) as engine:
            engine.create_prompt(name=unique(), template="x")
        assert os.path.isfile(os.path.join(str(tmp_path), created)), url
    assert not os.path.exists("/rel.db")
    # Reopening from elsewhere with the absolute form finds the same data.
    monkeypatch.chdir(os.path.join(str(tmp_path), "sub"))
    absolute = f"sqlite:///{os.path.join(str(tmp_path), 'rel.db')}"
    assert absolute.startswith("sqlite:////")
    with formaops.Engine.open(absolute) as engine:
        assert len(engine.list_prompts().items) == 1


def test_bad_database_url_names_the_forms() -> None:
    with pytest.raises(formaops.FormaOpsError, match="sqlite:///relative.db") as err:
        formaops.Engine.open("mysql://u:secret@h/db")
    assert "secret" not in str(err.value)


def test_postgres(postgres_url: str) -> None:
    _roundtrip(postgres_url, f"py-{uuid.uuid4().hex[:8]}@example.com")


def test_unreachable_database_is_unavailable() -> None:
    with pytest.raises(formaops.FormaOpsError):
        formaops.Engine.open("postgres://nobody@127.0.0.1:1/none")


def test_open_with_relaxed_durability_keeps_what_it_answered(tmp_path: "os.PathLike[str]") -> None:
    url = f"sqlite:///{os.path.join(str(tmp_path), 'relaxed.db')}"
    _roundtrip(url, "rex@example.com")
    with formaops.Engine.open(url, user="rex@example.com", durability="relaxed") as relaxed:
        p = relaxed.create_prompt(name=unique(), template=GREET, variables=GREET_VARIABLES)
        done = relaxed.execute(p.id, {"who": "Ada"})
    # A clean close loses nothing: reopened strict, the execution is there.
    with formaops.Engine.open(url, user="rex@example.com", durability="strict") as strict:
        assert strict.get_execution(done.id).status == "COMPLETED"


def test_open_refuses_an_unknown_durability() -> None:
    for bad in ("fast", "Strict", ""):
        with pytest.raises(formaops.ValidationError) as info:
            formaops.Engine.open(durability=bad)
        assert [p["field"] for p in info.value.problems] == ["durability"], info.value
        assert "relaxed" in str(info.value)
    with pytest.raises(TypeError, match=r"^durability must be"):
        formaops.Engine.open(durability=True)  # type: ignore[arg-type]
