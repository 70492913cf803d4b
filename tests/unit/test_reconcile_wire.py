"""Reconcile's differences on the wire (the sink's /v1/reconcile, the CLI's json/csv and
table): `region` only when some difference has one, and read back either way."""

from __future__ import annotations

from tokenops.sinks.clickhouse.reconcile import CLOSED_CHECK, Difference
from tokenops.sinks.clickhouse.wire import differences_from_json, differences_to_json

NO_REGION = Difference(
    "usage_hourly vs usage_daily", "acme", "gpt-4o", "2026-11-20", "event_count", 3, 2
)
WEST = Difference(CLOSED_CHECK, "acme", "gpt-4o", "2026-11", "input_tokens", 70, 30, "west")


def test_differences_without_regions_have_no_region_field() -> None:
    items = differences_to_json([NO_REGION])
    assert items == [
        {
            "check": "usage_hourly vs usage_daily",
            "tenant_id": "acme",
            "model": "gpt-4o",
            "bucket": "2026-11-20",
            "column": "event_count",
            "expected": 3,
            "actual": 2,
        }
    ]
    assert differences_from_json(items) == [NO_REGION]


def test_one_difference_with_a_region_gives_every_item_a_region_after_model() -> None:
    items = differences_to_json([NO_REGION, WEST])
    assert [item["region"] for item in items] == ["", "west"]
    assert list(items[1])[:4] == ["check", "tenant_id", "model", "region"]
    assert differences_from_json(items) == [NO_REGION, WEST]
