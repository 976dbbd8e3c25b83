"""Labels, promotion, the promotion guard, execution by label and diffs from Python."""

from __future__ import annotations

import pytest

import formaops

from conftest import unique


def test_label_promote_execute_roll_back_and_diff(engine: formaops.Engine) -> None:
    p = engine.create_prompt(
        unique(),
        "Say hello to {{ who }}.",
        variables=[{"name": "who", "type": "string", "required": True}],
    )
    assert [(l["name"], l["version"]) for l in engine.labels(p)] == [("latest", 1), ("production", 1)]

    engine.update_prompt(p, template="Greet {{ who }} warmly.")
    # An update does not move production.
    assert engine.get_prompt(p, label="production").version.version == 1
    engine.set_label(p, "staging", 2)
    assert engine.get_prompt(p, label="staging").version.version == 2
    assert engine.execute(p, {"who": "Ada"}, label="production").prompt_version == 1

    engine.set_label(p, "production", 2)
    assert engine.execute(p, {"who": "Ada"}, label="production").prompt_version == 2
    engine.set_label(p, "production", 1)
    assert engine.execute(p, {"who": "Ada"}, label="production").prompt_version == 1

    moves = engine.label_history(p, label="production")
    assert [(m["from"], m["to"]) for m in moves] == [(2, 1), (1, 2), (None, 1)]

    d = engine.diff(p, "production", 2)
    assert "-Say hello to {{ who }}." in d["template"] and "+Greet {{ who }} warmly." in d["template"]

    engine.delete_label(p, "staging")
    with pytest.raises(formaops.NotFoundError):
        engine.get_prompt(p, label="staging")
    with pytest.raises(formaops.FormaOpsError):
        engine.execute(p, {"who": "Ada"}, version=1, label="production")
    with pytest.raises(formaops.FormaOpsError):
        engine.set_label(p, "latest", 1)


def test_promotion_guard_and_no_initial_label(engine: formaops.Engine) -> None:
    bare = engine.create_prompt(unique(), "hi", labels=[])
    assert [l["name"] for l in engine.labels(bare)] == ["latest"]

    p = engine.create_prompt(unique(), "hi {{ a }}", variables=[{"name": "a", "type": "string", "required": True}])
    engine.set_promotion_guard(p, True)
    engine.update_prompt(
        p,
        template="hi {{ a }} {{ b }}",
        variables=[{"name": "a", "type": "string", "required": True}, {"name": "b", "type": "string", "required": True}],
    )
    with pytest.raises(formaops.ValidationError) as refused:
        engine.set_label(p, "production", 2)
    assert "variables.b" in str(refused.value)
    assert engine.get_prompt(p, label="production").version.version == 1
