"""Prompts: create, update (new version), get, list, versions, archive; render and
validate_inputs without executing."""

from __future__ import annotations

import datetime as dt

import pytest

import formaops
from conftest import GREET, GREET_VARIABLES, unique


def test_create_prompt_returns_version_one(engine: formaops.Engine) -> None:
    name = unique()
    p = engine.create_prompt(
        name=name,
        template=GREET,
        description="greets",
        variables=GREET_VARIABLES,
        validations=[{"type": "min_length", "value": 1}],
        model="gpt-4o-mini",
        parameters={"temperature": 0.2, "max_completion_tokens": 64},
    )
    assert isinstance(p, formaops.Prompt)
    assert p.name == name and p.description == "greets"
    assert p.status == "ACTIVE" and p.current_version == 1
    assert p.user_id == engine.user_id
    assert isinstance(p.created_at, dt.datetime) and p.created_at.tzinfo is not None
    v = p.version
    assert isinstance(v, formaops.PromptVersion)
    assert v.version == 1 and v.prompt_id == p.id and v.template == GREET
    assert [x["name"] for x in v.variables] == ["who", "excited"]
    # snake_case keys in, snake_case keys out; user values untouched
    assert v.variables[1]["default_value"] is False
    assert v.validations == [{"type": "min_length", "value": 1}]
    assert v.model["model"] == "gpt-4o-mini"
    assert v.model["parameters"] == {"temperature": 0.2, "max_completion_tokens": 64}


def test_update_writes_a_new_version_and_keeps_the_old(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    updated = engine.update_prompt(greet.id, template="Hi {{ who }}", description="shorter")
    assert updated.current_version == 2
    assert updated.version is not None and updated.version.version == 2
    assert updated.version.template == "Hi {{ who }}"
    assert updated.version.variables == greet.version.variables  # carried over
    old = engine.get_prompt(greet.id, version=1)
    assert old.version is not None and old.version.template == GREET
    current = engine.get_prompt(greet)
    assert current.version is not None and current.version.version == 2 and current.description == "shorter"


def test_update_parameters_only_keeps_the_model(engine: formaops.Engine) -> None:
    p = engine.create_prompt(name=unique(), template="x", model="gpt-4o")
    u = engine.update_prompt(p, parameters={"temperature": 0.5})
    assert u.version is not None
    assert u.version.model["model"] == "gpt-4o"
    assert u.version.model["parameters"] == {"temperature": 0.5}


def test_update_with_stale_expected_version_conflicts(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    engine.update_prompt(greet.id, template="v2 {{ who }}", expected_version=1)
    with pytest.raises(formaops.ConflictError):
        engine.update_prompt(greet.id, template="v3 {{ who }}", expected_version=1)


def test_list_prompts_pages_newest_first(engine: formaops.Engine) -> None:
    names = [unique() for _ in range(5)]
    for n in names:
        engine.create_prompt(name=n, template="t")
    first = engine.list_prompts(limit=2)
    assert isinstance(first, formaops.Page) and len(first) == 2 and first.next_cursor
    assert first.items[0].version is None
    seen = [p.name for p in first]
    cursor = first.next_cursor
    while cursor:
        page = engine.list_prompts(limit=2, cursor=cursor)
        seen += [p.name for p in page]
        cursor = page.next_cursor
    assert seen == list(reversed(names))


def test_versions_page_newest_first(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    for i in range(3):
        engine.update_prompt(greet.id, template=f"v{i} {{{{ who }}}}")
    page = engine.versions(greet.id, limit=3)
    assert [v.version for v in page] == [4, 3, 2]
    rest = engine.versions(greet.id, limit=3, cursor=page.next_cursor)
    assert [v.version for v in rest] == [1] and rest.next_cursor is None


def test_archive_hides_from_list_and_keeps_history(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    archived = engine.archive_prompt(greet.id)
    assert archived.status == "ARCHIVED"
    assert greet.id not in [p.id for p in engine.list_prompts()]
    assert greet.id in [p.id for p in engine.list_prompts(status="archived")]
    assert engine.get_prompt(greet.id).status == "ARCHIVED"
    with pytest.raises(formaops.FormaOpsError):
        engine.execute(greet.id, {"who": "Ada"})
    # the name is free again
    engine.create_prompt(name=greet.name, template="again")


def test_render_without_executing(engine: formaops.Engine) -> None:
    p = engine.create_prompt(
        name=unique(),
        template="Summarise {{ text }} in {{ words }} words",
        system_template="You are terse.",
        variables=[
            {"name": "text", "type": "string", "required": True},
            {"name": "words", "type": "integer", "required": False, "default_value": 10},
        ],
    )
    messages = engine.render(p.id, {"text": "the news"})
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[1].content == "Summarise the news in 10 words"
    assert messages[0].to_dict() == {"role": "system", "content": "You are terse."}
    assert engine.list_executions(prompt_id=p.id).items == []


def test_render_a_pinned_version(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    engine.update_prompt(greet.id, template="Bye {{ who }}")
    assert greet.version is not None
    assert engine.render(greet.version, {"who": "Ada"})[0].content == "Say hello to Ada"
    assert engine.render(greet.id, {"who": "Ada"})[0].content == "Bye Ada"
    assert engine.render(greet.id, {"who": "Ada", "excited": True}, version=1)[0].content == "Say hello to Ada!"


def test_validate_inputs_fills_defaults(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    assert engine.validate_inputs(greet.id, {"who": "Ada"}) == {"who": "Ada", "excited": False}


def test_validate_inputs_reports_every_problem_as_data(engine: formaops.Engine, greet: formaops.Prompt) -> None:
    with pytest.raises(formaops.ValidationError) as info:
        engine.validate_inputs(greet.id, {"excited": "yes", "extra": 1})
    problems = {(p["field"], p["code"]) for p in info.value.problems}
    assert problems == {
        ("inputs.who", "missing"),
        ("inputs.excited", "wrong_type"),
        ("inputs.extra", "unknown"),
    }
    assert all(p["message"] for p in info.value.problems)
    assert isinstance(info.value, formaops.FormaOpsError)
