"""Month closing asks ClickHouse only about months that have usage, on a real embedded
ClickHouse (chDB).

`close_months` runs inside the sink's write path every few seconds. Each candidate month
costs a scan of its raw events and a live invoice; when every tenant's empty neighbour
months were candidates (they never freeze, having no lines), the sink spent its time
there from the first day of each month on, and its writes stalled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.clickhouse_helpers import ms, window
from tests.integration.test_clickhouse_region_adjustments import (  # noqa: F401 (fixture)
    CLOSING,
    PER_EVENT,
    store,
)
from tokenops.sinks.clickhouse import ClickHouseStore
from tokenops.sinks.clickhouse.closing import close_months
from tokenops.sinks.clickhouse.watermarks import WATERMARK_COLUMNS
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

TENANTS = 30


def test_tenants_with_usage_only_in_the_open_month_cost_no_per_tenant_query(
    store: ClickHouseStore,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = store.client
    december = ms(2026, 12, 1, 10, 0)
    windows = [
        window(f"t{n:02d}", "gpt-4o", december, events=1, **PER_EVENT) for n in range(TENANTS)
    ]
    ClickHouseWriter(client, closing=CLOSING).write_windows(windows)
    client.insert(  # past November's end, December still open
        "partition_watermarks",
        [[0, 1, datetime(2026, 12, 2, tzinfo=UTC)]],
        column_names=WATERMARK_COLUMNS,
    )
    queries: list[str] = []
    query: Callable[..., Any] = client.query

    def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
        queries.append(sql)
        return query(sql, *args, **kwargs)

    monkeypatch.setattr(client, "query", counted)
    assert close_months(client, CLOSING.zone_of, CLOSING.lateness_s) == []
    # as_of, the usage spans, the closed months: nothing per tenant (the old candidates,
    # November and January of every tenant, cost two queries each for November)
    assert len(queries) <= 3, queries
