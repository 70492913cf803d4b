"""prices.yaml: Decimal prices, effective dating, and every problem reported at once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tokenops.schemas import TOKEN_TYPES
from tokenops.sinks.clickhouse.errors import PriceError
from tokenops.sinks.clickhouse.migrations import load_migrations
from tokenops.sinks.clickhouse.prices import load_prices

ENTRY = "\n".join(f'      {t}: "1.5"' for t in TOKEN_TYPES)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return path


def test_the_checked_in_prices_load_as_decimals() -> None:
    book = load_prices()
    assert book.prices
    assert all(isinstance(p.per_million, Decimal) for p in book.prices)


def test_the_price_in_effect_is_the_latest_entry_not_after_the_moment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
models:
  m:
    - effective_from: "2026-01-01T00:00:00Z"
{ENTRY}
    - effective_from: 2026-06-01
{ENTRY.replace('"1.5"', '"0.000000001"')}
""",
    )
    book = load_prices(path)
    early = book.price_at("m", "input_tokens", datetime(2026, 5, 31, 23, tzinfo=UTC))
    late = book.price_at("m", "input_tokens", datetime(2026, 6, 1, tzinfo=UTC))
    assert early is not None and early.per_million == Decimal("1.5")
    assert late is not None and late.per_million == Decimal("0.000000001")
    assert book.price_at("m", "input_tokens", datetime(2025, 1, 1, tzinfo=UTC)) is None
    assert book.price_at("other", "input_tokens", datetime(2026, 7, 1, tzinfo=UTC)) is None


def test_every_problem_is_reported_with_where_it_is(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  m:
    - effective_from: "2026-01-01T00:30:00Z"
      input_tokens: 2.5
      output_tokens: "-1"
      cache_read_input_tokens: "0.0000000001"
      cache_creation_input_tokens: "abc"
      reasoning_output_tokens: "1"
      colour: blue
""",
    )
    with pytest.raises(PriceError) as caught:
        load_prices(path)
    message = str(caught.value)
    for fragment in (
        "models.m[0].effective_from='2026-01-01T00:30:00Z': must be on an hour boundary",
        "models.m[0].input_tokens=2.5: must be a quoted decimal string",
        "models.m[0].output_tokens='-1': must be >= 0",
        "models.m[0].cache_read_input_tokens='0.0000000001'",
        "models.m[0].cache_creation_input_tokens='abc': not a decimal number",
        "unknown keys ['colour']",
    ):
        assert fragment in message


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert all(m.statements() for m in load_migrations())
