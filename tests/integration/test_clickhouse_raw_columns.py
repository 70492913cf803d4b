"""The columnar raw-event decode stores the same `raw_events` rows as the per-event path,
in a real embedded ClickHouse (chDB), for v1 and v2 batch records and single events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.test_clickhouse_raw_columns import encoded, per_event_decode_chunk
from tokenops.schemas import UsageEvent
from tokenops.sinks.base import UNREADABLE
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.decoding import RawRecord, decode_chunk
from tokenops.sinks.clickhouse.rows import Batch
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

T0 = datetime(2026, 11, 3, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture
def store(chdb_dsn: str, tmp_path: Path) -> Iterator[ClickHouseStore]:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        yield opened


def usage_events(tenant: str, count: int, start: int) -> list[UsageEvent]:
    """Events with every kind of column: optional ids present and absent, attributes on
    some events only, reasoning and cache tokens, times across an hour boundary."""
    return [
        UsageEvent(
            id=f"{tenant}-{start + i}",
            source=f"//node/{i % 3}",
            time=T0 + timedelta(minutes=25 * i, milliseconds=i),
            tenant_id=tenant,
            model=("gpt-4o", "claude-x")[i % 2],
            provider="acme-ai",
            operation=("chat", "embed")[i % 2],
            input_tokens=1000 + i,
            output_tokens=500,
            cache_read_input_tokens=i,
            cache_creation_input_tokens=1,
            reasoning_output_tokens=i % 7,
            project_id=f"p-{i}" if i % 2 else None,
            region="eu-1" if i % 3 else None,
            node_id="n-1",
            attributes={"deployment": "blue", "n": str(i)} if i % 4 == 1 else {},
        )
        for i in range(count)
    ]


def stored_rows(store: ClickHouseStore, records: list[RawRecord], columnar: bool) -> list[object]:
    store.client.command("TRUNCATE TABLE raw_events")
    decode = decode_chunk if columnar else per_event_decode_chunk
    columns, skipped = decode(records)
    batch = Batch()
    batch.events = columns
    ClickHouseWriter(store.client).write(batch)
    rows = store.client.query(
        "SELECT * EXCEPT inserted_at FROM raw_events ORDER BY kafka_partition, kafka_offset, id"
    ).result_rows
    return [[skip.reason for skip in skipped], *rows]


@pytest.mark.parametrize("kind", ["v1", "v2", "event"])
def test_the_columnar_path_stores_the_rows_of_the_per_event_path(
    store: ClickHouseStore, kind: str
) -> None:
    records: list[RawRecord] = []
    for n in range(6):
        events = usage_events(f"tenant-{n % 2}", 1 if kind == "event" else 9, 100 * n)
        records.append((*encoded(events, kind), n % 4, 1000 + n))
    records.insert(3, (b"{broken", None, 2, 999))
    before = stored_rows(store, records, columnar=False)
    after = stored_rows(store, records, columnar=True)
    assert after == before
    assert before[0] == [UNREADABLE] and len(before) == 1 + 6 * (1 if kind == "event" else 9)
