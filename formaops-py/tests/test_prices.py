"""Model prices from Python: an operator's prices file given to ``Engine.open``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import formaops
from conftest import unique

# gpt-4o-mini (the default model) at $1 per token in and out from 2025-01-01: later than the
# built-in entry, so it is the price in effect now.
PRICES = """
source = "https://example.com/test-prices"
checked = 2026-11-30

[[prices]]
model = "gpt-4o-mini"
effective_from = 2025-01-01
input_per_mtok = "1000000"
output_per_mtok = "1000000"
"""


def test_a_prices_file_extends_the_builtin_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES)
    with formaops.Engine.open(prices_file=path) as e:
        r = e.execute(e.create_prompt(name=unique(), template="x").id)
        m = r.metrics
        assert r.status == "COMPLETED" and m is not None and m.cost_usd is not None
        assert Decimal(str(m.cost_usd)) == m.token_usage.total
        # The built-in prices of other models stay.
        p = e.create_prompt(name=unique(), template="x", model="gpt-4o-2024-05-13")
        other = e.execute(p.id).metrics
        assert other is not None and other.cost_usd is not None
        assert other.cost_usd < 1


def test_a_bad_prices_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES.replace('"1000000"', "2.5", 1))
    with pytest.raises(formaops.ValidationError) as info:
        formaops.Engine.open(prices_file=str(path))
    assert str(path) in str(info.value) and "line 8" in str(info.value)
    with pytest.raises(formaops.ValidationError, match="nope.toml"):
        formaops.Engine.open(prices_file=tmp_path / "nope.toml")
