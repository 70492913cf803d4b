"""Reconciliation: raw events vs window totals vs hour, day and month rollups, and
closed invoices plus their adjustments vs the ledger.

Each check aggregates two levels to the same (tenant, model, region, bucket) and lists
every bucket where any token count or the event count differs. Region is part of a
window's identity, so raw events vs window totals and the closed-invoice check compare
per region ('' for events without one): a quantity counted under the wrong region is a
difference even when the regions' sum is right. The rollups sum regions together, so
the checks of window totals vs hours and of the rollups with each other compare with
region ''. Ranges are widened to whole buckets, so a check never compares a partial
bucket with a complete one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from clickhouse_connect.driver.client import Client

from tokenops.schemas import TOKEN_TYPES
from tokenops.sinks.clickhouse import billing
from tokenops.sinks.clickhouse.errors import ClickHouseError
from tokenops.sinks.clickhouse.invoice_model import content_hash

COUNTS = (*TOKEN_TYPES, "event_count")
_RAW_SUMS = ", ".join(f"sum({t}) AS {t}" for t in TOKEN_TYPES) + ", count() AS event_count"
_SUMS = ", ".join(f"sum({c}) AS {c}" for c in COUNTS)
_SUMS_ROW = ", ".join(COUNTS)
_IN_RANGE = "{col} >= {{start:DateTime('UTC')}} AND {col} < {{end:DateTime('UTC')}}"


@dataclass(frozen=True)
class Difference:
    check: str  # e.g. "raw_events vs window_totals"
    tenant_id: str
    model: str
    bucket: str
    column: str
    expected: int  # the lower level (the source)
    actual: int  # the higher level (derived from it)
    region: str = ""  # '' for events without one, and in the checks of the rollups


def _checks(window_size_s: int) -> list[tuple[str, str, str]]:
    window = f"intDiv(toUnixTimestamp64Milli(time), {window_size_s * 1000}) * {window_size_s}"
    hours = _IN_RANGE.format(col="hour")
    return [
        (
            "raw_events vs window_totals",
            f"""SELECT tenant_id, model, region,
                toString(toDateTime({window}, 'UTC')) AS bucket,
                {_RAW_SUMS} FROM raw_events_latest
                WHERE {_IN_RANGE.format(col="toStartOfHour(time)")}
                GROUP BY tenant_id, model, region, bucket""",
            f"""SELECT tenant_id, model, region,
                toString(toDateTime(window_start, 'UTC')) AS bucket,
                {_SUMS} FROM window_totals_latest
                WHERE window_size_s = {window_size_s}
                  AND {_IN_RANGE.format(col="toStartOfHour(window_start)")}
                GROUP BY tenant_id, model, region, bucket""",
        ),
        (
            "window_totals vs usage_hourly",
            f"""SELECT tenant_id, model, '' AS region,
                toString(toStartOfHour(window_start)) AS bucket,
                {_SUMS} FROM window_totals_latest
                WHERE {_IN_RANGE.format(col="toStartOfHour(window_start)")}
                GROUP BY tenant_id, model, bucket""",
            f"""SELECT tenant_id, model, '' AS region, toString(hour) AS bucket, {_SUMS}
                FROM hourly_usage
                WHERE {hours} GROUP BY tenant_id, model, bucket""",
        ),
        (
            "usage_hourly vs usage_daily",
            f"""SELECT tenant_id, model, '' AS region, toString(toDate(hour)) AS bucket, {_SUMS}
                FROM hourly_usage WHERE {_IN_RANGE.format(col="toStartOfDay(hour)")}
                GROUP BY tenant_id, model, bucket""",
            f"""SELECT tenant_id, model, '' AS region, toString(day) AS bucket, {_SUMS}
                FROM daily_usage
                WHERE {_IN_RANGE.format(col="toDateTime(day, 'UTC')")}
                GROUP BY tenant_id, model, bucket""",
        ),
        (
            "usage_daily vs usage_monthly",
            f"""SELECT tenant_id, model, '' AS region, toString(toStartOfMonth(day)) AS bucket,
                {_SUMS}
                FROM daily_usage
                WHERE {_IN_RANGE.format(col="toDateTime(toStartOfMonth(day), 'UTC')")}
                GROUP BY tenant_id, model, bucket""",
            f"""SELECT tenant_id, model, '' AS region, toString(month) AS bucket, {_SUMS}
                FROM monthly_usage
                WHERE {_IN_RANGE.format(col="toDateTime(month, 'UTC')")}
                GROUP BY tenant_id, model, bucket""",
        ),
    ]


def reconcile(
    client: Client, start: datetime, end: datetime, *, raw_events: bool = True
) -> tuple[list[str], list[Difference]]:
    """(checks run, differences) for [start, end), widened to whole hours/days/months."""
    params = {"start": start, "end": end}
    sizes = client.query(
        "SELECT DISTINCT window_size_s FROM window_totals_latest WHERE "
        + _IN_RANGE.format(col="window_start"),
        parameters=params,
    ).result_rows
    if len(sizes) > 1:
        raise ClickHouseError(
            f"window totals in this range have several window sizes {sorted(s[0] for s in sizes)}",
            hint="reconcile a range written with one window size",
        )
    checks = _checks(int(sizes[0][0]) if sizes else 60)
    if not raw_events:
        checks = checks[1:]
    differences: list[Difference] = []
    # Widen to whole months: the coarsest bucket compared.
    widened = {
        "start": start.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        "end": _next_month(end) if end != _month_start(end) else end,
    }
    for name, lower, upper in checks:
        differences.extend(_compare(client, name, lower, upper, widened))
    differences.extend(closed_invoices(client, widened["start"], widened["end"]))
    return [name for name, _, _ in checks] + [CLOSED_CHECK], differences


def _compare(
    client: Client, name: str, lower: str, upper: str, params: dict[str, datetime]
) -> list[Difference]:
    columns = ", ".join(f"l.{c}, u.{c}" for c in COUNTS)
    differs = " OR ".join(f"l.{c} != u.{c}" for c in COUNTS)
    keys = "tenant_id, model, region, bucket"
    sql = f"""SELECT {keys}, {columns}
        FROM ({lower}) AS l FULL OUTER JOIN ({upper}) AS u USING ({keys})
        WHERE {differs} ORDER BY {keys}"""
    out = []
    for row in client.query(sql, parameters=params).result_rows:
        tenant, model, region, bucket, *values = row
        for i, column in enumerate(COUNTS):
            expected, actual = int(values[2 * i]), int(values[2 * i + 1])
            if expected != actual:
                out.append(
                    Difference(name, tenant, model, bucket, column, expected, actual, region)
                )
    return out


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(moment: datetime) -> datetime:
    start = _month_start(moment)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


CLOSED_CHECK = "closed invoices + adjustments vs ledger"


def closed_invoices(client: Client, start: datetime, end: datetime) -> list[Difference]:
    """Every invoice closed for a month in [start, end): its frozen lines plus every
    adjustment naming it equal the ledger's billable quantities for that local month
    now, per model, region and token type, and its stored content hash is the hash of
    its stored document."""
    out: list[Difference] = []
    frozen = client.query(
        "SELECT tenant_id, month, time_zone, number, content_hash, document FROM invoices FINAL"
        " WHERE month >= toDate({start:DateTime('UTC')}) AND month < toDate({end:DateTime('UTC')})"
        " ORDER BY tenant_id, month",
        parameters={"start": start, "end": end},
    ).result_rows
    for tenant, month, zone, number, stored_hash, document in frozen:
        bucket = str(month)[:7]
        data = orjson.loads(document)
        if content_hash(data) != stored_hash:
            out.append(Difference(CLOSED_CHECK, tenant, "", bucket, "content_hash", 0, 1))
        # (model, region, token type) -> quantity; a line without a region is region ''.
        billed: dict[tuple[str, str, str], int] = {}
        for line in data["lines"]:
            key = (line["model"], line.get("region", ""), line["token_type"])
            billed[key] = billed.get(key, 0) + int(line["quantity"])
        for row in client.query(
            billing.priced(_ADJUSTED, "original_number, region"), parameters={"number": number}
        ).result_rows:
            key = (row[2], row[1], row[3])
            billed[key] = billed.get(key, 0) + int(row[7])
        ledger: dict[tuple[str, str, str], int] = {}
        for live in billing.live_invoice(client, tenant, month, zone).lines:
            key = (live.model, live.region, live.token_type)
            ledger[key] = ledger.get(key, 0) + live.quantity
        for key in sorted(set(billed) | set(ledger)):
            model, region, token_type = key
            expected, actual = ledger.get(key, 0), billed.get(key, 0)
            if expected != actual:
                out.append(
                    Difference(
                        CLOSED_CHECK, tenant, model, bucket, token_type, expected, actual, region
                    )
                )
    return out


_ADJUSTED = f"""SELECT original_number, model, region, toDateTime(window_start, 'UTC') AS t,
    {_SUMS_ROW}
    FROM invoice_adjustments FINAL WHERE original_number = {{number:String}}"""
