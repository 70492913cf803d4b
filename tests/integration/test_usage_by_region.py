"""Usage by region (issue 20), in a real embedded ClickHouse (chDB): the window totals
are per tenant and model across regions, so `usage(..., "region")` sums the billing view
of raw events. Two regions' fleets, duplicates included, are stored as the sink stores
them; each region's sums equal that region's ledger, and the regions add up to the
window totals the usage by model reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tokenops.schemas import EVENT_HEADERS, UsageEvent, WindowTotals, encode_event
from tokenops.simulate.ledger import ExpectedTotals, Ledger
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.billing import COUNTS, usage
from tokenops.sinks.clickhouse.decoding import RawRecord, decode_chunk
from tokenops.sinks.clickhouse.rows import Batch
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
DAY = START.replace(hour=0), START.replace(day=4, hour=0)
WINDOW_S = 60


@pytest.fixture
def store(chdb_dsn: str, tmp_path: Path) -> Iterator[ClickHouseStore]:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        yield opened


def fleet(region: str, seed: int) -> Simulator:
    return Simulator(
        SimulationConfig(
            tenants=3,
            rate=300,
            duration_s=2,
            seed=seed,
            start_ms=int(START.timestamp() * 1000),
            regions=(region,),
            duplicate_share=0.05,
        )
    )


def store_fleets(store: ClickHouseStore) -> dict[str, Ledger]:
    """Each region's events as raw events (duplicates too, at later offsets of the same
    partition, as a replay stores them) and the window totals of both together."""
    ledgers: dict[str, Ledger] = {}
    records: list[RawRecord] = []
    for seed, region in enumerate(("west", "central")):
        ledger = ledgers[region] = Ledger()
        for emission in fleet(region, seed).emissions():
            assert emission.fields is not None
            if not emission.duplicate:
                ledger.count_fields(emission.fields)
            value = encode_event(UsageEvent(**emission.fields))
            records.append((value, EVENT_HEADERS, 0, len(records)))
    columns, invalid = decode_chunk(records)
    assert not invalid
    batch = Batch()
    batch.events = columns
    writer = ClickHouseWriter(store.client)
    writer.write(batch)
    windows: dict[tuple[str, str, int], list[int]] = {}
    for ledger in ledgers.values():
        for key, totals in ledger.expected_windows(WINDOW_S).items():
            sums = windows.setdefault(key, [0] * len(COUNTS))
            windows[key] = [a + b for a, b in zip(sums, totals, strict=True)]
    writer.write_windows(
        WindowTotals(
            tenant_id=tenant,
            model=model,
            window_start_ms=start_ms,
            window_size_s=WINDOW_S,
            **dict(zip(COUNTS, sums, strict=True)),
            first_event_time_ms=start_ms,
            last_event_time_ms=start_ms + WINDOW_S * 1000 - 1,
            revision=1,
            emitted_at_ms=start_ms + WINDOW_S * 1000,
        )
        for (tenant, model, start_ms), sums in windows.items()
    )
    return ledgers


def test_each_regions_usage_equals_its_ledger_and_all_add_up_to_the_window_totals(
    store: ClickHouseStore,
) -> None:
    ledgers = store_fleets(store)
    tenants = {t for ledger in ledgers.values() for t in ledger.expected_by_tenant()}
    assert len(tenants) == 3
    for tenant in sorted(tenants):
        by_region = usage(store.client, tenant, *DAY, "region").rows
        assert {r["bucket"] for r in by_region} == {"west", "central"}
        for region, ledger in ledgers.items():
            got = [0] * len(COUNTS)
            for row in (r for r in by_region if r["bucket"] == region):
                got = [a + int(row[c]) for a, c in zip(got, COUNTS, strict=True)]
            assert ExpectedTotals(*got) == ledger.expected_by_tenant()[tenant], (tenant, region)
        per_model: dict[str, list[int]] = {}
        for row in by_region:
            sums = per_model.setdefault(row["model"], [0] * len(COUNTS))
            per_model[row["model"]] = [a + int(row[c]) for a, c in zip(sums, COUNTS, strict=True)]
        by_model = usage(store.client, tenant, *DAY, "model").rows  # the window totals
        assert {r["model"]: [int(r[c]) for c in COUNTS] for r in by_model} == per_model
