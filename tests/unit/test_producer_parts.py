"""Producer pieces without a broker: spool format, per-tenant batching, the ledger,
backpressure and spooling against an unreachable broker (a real librdkafka client)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tokenops.producers import (
    ProducerBackpressureError,
    ProducerClosedError,
    ProducerSettings,
    UsageProducer,
)
from tokenops.producers.batcher import MAX_PRODUCED_BYTES, TenantBatches, columns_record
from tokenops.producers.spool import Spool, SpooledRecord, encode_entry, read_entries
from tokenops.schemas import (
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    EventColumns,
    UsageEvent,
    decode_record,
)
from tokenops.schemas.columns import event_row
from tokenops.settings import KafkaSettings
from tokenops.simulate.ledger import ExpectedTotals, Ledger
from tokenops.stack.process import free_port


def event(i: int, tenant: str = "acme", ms: int = 1_780_000_000_000, **extra: Any) -> UsageEvent:
    return UsageEvent(
        id=f"e-{i}",
        source="//node/1",
        time=datetime.fromtimestamp(ms / 1000, UTC),
        tenant_id=tenant,
        model="gpt-4o",
        provider="openai",
        input_tokens=10 * i,
        output_tokens=i,
        **extra,
    )


def test_spool_keeps_intact_entries_and_stops_at_a_torn_tail(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    records = [SpooledRecord(i, b"acme", CLOUDEVENTS_CONTENT_TYPE, b"v" * i) for i in range(1, 4)]
    for record in records:
        spool.append(record)
    spool.close()
    assert list(read_entries(spool.path)) == records
    data = spool.path.read_bytes()
    spool.path.write_bytes(data[:-2])  # a crash mid-write
    assert list(read_entries(spool.path)) == records[:2]
    corrupt = bytearray(data)
    corrupt[20] ^= 0xFF  # a flipped bit in the first entry: nothing after it is trusted
    spool.path.write_bytes(bytes(corrupt))
    assert list(read_entries(spool.path)) == []


def test_spool_files_are_claimed_once(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append(SpooledRecord(1, b"k", CLOUDEVENTS_CONTENT_TYPE, b"v"))
    first.close()
    claimed = Spool(tmp_path).claim_older()
    assert len(claimed) == 1 and claimed[0].suffix == ".replaying"
    assert Spool(tmp_path).claim_older() == []  # its owner (this process) is alive


def test_batches_fill_by_count_and_linger_by_time() -> None:
    now = [0.0]
    batches = TenantBatches(3, linger_s=0.05, clock=lambda: now[0])
    a1, b2, a3, a4 = event(1, "a"), event(2, "b"), event(3, "a"), event(4, "a")
    assert batches.add(*event_row(a1)) is None
    assert batches.add(*event_row(b2)) is None
    assert batches.add(*event_row(a3)) is None
    full = batches.add(*event_row(a4))
    assert full is not None and full.events() == [a1, a3, a4]
    assert batches.buffered == 1
    now[0] = 0.06
    [stale] = batches.stale()
    assert stale.events() == [b2]
    assert batches.buffered == 0


def test_batches_never_exceed_the_record_size() -> None:
    batches = TenantBatches(10_000, linger_s=1)
    big = {f"key.{i:02d}": "x" * 240 for i in range(16)}  # 4,000 bytes of attributes
    full = [batches.add(*event_row(event(i, attributes=big))) for i in range(1000)]
    records = [r for r in full if r is not None]
    assert records and all(len(columns_record(r)[1]) <= MAX_PRODUCED_BYTES for r in records)


def test_batch_records_decode_to_their_events() -> None:
    events = [event(i) for i in range(1, 4)]
    content_type, value = columns_record(EventColumns.from_events(events))
    assert content_type == COLUMNS_CONTENT_TYPE
    assert decode_record(value, [("content-type", content_type.encode())]) == events
    lone = columns_record(EventColumns.from_events(events[:1]))
    assert lone[0] == CLOUDEVENTS_CONTENT_TYPE
    assert decode_record(lone[1], [("content-type", lone[0].encode())]) == events[:1]


def test_ledger_windows_and_file_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(topic="t")
    base = 1_780_000_000_000 - 1_780_000_000_000 % 60_000
    for i, offset in enumerate([0, 999, 1000, 59_999, 60_000], start=1):
        ledger.count(event(i, ms=base + offset))
    ledger.count(event(6, tenant="beta", ms=base))
    windows = ledger.expected_windows(60)
    assert windows[("acme", "gpt-4o", base)] == ExpectedTotals(100, 10, 0, 0, 0, 4)
    assert windows[("acme", "gpt-4o", base + 60_000)] == ExpectedTotals(50, 5, 0, 0, 0, 1)
    assert len(ledger.expected_windows(1)) == 5
    assert ledger.expected_by_tenant()["beta"].event_count == 1
    ledger.save(tmp_path / "l.json")
    loaded = Ledger.load(tmp_path / "l.json")
    assert loaded.expected_windows(60) == windows
    assert orjson.loads((tmp_path / "l.json").read_bytes())["unique_events"] == 6
    duplicate = event(1, ms=base)
    assert ledger.compare([*(event(i, ms=base) for i in range(1, 2)), duplicate], 60) != []


def unreachable_producer(tmp_path: Path, registry: CollectorRegistry) -> UsageProducer:
    """A producer whose broker never answers: full after 50 events, 0.3 s of patience."""
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nobody listens
    settings = ProducerSettings(
        spool_dir=tmp_path,
        max_outstanding_events=50,
        backpressure_timeout_s=0.3,
        batch_max_events=10,
        close_timeout_s=0.5,
    )
    return UsageProducer(kafka, settings, registry=registry)


def test_backpressure_then_a_clear_error_and_nothing_dropped(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    producer = unreachable_producer(tmp_path, registry)
    for i in range(50):
        producer.send(event(i))
    with pytest.raises(ProducerBackpressureError) as info:
        producer.send(event(50))
    assert "not accepted" in str(info.value)
    producer.close()
    assert registry.get_sample_value("tokenops_producer_events_spooled_total") == 50
    [path] = tmp_path.glob("spool-*")
    assert sum(r.events for r in read_entries(path)) == 50


def test_a_running_producers_spool_is_never_claimed(tmp_path: Path) -> None:
    entry = encode_entry(SpooledRecord(1, b"k", CLOUDEVENTS_CONTENT_TYPE, b"v"))
    live = tmp_path / f"spool-{os.getppid()}-aaaa.log"  # our parent: alive
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dead = tmp_path / f"spool-{dead_pid}-bbbb.log"
    for path in (live, dead):
        path.write_bytes(entry)
    writing = Spool(tmp_path)
    writing.append(SpooledRecord(1, b"k", CLOUDEVENTS_CONTENT_TYPE, b"v"))  # open, in use
    claimed = Spool(tmp_path).claim_older()
    assert [p.name.split(".")[0] for p in claimed] == [dead.name.split(".")[0]]
    assert live.exists() and writing.path.exists()
    writing.close()


def test_sends_racing_close_are_either_accepted_and_delivered_or_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Threads keep sending while another closes the producer: every send that returned
    is in a record the client took, every refused one (ProducerClosedError) is not, and
    no event is left behind in the producer."""
    from tests.unit.test_producer_columns import FakeClient

    clients: list[FakeClient] = []
    monkeypatch.setattr(
        "tokenops.producers.producer.Producer",
        lambda config: clients.append(FakeClient(config)) or clients[-1],
    )
    producer = UsageProducer(
        KafkaSettings(), ProducerSettings(spool_dir=tmp_path), registry=CollectorRegistry()
    )
    accepted: list[list[str]] = [[] for _ in range(4)]
    refused: list[list[str]] = [[] for _ in range(4)]
    start = threading.Barrier(5)

    def sender(k: int) -> None:
        start.wait()
        for i in range(100_000):
            fields = {**event(i).model_dump(exclude={"attributes"}), "id": f"t{k}-{i}"}
            try:
                producer.send(fields)
            except ProducerClosedError:
                refused[k].append(fields["id"])
                if len(refused[k]) >= 50:
                    return
            else:
                accepted[k].append(fields["id"])

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(0.3)
    producer.close()
    for thread in threads:
        thread.join()
    [client] = clients
    sent = [e.id for _, value, headers in client.records for e in decode_record(value, headers)]
    assert sorted(sent) == sorted(i for ids in accepted for i in ids)
    assert all(len(ids) == 50 for ids in refused) and sum(map(len, accepted)) > 1000
    assert producer.outstanding() == 0
    with pytest.raises(ProducerClosedError):
        producer.send_many([event(1)])


def test_asend_waits_for_room_without_blocking_the_loop(tmp_path: Path) -> None:
    producer = unreachable_producer(tmp_path, CollectorRegistry())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(ticker())
        for i in range(50):
            await producer.asend(event(i))
        before = ticks
        with pytest.raises(ProducerBackpressureError):
            await producer.asend(event(50))
        assert ticks - before >= 10  # the loop ran while asend waited
        task.cancel()
        await producer.aclose()

    asyncio.run(main())
    [path] = tmp_path.glob("spool-*")
    assert sum(r.events for r in read_entries(path)) == 50
