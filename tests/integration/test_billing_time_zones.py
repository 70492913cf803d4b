"""Billing in the tenant's time zone, on a real embedded ClickHouse (chDB).

Windows are placed a minute either side of each local month's ends, so a total over the
wrong month (UTC instead of local, or an hour off at a :30/:45 offset or across DST)
differs. Totals over the local month must equal the sum of its windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.clickhouse_helpers import window
from tokenops.errors import TokenopsError
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.billing import invoice, usage
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.time_zones import day_range, month_range
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

ZONES = ["UTC", "Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York"]
NOV = date(2026, 11, 1)  # America/New_York leaves DST on 2026-11-01


@pytest.fixture
def store(chdb_dsn: str, tmp_path: Path) -> Iterator[ClickHouseStore]:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        yield opened


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize("zone", ZONES)
def test_local_month_and_day_totals_equal_the_events_in_them(
    store: ClickHouseStore, zone: str
) -> None:
    tenant = f"t-{zone}"
    start, end = month_range(NOV, zone)
    minute = timedelta(minutes=1)
    inside = [start, start + minute, end - minute, end - 2 * minute]
    outside = [start - minute, end, end + minute]
    # 1..4 events inside, 100 per window outside: any boundary mistake shows
    windows = [window(tenant, "gpt-4o", _ms(t), events=i + 1) for i, t in enumerate(inside)]
    windows += [window(tenant, "gpt-4o", _ms(t), events=100) for t in outside]
    ClickHouseWriter(store.client).write_windows(windows)

    result = usage(store.client, tenant, start, end, "model", zone)
    assert [r["event_count"] for r in result.rows] == [1 + 2 + 3 + 4]
    monthly = usage(store.client, tenant, start, end, "month", zone)
    assert monthly.rows[0]["bucket"] == "2026-11-01"
    bill = invoice(store.client, tenant, NOV, zone)
    assert bill.time_zone == zone and bill.lines
    cached = {line.quantity for line in bill.lines if line.token_type == "cache_read_input_tokens"}
    assert cached == {100 * 10}
    assert bill.final is False and bill.finality.as_of is None  # no watermark yet
    # the first local day: two windows at its very start
    first_day = usage(store.client, tenant, *day_range(NOV, zone), "day", zone)
    assert [(r["bucket"], r["event_count"]) for r in first_day.rows] == [("2026-11-01", 3)]


def test_a_dst_day_lasts_25_hours_in_new_york(store: ClickHouseStore) -> None:
    zone = "America/New_York"
    start, end = day_range(NOV, zone)
    assert end - start == timedelta(hours=25)
    ClickHouseWriter(store.client).write_windows(
        [window("ny", "gpt-4o", _ms(end - timedelta(minutes=30)), events=7)]
    )
    rows = usage(store.client, "ny", start, end, "day", zone).rows
    assert [(r["bucket"], r["event_count"]) for r in rows] == [("2026-11-01", 7)]


def test_bad_ranges_and_unknown_tenants_are_errors(store: ClickHouseStore) -> None:
    ClickHouseWriter(store.client).write_windows(
        [window("acme", "gpt-4o", _ms(datetime(2026, 11, 3, tzinfo=UTC)))]
    )
    start, end = month_range(NOV, "UTC")
    with pytest.raises(TokenopsError, match="is not before"):
        usage(store.client, "acme", end, start, "model")
    with pytest.raises(TokenopsError, match="unknown tenant 'acme2'") as caught:
        usage(store.client, "acme2", start, end, "model")
    assert caught.value.hint == "known tenants include acme"
    with pytest.raises(TokenopsError, match="unknown time zone"):
        invoice(store.client, "acme", NOV, "Mars/Olympus")
