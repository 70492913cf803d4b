"""The ClickHouse sink against the real broker and a real embedded ClickHouse store.

Storage failures are injected at the sink's write boundary (`BatchWriter.write`), in
front of the real writer; Kafka and ClickHouse are never mocked.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from tests.clickhouse_helpers import event, ms, window
from tokenops.placement import home_partition
from tokenops.schemas import WindowTotals
from tokenops.schemas.wire import EVENT_HEADERS, encode_event
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.sinks.base import NOT_HOME, UNREADABLE
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.metrics import SinkMetrics
from tokenops.sinks.clickhouse.reconcile import reconcile
from tokenops.sinks.clickhouse.rows import Batch, supersedes
from tokenops.sinks.clickhouse.service import LockedWriter, prepare_store
from tokenops.sinks.clickhouse.sink import ClickHouseSink
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

pytestmark = pytest.mark.integration

NOV = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


class Crash(BaseException):
    """Not an Exception: the sink does not retry it, like a process dying mid-batch."""


@dataclass
class FaultyWriter:
    """The real writer behind a switch: `down` fails every write, `crash_after_write`
    writes the batch and then dies before the sink can commit."""

    inner: LockedWriter
    down: bool = False
    crash_after_write: bool = False
    failures: int = 0
    written: list[int] = field(default_factory=list)

    def write(self, batch: Batch) -> None:
        if self.down:
            self.failures += 1
            raise ConnectionError("injected: ClickHouse unreachable")
        self.inner.write(batch)
        self.written.append(len(batch))
        if self.crash_after_write:
            raise Crash()


@dataclass
class Harness:
    kafka: KafkaSettings
    topics: TopicSettings
    settings: ClickHouseSettings
    store: ClickHouseStore
    lock: threading.Lock
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    running: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    def start(self, writer: FaultyWriter) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        self.registry = CollectorRegistry()
        sink = ClickHouseSink(
            self.kafka, self.topics, self.settings, writer, SinkMetrics(self.registry), stop
        )
        thread = threading.Thread(target=self._run, args=(sink,), daemon=True)
        thread.start()
        self.running.append((thread, stop))
        return thread, stop

    def stop_all(self) -> None:
        for thread, stop in self.running:
            stop.set()
            thread.join(30)

    @staticmethod
    def _run(sink: ClickHouseSink) -> None:
        with contextlib.suppress(Crash):
            sink.run()

    def writer(self) -> FaultyWriter:
        return FaultyWriter(LockedWriter(ClickHouseWriter(self.store.client), self.lock))

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with self.lock:
            return list(self.store.client.query(sql).result_rows)

    def committed(self) -> dict[tuple[str, int], int]:
        consumer = Consumer({**self.kafka.librdkafka(), "group.id": self.settings.consumer_group})
        parts = [
            TopicPartition(t, p)
            for t in (self.topics.aggregates, self.topics.usage)
            for p in range(2)
        ]
        try:
            for _ in range(50):  # a new group's coordinator may not be ready yet
                try:
                    found = consumer.committed(parts, timeout=10)
                except KafkaException:
                    time.sleep(0.2)
                    continue
                return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in found}
            raise AssertionError("cannot read the group's committed offsets")
        finally:
            consumer.close()

    def ends(self) -> dict[tuple[str, int], int]:
        consumer = Consumer({**self.kafka.librdkafka(), "group.id": "probe"})
        try:
            return {
                (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in (self.topics.aggregates, self.topics.usage)
                for p in range(2)
            }
        finally:
            consumer.close()

    def wait(self, condition: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)


def sink_settings(chdb_dsn: str) -> ClickHouseSettings:
    """Small batches and short retries, in a consumer group of its own."""
    return ClickHouseSettings(
        url=chdb_dsn,
        http_port=0,
        batch_max_rows=40,
        batch_max_ms=100,
        retry_initial_ms=20,
        retry_max_ms=200,
        consumer_group=f"sink-{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture
def harness(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], chdb_dsn: str, tmp_path: Path
) -> Iterator[Harness]:
    topics = TopicSettings(
        aggregates=new_topic("aggregates", partitions=2),
        usage=new_topic("usage", partitions=2),
        dead_letter=new_topic("dlq", partitions=2),
    )
    settings = sink_settings(chdb_dsn)
    with open_store(settings, tmp_path) as store:
        prepare_store(store, None)
        h = Harness(kafka_settings, topics, settings, store, threading.Lock())
        try:
            yield h
        finally:
            h.stop_all()


def produce(h: Harness, windows: list[WindowTotals], events: int = 0, offset: int = 0) -> None:
    producer = Producer({**h.kafka.librdkafka(), "partitioner": "murmur2_random"})
    for w in windows:
        producer.produce(h.topics.aggregates, w.to_bytes(), key=w.key.encode())
    for n in range(offset, offset + events):
        e = event(f"t{n % 3}", "gpt-4o", ms(2026, 11, 3, 10, n % 5), n)
        producer.produce(
            h.topics.usage, encode_event(e), key=e.tenant_id.encode(), headers=EVENT_HEADERS
        )
    producer.produce(h.topics.usage, b"{not json", key=b"t0")  # skipped; the worker dead-letters it
    assert producer.flush(30) == 0


def expected_totals(windows: list[WindowTotals]) -> dict[str, tuple[int, int]]:
    latest: dict[str, WindowTotals] = {}
    for w in windows:
        if w.key not in latest or supersedes(w, latest[w.key]):
            latest[w.key] = w
    by_tenant: dict[str, tuple[int, int]] = {}
    for w in latest.values():
        events, tokens = by_tenant.get(w.tenant_id, (0, 0))
        by_tenant[w.tenant_id] = (events + w.event_count, tokens + w.input_tokens)
    return by_tenant


def stored_totals(h: Harness) -> dict[str, tuple[int, int]]:
    rows = h.query(
        "SELECT tenant_id, sum(event_count), sum(input_tokens) FROM monthly_usage "
        "GROUP BY tenant_id"
    )
    return {str(t): (int(e), int(i)) for t, e, i in rows}  # type: ignore[call-overload]


def windows_batch(seed: int, count: int) -> list[WindowTotals]:
    """Windows of three tenants over two hours, each closed and then corrected once."""
    out = []
    for i in range(count):
        start = ms(2026, 11, 3, 10, 0) + (i % 120) * 60_000
        tenant, events = f"t{(i + seed) % 3}", 1 + i % 7
        out.append(window(tenant, "gpt-4o", start, events=events))
        out.append(window(tenant, "gpt-4o", start, revision=2, events=events + 1))
    return out


@pytest.mark.parametrize("decode_processes", [0, 2])
def test_storage_outage_blocks_commits_and_recovers_exactly(
    harness: Harness, decode_processes: int
) -> None:
    h = harness
    h.settings = h.settings.model_copy(update={"decode_processes": decode_processes})
    writer = h.writer()
    thread, stop = h.start(writer)
    first = windows_batch(0, 60)
    produce(h, first, events=50)
    h.wait(lambda: h.committed() == h.ends())
    assert stored_totals(h) == expected_totals(first)

    writer.down = True
    before = h.committed()
    second = windows_batch(1, 90)
    produce(h, second, events=50, offset=50)
    h.wait(lambda: writer.failures >= 5)
    time.sleep(0.5)
    assert h.committed() == before, "an offset was committed past data that was never written"
    assert h.registry.get_sample_value("tokenops_clickhouse_sink_blocked") == 1
    assert stored_totals(h) == expected_totals(first)

    writer.down = False
    h.wait(lambda: h.committed() == h.ends())
    stop.set()
    thread.join(30)
    assert stored_totals(h) == expected_totals(first + second)
    assert h.registry.get_sample_value("tokenops_clickhouse_sink_blocked") == 0
    assert h.registry.get_sample_value("tokenops_clickhouse_sink_write_failures_total") >= 5
    assert (
        h.registry.get_sample_value(
            "tokenops_clickhouse_sink_invalid_records_total",
            {"role": "usage", "reason": "unreadable"},
        )
        == 2
    )
    assert h.query("SELECT count() FROM raw_events_latest") == [(100,)]
    with h.lock:
        _, differences = reconcile(h.store.client, *NOV)
    # raw events and windows are independent inputs here; the rollups must agree.
    assert [d for d in differences if d.check != "raw_events vs window_totals"] == []


def test_each_record_not_stored_is_counted_and_logged_with_its_reason(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A hostile or misplaced record costs its own count under a bounded reason and a
    sampled log line naming where it is; the good records around it are stored."""
    h = harness
    caplog.set_level(logging.WARNING, logger="tokenops.sinks")
    producer = Producer(h.kafka.librdkafka())
    good = event("t1", "gpt-4o", ms(2026, 11, 3, 10, 0), 1)
    home = home_partition("t1", 2)
    for partition, value in ((home, encode_event(good)), (1 - home, encode_event(good))):
        producer.produce(h.topics.usage, value, b"t1", partition=partition, headers=EVENT_HEADERS)
    for n in range(3):  # a flood of one reason: counted each, logged once per period
        producer.produce(h.topics.usage, b"{not json %d" % n, b"t1", partition=home)
    producer.produce(h.topics.aggregates, b'{"tenant_id": 7}', b"bad", partition=0)
    assert producer.flush(30) == 0
    h.start(h.writer())

    def invalid(role: str, reason: str) -> float | None:
        labels = {"role": role, "reason": reason}
        return h.registry.get_sample_value("tokenops_clickhouse_sink_invalid_records_total", labels)

    h.wait(lambda: h.committed() == h.ends())
    assert invalid("usage", UNREADABLE) == 3
    assert invalid("usage", NOT_HOME) == 1
    assert invalid("aggregates", UNREADABLE) == 1
    assert h.query("SELECT kafka_partition FROM raw_events") == [(home,)]
    samples = [r.getMessage() for r in caplog.records if "skipped record" in r.getMessage()]
    assert len(samples) == 3  # one per (role, reason) within the log period
    assert any("reason=unreadable" in m and f"partition={home} offset=1:" in m for m in samples)
    assert any("reason=not_home_partition" in m and "t1" in m for m in samples)


def test_a_record_away_from_its_keys_home_is_left_to_the_worker_undecoded(
    harness: Harness,
) -> None:
    """The worker forwards a keyed record away from its key's home without reading it,
    and only that home copy is counted or dead-lettered. The sink follows: such a record
    is skipped as not at home whatever its body, never stored where it landed (a body
    naming a tenant at home there, under another tenant's key, is the worker's dead
    letter at the key's home, not a counted event here)."""
    h = harness
    home = home_partition("t1", 2)
    other = next(t for t in (f"k{i}" for i in range(50)) if home_partition(t, 2) != home)
    good = event("t1", "gpt-4o", ms(2026, 11, 3, 10, 0), 1)
    producer = Producer(h.kafka.librdkafka())
    for value, key, partition in (
        (encode_event(good), b"t1", home),  # stored
        (encode_event(event("t1", "gpt-4o", ms(2026, 11, 3, 10, 1), 2)), other.encode(), home),
        (b"{not json", b"t1", 1 - home),  # unreadable, but forwarded: read at t1's home
    ):
        producer.produce(h.topics.usage, value, key, partition=partition, headers=EVENT_HEADERS)
    assert producer.flush(30) == 0
    h.start(h.writer())

    def invalid(reason: str) -> float | None:
        labels = {"role": "usage", "reason": reason}
        return h.registry.get_sample_value("tokenops_clickhouse_sink_invalid_records_total", labels)

    h.wait(lambda: h.committed() == h.ends())
    assert invalid(NOT_HOME) == 2
    assert invalid(UNREADABLE) is None
    assert h.query("SELECT id, kafka_partition FROM raw_events") == [(good.id, home)]


def test_replay_after_a_crash_leaves_the_same_totals(harness: Harness) -> None:
    h = harness
    windows = windows_batch(0, 100)
    produce(h, windows, events=120)
    crashing = h.writer()
    crashing.crash_after_write = True
    thread, _ = h.start(crashing)
    thread.join(60)
    assert crashing.written, "the first batch was written before the crash"
    assert sum(h.committed().values()) == 0, "nothing may be committed by a crashed batch"

    writer = h.writer()
    thread, stop = h.start(writer)
    h.wait(lambda: h.committed() == h.ends())
    stop.set()
    thread.join(30)
    assert stored_totals(h) == expected_totals(windows)
    assert h.query("SELECT count() FROM raw_events_latest") == [(120,)]
    stored = h.query("SELECT count() FROM raw_events")[0][0]
    windows_stored = h.query("SELECT count() FROM window_totals")[0][0]
    assert int(stored) + int(windows_stored) > 120 + 100, "the crashed batch was replayed"
