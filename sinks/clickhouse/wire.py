"""JSON forms of billing results, shared by the sink's endpoint and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tokenops.sinks.clickhouse.billing import Usage
from tokenops.sinks.clickhouse.finality import Finality
from tokenops.sinks.clickhouse.invoice_model import invoice_from_json, invoice_to_json
from tokenops.sinks.clickhouse.reconcile import Difference

__all__ = [
    "differences_from_json",
    "differences_to_json",
    "invoice_from_json",
    "invoice_to_json",
    "parse_time",
    "usage_from_json",
    "usage_to_json",
]


def parse_time(text: str) -> datetime:
    """A UTC date (2026-11-01) or ISO time; naive values are UTC."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def differences_to_json(differences: list[Difference]) -> list[dict[str, Any]]:
    """Reconcile's differences as JSON objects. `region` (after `model`) is there only
    when some difference has a region, and then on each ('' for none): differences of
    data without regions read as they did before windows had a region."""
    with_region = any(d.region for d in differences)
    return [
        {
            "check": d.check,
            "tenant_id": d.tenant_id,
            "model": d.model,
            **({"region": d.region} if with_region else {}),
            "bucket": d.bucket,
            "column": d.column,
            "expected": d.expected,
            "actual": d.actual,
        }
        for d in differences
    ]


def differences_from_json(items: list[dict[str, Any]]) -> list[Difference]:
    """The inverse of `differences_to_json`; an item without `region` is region ''."""
    return [Difference(**item) for item in items]


def usage_to_json(result: Usage) -> dict[str, Any]:
    return {
        "tenant_id": result.tenant_id,
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "time_zone": result.time_zone,
        **result.finality.to_json(),
        "rows": result.rows,
    }


def usage_from_json(data: dict[str, Any]) -> Usage:
    return Usage(
        data["tenant_id"],
        parse_time(data["from"]),
        parse_time(data["to"]),
        data["time_zone"],
        list(data["rows"]),
        Finality.from_json(data),
    )
