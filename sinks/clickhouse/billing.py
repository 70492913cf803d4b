"""Reads for BI and billing: usage by model/day/hour/month/region, and invoices, in the
tenant's zone.

Every function takes a clickhouse-connect client and returns plain data (Decimal amounts,
never float), so the CLI, the sink's query endpoint and tests share one implementation.
Tenant values are always bound parameters.

Ranges are UTC instants (a tenant's local day or month, from `time_zones`). A range on
whole UTC hours is summed from the hourly rollups; any other range (a :30 or :45 zone's
midnight, a `--from 10:15`) from the window totals, whose windows (60 s by default) are
aligned to the epoch and so to every zone's midnight.

Region is part of a window's identity, and the rollups sum regions together: usage by
region and invoices (one line per model, region, token type and unit price) are summed
from the window totals, whatever the range. They need no raw events, and the invoice's
total is the same sum the rollups would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import orjson
from clickhouse_connect.driver.client import Client

from tokenops.errors import TokenopsError
from tokenops.schemas import TOKEN_TYPES
from tokenops.sinks.clickhouse import finality, time_zones
from tokenops.sinks.clickhouse.finality import Finality
from tokenops.sinks.clickhouse.invoice_model import (
    AdjustmentLine,
    Invoice,
    invoice_from_json,
)
from tokenops.sinks.clickhouse.region_lines import PricedRow, region_lines

UsageBy = Literal["model", "day", "hour", "month", "region"]
CENT = Decimal("0.01")
COUNTS = (*TOKEN_TYPES, "event_count")

_HOURLY = f"""SELECT model, hour AS t, {", ".join(COUNTS)} FROM hourly_usage
    WHERE tenant_id = {{tenant:String}} AND hour >= {{start:DateTime('UTC')}}
      AND hour < {{end:DateTime('UTC')}}"""
_WINDOWS = f"""SELECT model, region, toDateTime(window_start, 'UTC') AS t,
    {", ".join(COUNTS)}
    FROM window_totals_latest
    WHERE tenant_id = {{tenant:String}} AND window_start >= {{start:DateTime64(3, 'UTC')}}
      AND window_start < {{end:DateTime64(3, 'UTC')}}"""
_BUCKETS = {
    "model": None,
    "region": "region",
    "hour": "toString(toStartOfHour(t, {tz:String}))",
    "day": "toString(toDate(t, {tz:String}))",
    "month": "toString(toStartOfMonth(t, {tz:String}))",
}
# Input counts include cached tokens and output counts include reasoning tokens
# (OpenTelemetry GenAI): the input and output lines bill what remains, so each token is
# billed exactly once. Signed, so an adjustment can be negative.
BILLABLE = """ARRAY JOIN [
    ('input_tokens', toInt64(input_tokens) - cache_read_input_tokens - cache_creation_input_tokens),
    ('cache_read_input_tokens', toInt64(cache_read_input_tokens)),
    ('cache_creation_input_tokens', toInt64(cache_creation_input_tokens)),
    ('output_tokens', toInt64(output_tokens) - reasoning_output_tokens),
    ('reasoning_output_tokens', toInt64(reasoning_output_tokens))
] AS line"""


def priced(source: str, keys: str = "") -> str:
    """Billable quantities of `source` (with a time `t`) priced as of `t`, one row per
    `keys`, model, token type and unit price; `priced` = 0 marks no price in effect."""
    extra = f"{keys}, " if keys else ""
    return f"""SELECT {extra}b.model AS model, b.token_type AS token_type,
        p.currency AS currency, p.price_per_million AS unit, p.model != '' AS priced,
        sum(b.quantity) AS quantity, sum(b.events) AS events,
        sum(toDecimal128(b.quantity, 0) * toDecimal128(p.price_per_million, 15)) / 1000000
            AS amount
    FROM (SELECT *, tupleElement(line, 1) AS token_type, tupleElement(line, 2) AS quantity,
            event_count AS events FROM ({source}) {BILLABLE}) AS b
    ASOF LEFT JOIN current_prices AS p
        ON b.model = p.model AND b.token_type = p.token_type AND b.t >= p.effective_from
    WHERE b.quantity != 0
    GROUP BY {extra}model, token_type, currency, unit, priced
    ORDER BY {extra}model, token_type, unit"""


def _source(start: datetime, end: datetime) -> str:
    return _HOURLY if time_zones.whole_utc_hours(start, end) else _WINDOWS


def check_range(start: datetime, end: datetime) -> None:
    if start >= end:
        raise TokenopsError(
            f"--from {start.isoformat()} is not before --to {end.isoformat()}",
            hint="give --from earlier than --to (the range is [from, to))",
        )


def check_tenant(client: Client, tenant: str) -> None:
    """An unknown tenant is an error naming a few known ones, never an empty answer."""
    seen = client.query(
        "SELECT count() FROM (SELECT tenant_id FROM window_totals WHERE tenant_id = {t:String}"
        " LIMIT 1 UNION ALL SELECT tenant_id FROM raw_events WHERE tenant_id = {t:String}"
        " LIMIT 1)",
        parameters={"t": tenant},
    ).result_rows[0][0]
    if seen:
        return
    known = [
        str(row[0])
        for row in client.query(
            "SELECT DISTINCT tenant_id FROM window_totals ORDER BY tenant_id LIMIT 5"
        ).result_rows
    ]
    raise TokenopsError(
        f"unknown tenant {tenant!r}: the store has no usage for it",
        hint=f"known tenants include {', '.join(known)}" if known else "the store is empty",
    )


@dataclass
class Usage:
    tenant_id: str
    start: datetime
    end: datetime
    time_zone: str
    rows: list[dict[str, Any]]
    finality: Finality


def usage(
    client: Client,
    tenant: str,
    start: datetime,
    end: datetime,
    by: UsageBy,
    time_zone: str = "UTC",
) -> Usage:
    """Token totals of `tenant` in [start, end), grouped by model, by local hour, day or
    month of `time_zone`, or by region (the bucket; '' for events without one), with how
    final they are."""
    check_range(start, end)
    time_zones.zone(time_zone)
    check_tenant(client, tenant)
    bucket = _BUCKETS[by]
    sums = ", ".join(f"sum({c}) AS {c}" for c in COUNTS)
    keys = "model" if bucket is None else "bucket, model"
    select = keys if bucket is None else f"{bucket} AS bucket, model"
    source = _WINDOWS if by == "region" else _source(start, end)
    sql = f"SELECT {select}, {sums} FROM ({source}) GROUP BY {keys} ORDER BY {keys}"
    params = {"tenant": tenant, "start": start, "end": end, "tz": time_zone}
    result = client.query(sql, parameters=params)
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    return Usage(tenant, start, end, time_zone, rows, finality.of_range(client, tenant, start, end))


def live_invoice(client: Client, tenant: str, month: date, time_zone: str = "UTC") -> Invoice:
    """The invoice as the store's totals stand now (what closing the month freezes): one
    line per model, region, token type and unit price."""
    start, end = time_zones.month_range(month, time_zone)
    params = {"tenant": tenant, "start": start, "end": end}
    bill = Invoice(tenant, month.replace(day=1), time_zone)
    unpriced: dict[tuple[str, str], int] = {}
    rows: list[PricedRow] = []
    for row in client.query(priced(_WINDOWS, "region"), parameters=params).result_rows:
        region, model, token_type, currency, unit, is_priced, quantity, _, amount = row
        if not is_priced:  # one entry per model and token type, all regions together
            unpriced[(model, token_type)] = unpriced.get((model, token_type), 0) + int(quantity)
            continue
        rows.append(
            (
                region,
                model,
                token_type,
                currency,
                _plain(Decimal(unit)),
                int(quantity),
                Decimal(amount),
            )
        )
    bill.lines = region_lines(rows)
    bill.unpriced = [(model, token_type, qty) for (model, token_type), qty in unpriced.items()]
    bill.adjustments = adjustments(client, tenant, bill.month)
    return bill


_ADJUSTMENTS = f"""SELECT model, region, toDateTime(window_start, 'UTC') AS t, original_number,
    toString(original_month) AS original, toString(window_start) AS window, window_size_s,
    {", ".join(COUNTS)}
    FROM invoice_adjustments FINAL
    WHERE tenant_id = {{tenant:String}} AND target_month = {{month:Date}}"""


def adjustments(client: Client, tenant: str, month: date) -> list[AdjustmentLine]:
    """The adjustment lines billed on `tenant`'s invoice of `month`."""
    sql = priced(_ADJUSTMENTS, "original_number, original, window, region")
    out = []
    rows = client.query(sql, parameters={"tenant": tenant, "month": month}).result_rows
    for row in rows:
        number, original, window, region, model, token_type, currency, unit, _, qty = row[:10]
        events, amount = row[10:]
        exact = Decimal(amount or 0)
        out.append(
            AdjustmentLine(
                number,
                original[:7],
                window,
                model,
                token_type,
                int(events),
                int(qty),
                _plain(Decimal(unit or 0)),
                currency or "",
                exact.quantize(CENT, rounding=ROUND_HALF_UP),
                exact,
                region,
            )
        )
    return out


def invoice(client: Client, tenant: str, month: date, time_zone: str = "UTC") -> Invoice:
    """`tenant`'s invoice of `month` in `time_zone`: frozen once the month closed, else live."""
    time_zones.zone(time_zone)
    check_tenant(client, tenant)
    month = month.replace(day=1)
    frozen = frozen_invoice(client, tenant, month)
    bill = frozen if frozen is not None else live_invoice(client, tenant, month, time_zone)
    start, end = time_zones.month_range(month, bill.time_zone)
    bill.finality = finality.of_range(client, tenant, start, end, closed=frozen is not None)
    return bill


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros and without an exponent: 10.000000000 -> 10, 2.50 -> 2.5."""
    return Decimal(format(value.normalize(), "f"))


def frozen_invoice(client: Client, tenant: str, month: date) -> Invoice | None:
    """The invoice frozen when `tenant`'s `month` closed, or None while it is open."""
    rows = client.query(
        "SELECT document, number, content_hash, closed_at FROM invoices FINAL"
        " WHERE tenant_id = {tenant:String} AND month = {month:Date}",
        parameters={"tenant": tenant, "month": month},
    ).result_rows
    if not rows:
        return None
    document, number, content_hash, closed_at = rows[0]
    bill = invoice_from_json(orjson.loads(document))
    bill.number, bill.content_hash, bill.closed_at = number, content_hash, closed_at
    return bill
