"""Quota definitions, periods and the quota file: valid input in, one clear line per problem."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from tokenops.paths import deploy_dir
from tokenops.quotas.book import QuotaBook, load_quota_file
from tokenops.quotas.errors import QuotaFileError
from tokenops.schemas.aggregates import TOKEN_TYPES
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition, TokenType, period_bounds


def ms(*args: int, tz: str = "UTC") -> int:
    from zoneinfo import ZoneInfo

    return int(datetime(*args, tzinfo=UTC if tz == "UTC" else ZoneInfo(tz)).timestamp() * 1000)


def test_token_types_match_the_aggregate_contract() -> None:
    assert set(TokenType.__args__) == set(TOKEN_TYPES)  # type: ignore[attr-defined]


def test_period_bounds() -> None:
    t = ms(2026, 11, 27, 13, 45, 30)
    assert period_bounds("minute", t) == (ms(2026, 11, 27, 13, 45), ms(2026, 11, 27, 13, 46))
    assert period_bounds("day", t) == (ms(2026, 11, 27), ms(2026, 11, 28))
    assert period_bounds("month", t) == (ms(2026, 11, 1), ms(2026, 12, 1))
    assert period_bounds("month", ms(2026, 12, 31, 23)) == (ms(2026, 12, 1), ms(2027, 1, 1))
    tokyo = period_bounds("day", t, "Asia/Tokyo")  # 22:45 local
    assert tokyo == (ms(2026, 11, 27, tz="Asia/Tokyo"), ms(2026, 11, 28, tz="Asia/Tokyo"))


def test_a_dst_day_lasts_25_hours() -> None:
    start, end = period_bounds("day", ms(2026, 11, 1, 12), "America/New_York")
    assert (end - start) == 25 * 3_600_000


def test_definition_round_trip_and_alert_round_trip() -> None:
    quota = QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=10)
    assert QuotaDefinition.from_bytes(quota.to_bytes()) == quota
    alert = QuotaAlert(
        tenant_id="acme",
        quota="daily",
        period="day",
        period_start_ms=0,
        period_end_ms=86_400_000,
        threshold_pct=80,
        usage=8,
        limit=10,
        unit="tokens",
        time_ms=5,
        emitted_at_ms=6,
    )
    assert QuotaAlert.from_bytes(alert.to_bytes()) == alert
    assert alert.key == "acme|daily|0|80" and alert.usage_ratio == 0.8


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Olympus"},
        {"thresholds_pct": [0]},
        {"limit": 0},
        {"limit": "10.5"},
        {"period": "week"},
        {"tenant_id": "a|b"},
        {"prices_per_million": {"input_tokens": 1}},
        {"prices_per_million": {"input_tokens": "0.0000001"}, "currency": "USD"},
    ],
)
def test_invalid_definitions_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        QuotaDefinition.model_validate(
            {"tenant_id": "acme", "name": "q", "period": "day", "limit": 10, **bad}
        )


def test_the_checked_in_quota_file_is_valid() -> None:
    quotas = load_quota_file(deploy_dir() / "quotas.yaml")
    assert quotas and len(QuotaBook(quotas)) == len(quotas)


def test_every_bad_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "quotas.yaml"
    path.write_text(
        "quotas:\n"
        "  - {tenant_id: acme, name: ok, period: day, limit: 100}\n"
        "  - {tenant_id: acme, name: weekly, period: week, limit: 100}\n"
        "  - {tenant_id: beta, name: tz, period: day, limit: 5, timezone: Nowhere/Land}\n"
        "  - {tenant_id: acme, name: ok, period: day, limit: 100}\n"
    )
    with pytest.raises(QuotaFileError) as caught:
        load_quota_file(path)
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("quotas[1] (acme/weekly): period:")
    assert problems[1].startswith("quotas[2] (beta/tz): timezone:")
    assert "duplicate" in problems[2] and problems[2].startswith("quotas[3] (acme/ok)")


@pytest.mark.parametrize("text", ["", "quotas: 5", "[1, 2", "- a"])
def test_a_malformed_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "quotas.yaml"
    path.write_text(text)
    with pytest.raises(QuotaFileError):
        load_quota_file(path)


def test_book_applies_topic_records_and_tombstones() -> None:
    book = QuotaBook()
    quota = QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=10)
    book.apply_record(quota.key.encode(), quota.to_bytes())
    book.apply_record(b"acme|junk", b"{not json")
    assert book.for_tenant("acme") == (quota,)
    book.apply_record(quota.key.encode(), None)
    assert book.for_tenant("acme") == () and len(book) == 0
