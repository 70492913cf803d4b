"""Closing months and turning late corrections into adjustments (the sink does both).

A tenant's month (in its billing time zone) closes when `as_of`, the lowest partition
watermark, passed the month's end plus the allowed lateness, and the window totals of
the month hold every stored raw event of it (the worker's output caught up). Closing
freezes the invoice: its document, a number and the document's SHA-256 go to
`invoices`, never to change.

A window correction that arrives for a closed month changes the ledger but not the sent
invoice: its deltas against the totals stored before it become an adjustment, billed on
the tenant's next open month and naming the original invoice and the window.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import orjson
from clickhouse_connect.driver.client import Client

from tokenops.schemas import TOKEN_TYPES, WindowTotals
from tokenops.sinks.clickhouse import finality, time_zones
from tokenops.sinks.clickhouse.billing import live_invoice
from tokenops.sinks.clickhouse.invoice_model import content_hash, invoice_document

logger = logging.getLogger(__name__)

ZoneOf = Callable[[str], str]
ADJUSTMENT_COLUMNS = [
    "tenant_id",
    "target_month",
    "original_number",
    "original_month",
    "model",
    "region",
    "window_start",
    "window_size_s",
    "revision",
    "new_event_count",
    "event_count",
    *TOKEN_TYPES,
]
COUNTS = (*TOKEN_TYPES, "event_count")
# Months are looked for among the last ~3 months of usage before `as_of`: the scan runs
# every few seconds, and a month older than that closed long ago (or predates the store).
LOOK_BACK_DAYS = 95


def invoice_number(tenant: str, month: date) -> str:
    """Stable and unique per tenant and month, whatever characters the tenant id holds."""
    return f"INV-{month:%Y%m}-{hashlib.sha256(tenant.encode()).hexdigest()[:10].upper()}"


def _closed(client: Client, tenants: Sequence[str]) -> dict[str, dict[date, tuple[str, str]]]:
    """tenant -> {month: (number, time zone)} of its closed months."""
    out: dict[str, dict[date, tuple[str, str]]] = {}
    for tenant, month, number, zone in client.query(
        "SELECT tenant_id, month, number, time_zone FROM invoices FINAL"
        " WHERE tenant_id IN {tenants:Array(String)}",
        parameters={"tenants": list(tenants)},
    ).result_rows:
        out.setdefault(tenant, {})[month] = (number, zone)
    return out


def adjustment_rows(client: Client, windows: Sequence[WindowTotals]) -> list[list[object]]:
    """Adjustments for the windows of this batch that correct a closed month; call
    before the windows are stored (the deltas are against what the store holds)."""
    closed = _closed(client, sorted({w.tenant_id for w in windows}))
    if not closed:
        return []
    late = []
    for w in windows:
        months = closed.get(w.tenant_id)
        if not months:
            continue
        zone = next(iter(months.values()))[1]
        start = datetime.fromtimestamp(w.window_start_ms / 1000, UTC)
        month = time_zones.local_date(start, zone).replace(day=1)
        if month in months:
            late.append((w, month))
    if not late:
        return []
    keys = [(w.tenant_id, w.model, w.region, w.window_start_ms, w.window_size_s) for w, _ in late]
    stored = {
        tuple(row[:5]): row[5:]
        for row in client.query(
            f"""SELECT tenant_id, model, region, toUnixTimestamp64Milli(window_start),
                window_size_s, revision, {", ".join(COUNTS)} FROM window_totals FINAL
            WHERE (tenant_id, model, region, toUnixTimestamp64Milli(window_start), window_size_s)
                IN {{keys:Array(Tuple(String, String, String, Int64, UInt32))}}""",
            parameters={"keys": keys},
        ).result_rows
    }
    rows: list[list[object]] = []
    for (w, month), key in zip(late, keys, strict=True):
        old = stored.get(key)
        if old is not None and (w.revision, w.event_count) <= (old[0], old[-1]):
            continue  # a replay, or an older emission: nothing new
        before = list(old[1:]) if old is not None else [0] * len(COUNTS)
        after = [*w.tokens().values(), w.event_count]
        delta = [a - b for a, b in zip(after, before, strict=True)]
        months = closed[w.tenant_id]
        target = time_zones.next_month(month)
        while target in months:
            target = time_zones.next_month(target)
        rows.append(
            [
                w.tenant_id,
                target,
                months[month][0],
                month,
                w.model,
                w.region,
                w.window_start_ms,
                w.window_size_s,
                w.revision,
                w.event_count,
                delta[-1],
                *delta[:-1],
            ]
        )
    return rows


def close_months(client: Client, zone_of: ZoneOf, lateness_s: float) -> list[str]:
    """Freeze every tenant month that is now closed; returns the invoice numbers."""
    moment = finality.as_of(client)
    if moment is None:
        return []
    cutoff = moment - timedelta(seconds=lateness_s)
    # Per tenant and UTC month of usage, its first and last hour: the local months a
    # tenant has usage in lie between the local months of those two moments. Months
    # without usage are never candidates: each candidate costs a scan of the month's raw
    # events and a live invoice, and with this running every CLOSE_EVERY_S inside the
    # write path, an empty neighbour month of every tenant (which never freezes, as it
    # has no lines) stalled the sink's writes at the start of each month.
    spans = client.query(
        "SELECT tenant_id, min(hour), max(hour) FROM hourly_usage"
        " WHERE hour < {cutoff:DateTime('UTC')}"
        f" AND hour >= {{cutoff:DateTime('UTC')}} - INTERVAL {LOOK_BACK_DAYS} DAY"
        " GROUP BY tenant_id, toStartOfMonth(hour) ORDER BY tenant_id",
        parameters={"cutoff": cutoff},
    ).result_rows
    by_tenant: dict[str, list[tuple[datetime, datetime]]] = {}
    for tenant, first, last in spans:
        by_tenant.setdefault(str(tenant), []).append((_utc(first), _utc(last)))
    closed = _closed(client, list(by_tenant))
    done = []
    for tenant, hours in by_tenant.items():
        zone = zone_of(tenant)
        candidates = set()
        for first, last in hours:
            month = _local_month(first, zone)
            end_month = _local_month(last + timedelta(hours=1) - timedelta(milliseconds=1), zone)
            while month <= end_month:
                candidates.add(month)
                month = time_zones.next_month(month)
        for month in sorted(candidates):
            start, end = time_zones.month_range(month, zone)
            if month in closed.get(tenant, {}) or end > cutoff:
                continue
            if not _caught_up(client, tenant, start, end):
                continue
            number = _freeze(client, tenant, month, zone, moment)
            if number:
                closed.setdefault(tenant, {})[month] = (number, zone)
                done.append(number)
    return done


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _local_month(moment: datetime, zone: str) -> date:
    return time_zones.local_date(moment, zone).replace(day=1)


def _caught_up(client: Client, tenant: str, start: datetime, end: datetime) -> bool:
    """The month's window totals hold as many events as its stored raw events."""
    params = {"t": tenant, "start": start, "end": end}
    raw, windows = client.query(
        """SELECT
            (SELECT count() FROM raw_events_latest WHERE tenant_id = {t:String}
                AND time >= {start:DateTime64(3, 'UTC')} AND time < {end:DateTime64(3, 'UTC')}),
            (SELECT sum(event_count) FROM window_totals_latest WHERE tenant_id = {t:String}
                AND window_start >= {start:DateTime64(3, 'UTC')}
                AND window_start < {end:DateTime64(3, 'UTC')})""",
        parameters=params,
    ).result_rows[0]
    return int(raw) == int(windows or 0)


def _freeze(client: Client, tenant: str, month: date, zone: str, moment: datetime) -> str | None:
    bill = live_invoice(client, tenant, month, zone)
    if not bill.lines and not bill.adjustments:
        return None
    if bill.unpriced:
        logger.warning("month not closed: usage without a price tenant=%s month=%s", tenant, month)
        return None
    document = invoice_document(bill)
    number = invoice_number(tenant, month)
    client.insert(
        "invoices",
        [
            [
                tenant,
                month,
                zone,
                number,
                content_hash(document),
                orjson.dumps(document).decode(),
                moment,
            ]
        ],
        column_names=[
            "tenant_id",
            "month",
            "time_zone",
            "number",
            "content_hash",
            "document",
            "as_of",
        ],
    )
    logger.info("month closed tenant=%s month=%s invoice=%s", tenant, month, number)
    return number
