"""Usage and invoices by region (issue 20), on a real broker and a real embedded
ClickHouse (chDB), with raw events off: region is part of a window's identity.

Two regions' fleets send the same tenants and models in the same minutes (duplicates
included) to a usage topic. The worker's batch logic (`PartitionState`) counts them and
its window totals go to the aggregates topic; the ClickHouse sink stores them. Then the
two regions' windows of one tenant, model and minute are two rows, usage by region
equals each region's ledger, and the invoice's lines by region add up to its total and
to the lines a region-less count bills.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from tests.e2e.test_clickhouse_pipeline import hand_invoices
from tests.e2e.test_regions import add_up
from tokenops.schemas import EVENT_HEADERS, UsageEvent, encode_event
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.simulate.ledger import ExpectedTotals, Ledger
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.billing import COUNTS, live_invoice, usage
from tokenops.sinks.clickhouse.metrics import SinkMetrics
from tokenops.sinks.clickhouse.service import LockedWriter, prepare_store
from tokenops.sinks.clickhouse.sink import ClickHouseSink
from tokenops.sinks.clickhouse.writer import ClickHouseWriter
from tokenops.streams.partition import InputRecord, PartitionState
from tokenops.streams.state.store import PartitionStore
from tokenops.topics import read_to_end

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
DAY = START.replace(hour=0), START.replace(day=4, hour=0)
REGIONS = ("west", "central")
WINDOW_S = 60


def send_fleets(kafka: KafkaSettings, topic: str) -> dict[str, Ledger]:
    """Both regions' fleets (same tenants, same start, different ids), duplicates too."""
    producer = Producer(kafka.librdkafka())
    ledgers: dict[str, Ledger] = {}
    for seed, region in enumerate(REGIONS):
        ledger = ledgers[region] = Ledger()
        config = SimulationConfig(
            tenants=3,
            rate=300,
            duration_s=2,
            seed=seed,
            start_ms=int(START.timestamp() * 1000),
            regions=(region,),
            duplicate_share=0.05,
        )
        for emission in Simulator(config).emissions():
            assert emission.fields is not None
            if not emission.duplicate:
                ledger.count_fields(emission.fields)
            event = UsageEvent(**emission.fields)
            producer.produce(
                topic, encode_event(event), event.tenant_id.encode(), headers=EVENT_HEADERS
            )
    assert producer.flush(30) == 0
    return ledgers


def count_and_publish(kafka: KafkaSettings, topics: TopicSettings, state_dir: Path) -> None:
    """The worker's batch logic over the usage topic; its window totals (closed by an
    idle tick past the last window) published to the aggregates topic."""

    def decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
        return decode_columns(value, headers, now_ms=now_ms)

    state = PartitionState(
        topic=topics.usage,
        partition=0,
        store=PartitionStore(state_dir, bucket_ms=3_600_000, window_ms=WINDOW_S * 1000),
        owner="test",
        window_s=WINDOW_S,
        lateness_ms=5_000,
        horizon_ms=86_400_000,
        outputs=(topics.aggregates, topics.dead_letter),
        decode=decode,
    )
    now_ms = int(time.time() * 1000)
    records = [
        InputRecord(m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1])
        for m in read_to_end(kafka, topics.usage)
    ]
    outputs, delta, counts = state.process(records, now_ms)
    assert counts.dead_lettered == 0 and counts.duplicates > 0
    state.commit(delta, 1)
    closed = state.idle_tick(now_ms, floor_ms=int(DAY[1].timestamp() * 1000))
    assert closed is not None
    outputs += closed[0]
    state.store.close()
    producer = Producer(kafka.librdkafka())
    for output in outputs:
        assert output.topic == topics.aggregates
        producer.produce(output.topic, output.value, output.key)
    assert producer.flush(30) == 0


def test_two_regions_windows_are_two_rows_and_usage_and_invoices_split_by_region(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], chdb_dsn: str, tmp_path: Path
) -> None:
    topics = TopicSettings(
        usage=new_topic("usage", partitions=1),
        aggregates=new_topic("aggregates", partitions=1),
        dead_letter=new_topic("dlq", partitions=1),
    )
    ledgers = send_fleets(kafka_settings, topics.usage)
    count_and_publish(kafka_settings, topics, tmp_path / "state")
    settings = ClickHouseSettings(
        url=chdb_dsn,
        http_port=0,
        raw_events=False,  # usage and invoices by region read the window totals only
        batch_max_ms=100,
        consumer_group=f"sink-{uuid.uuid4().hex[:8]}",
    )
    expected_windows = sum(len(ledger.expected_windows(WINDOW_S)) for ledger in ledgers.values())
    with open_store(settings, tmp_path / "store") as store:
        prepare_store(store, None)
        lock, stop = threading.Lock(), threading.Event()
        writer = LockedWriter(ClickHouseWriter(store.client), lock)
        sink = ClickHouseSink(
            kafka_settings, topics, settings, writer, SinkMetrics(CollectorRegistry()), stop
        )
        thread = threading.Thread(target=sink.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                with lock:
                    rows = store.client.query("SELECT count() FROM window_totals").result_rows
                if rows[0][0] >= expected_windows:
                    break
                assert time.monotonic() < deadline, "the sink did not store the windows"
                time.sleep(0.2)
        finally:
            stop.set()
            thread.join(30)
        client = store.client

        # two rows for one tenant, model and minute: one per region, neither replaced
        pairs = client.query(
            "SELECT tenant_id, model, window_start, groupArray(region) AS regions"
            " FROM window_totals_latest GROUP BY tenant_id, model, window_start"
            " HAVING length(regions) = 2"
        ).result_rows
        assert pairs and all(sorted(r[3]) == sorted(REGIONS) for r in pairs)

        tenants = {t for ledger in ledgers.values() for t in ledger.expected_by_tenant()}
        assert len(tenants) == 3
        by_hand = hand_invoices(add_up(list(ledgers.values())))
        for tenant in sorted(tenants):
            by_region = usage(client, tenant, *DAY, "region").rows
            assert {r["bucket"] for r in by_region} == set(REGIONS)
            for region, ledger in ledgers.items():
                got = [0] * len(COUNTS)
                for row in (r for r in by_region if r["bucket"] == region):
                    got = [a + int(row[c]) for a, c in zip(got, COUNTS, strict=True)]
                expected = ledger.expected_by_tenant()[tenant]
                assert ExpectedTotals(*got) == expected, (tenant, region)

            bill = live_invoice(client, tenant, START.date())
            assert {line.region for line in bill.lines} == set(REGIONS)
            assert not bill.unpriced
            per_line: dict[str, Decimal] = {}
            for line in bill.lines:
                key = f"{line.model}/{line.token_type}"
                per_line[key] = per_line.get(key, Decimal("0.00")) + line.amount
                assert abs(line.amount - line.exact_amount) < Decimal("0.01")
            # the regions' lines add up to the lines a region-less count bills, and the
            # total is the sum of the lines
            assert per_line == by_hand[(tenant, "2026-11")]
            assert bill.totals["USD"] == sum(line.amount for line in bill.lines)
