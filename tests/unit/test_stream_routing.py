"""Home or forward, the event clock and the partition-count check (streams/routing.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.harness.partition import partition_state, partition_store, usage_event
from tokenops.deadletters import DLQ_BUNDLE, DLQ_FIELD, DLQ_OFFSET, DLQ_PARTITION
from tokenops.placement import home_partition
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.event import FUTURE, UsageEvent
from tokenops.schemas.wire import EVENT_HEADERS, encode_event
from tokenops.streams.errors import PlacementError
from tokenops.streams.metrics import WorkerMetrics
from tokenops.streams.partition import InputRecord, PartitionState
from tokenops.streams.routing import CREATE_TIME, LOG_APPEND_TIME, event_clock
from tokenops.streams.signing import WorkerDecoder
from tokenops.streams.state.store import PartitionStore

T0 = 1_750_000_020_000  # a minute boundary in the past: the worker's wall clock here
PARTITIONS = 4
HOME = [t for t in (f"tenant-{i}" for i in range(50)) if home_partition(t, PARTITIONS) == 1]
AWAY = [t for t in (f"tenant-{i}" for i in range(50)) if home_partition(t, PARTITIONS) == 3]


def _decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
    return decode_columns(value, headers, now_ms=now_ms)


def _state(path: Path, partitions: int = PARTITIONS) -> PartitionState:
    return _on(partition_store(path), partitions)


def _on(store: PartitionStore, partitions: int = PARTITIONS, partition: int = 1) -> PartitionState:
    return partition_state(
        store, decode=_decode, partition=partition, outputs=("aggs", "dlq"), partitions=partitions
    )


def _record(offset: int, event: UsageEvent, key: bytes | None, **kw: Any) -> InputRecord:
    ts = kw.pop("timestamp_ms", T0)
    headers = kw.pop("headers", [("h", b"v")])
    return InputRecord(offset, key, encode_event(event), headers, ts, **kw)


def test_the_clock_is_the_brokers_append_time_or_the_producers_capped_by_the_wall() -> None:
    assert event_clock(T0 + 3_600_000, LOG_APPEND_TIME, T0) == T0 + 3_600_000
    assert event_clock(T0 + 3_600_000, CREATE_TIME, T0) == T0  # a producer's clock ahead
    assert event_clock(T0 - 5_000, CREATE_TIME, T0) == T0 - 5_000  # a replayed record
    assert event_clock(-1, CREATE_TIME, T0) == T0  # no timestamp at all


def test_a_misplaced_or_unkeyed_record_is_forwarded_home_not_counted(tmp_path: Path) -> None:
    state = _state(tmp_path / "p1")
    home, away = HOME[0], AWAY[0]
    records = [
        _record(0, usage_event(1, T0, home), home.encode()),  # at home: counted
        _record(1, usage_event(2, T0, away), away.encode()),  # keyed, wrong partition
        _record(2, usage_event(3, T0, away), None),  # no key (kcat, explicit partition)
        _record(3, usage_event(4, T0, home), None),  # no key, but at home: counted
    ]
    outputs, delta, counts = state.process(records, T0 + 1000)
    assert (counts.counted, counts.forwarded, counts.dead_lettered) == (2, 2, 0)
    forwarded = [o for o in outputs if o.topic == "usage"]
    assert [(o.partition, o.key, o.value) for o in forwarded] == [
        (3, away.encode(), records[1].value),
        (3, away.encode(), records[2].value),
    ]
    assert all(o.headers == [("h", b"v")] and o.timestamp_ms == T0 for o in forwarded)
    assert state.book.open[T0] == {(home, "m1", ""): state.book.open[T0][(home, "m1", "")]}
    assert delta.next_offset == 4  # the forwarded records are done here
    registry = CollectorRegistry()
    WorkerMetrics(registry).record(counts)
    sample = registry.get_sample_value
    assert sample("tokenops_worker_records_total", {"outcome": "forwarded"}) == 2
    assert sample("tokenops_worker_records_total", {"outcome": "counted"}) == 2


def test_a_keyed_record_away_from_home_goes_there_undecoded_and_is_judged_there(
    tmp_path: Path,
) -> None:
    """A keyed record's home is its key's: it is forwarded without a decode (in a bundle
    when it carries no header but the CloudEvents content type), and a broken or
    mis-keyed one is dead-lettered at that home, alone, with its reason, named where it
    was written."""
    away, home = AWAY[0], HOME[0]
    broken = InputRecord(0, away.encode(), b'{"tenant_id": "acme"', None, T0)
    miskeyed = _record(1, usage_event(1, T0, home), away.encode())  # key: another tenant
    good = _record(2, usage_event(2, T0, away), away.encode(), headers=EVENT_HEADERS)
    outputs, _, counts = _state(tmp_path / "p1").process([broken, miskeyed, good], T0)
    assert (counts.forwarded, counts.dead_lettered, counts.counted) == (3, 0, 0)
    alone, bundle = outputs  # a record with a header of its own goes alone
    assert (alone.topic, alone.partition, alone.key, alone.value) == (
        "usage",
        3,
        away.encode(),
        miskeyed.value,
    )
    assert (bundle.topic, bundle.partition, bundle.key) == ("usage", 3, None)
    assert bundle.value == b"[" + broken.value + b"," + good.value + b"]"
    at_home = _on(partition_store(tmp_path / "p3"), 4, 3)
    copies = [InputRecord(i, o.key, o.value, o.headers, T0) for i, o in enumerate(outputs)]
    outputs, _, counts = at_home.process(copies, T0)
    assert (counts.records, counts.forwarded, counts.dead_lettered, counts.counted) == (3, 0, 2, 1)
    assert sorted(counts.dead_letter_fields) == ["key", "record"]
    dead = {o.value: dict(o.headers or []) for o in outputs if o.topic == "dlq"}
    assert (dead[broken.value][DLQ_PARTITION], dead[broken.value][DLQ_OFFSET]) == (b"1", b"0")
    assert dead[broken.value][DLQ_BUNDLE] == b"3:1:0"  # read at home, bundle offset 1
    assert (dead[miskeyed.value][DLQ_PARTITION], dead[miskeyed.value][DLQ_OFFSET]) == (b"3", b"0")
    assert DLQ_BUNDLE not in dead[miskeyed.value]


def test_a_record_without_a_readable_tenant_is_dead_lettered_where_it_landed(
    tmp_path: Path,
) -> None:
    state = _state(tmp_path / "p1")
    broken = InputRecord(0, None, b'{"tenant_id": "acme"', None, T0)
    outputs, _, counts = state.process([broken], T0)
    assert (counts.dead_lettered, counts.forwarded) == (1, 0)
    assert [o.topic for o in outputs] == ["dlq"]


def test_an_event_beyond_the_clock_is_dead_lettered_future_and_moves_nothing(
    tmp_path: Path,
) -> None:
    state = _state(tmp_path / "p1")
    tenant, hour = HOME[0], 3_600_000
    state.process([_record(0, usage_event(1, T0, tenant), None)], T0)
    ahead = usage_event(2, T0 + 64 * 60_000, tenant)
    # the producer set the record's timestamp with the event: a CreateTime topic
    outputs, delta, counts = state.process([_record(1, ahead, None, timestamp_ms=T0 + hour)], T0)
    assert counts.dead_lettered == 1 and counts.dead_letter_fields == [FUTURE]
    assert dict(outputs[0].headers or [])[DLQ_FIELD] == FUTURE.encode()
    assert delta.max_event_ms == T0
    # the broker's append time is trusted: an hour later, the same event is on time
    stamped = _record(2, ahead, None, timestamp_ms=T0 + hour, timestamp_type=LOG_APPEND_TIME)
    _, delta, counts = state.process([stamped], T0)
    assert counts.counted == 1 and delta.max_event_ms == T0 + 64 * 60_000


def test_a_state_built_with_another_partition_count_is_refused(tmp_path: Path) -> None:
    state = _state(tmp_path / "p1")
    _, delta, _ = state.process([_record(0, usage_event(1, T0, HOME[0]), None)], T0)
    state.commit(delta, 1)
    assert state.store.processor_state("placement") == {"partitions": PARTITIONS}
    state.store.close()
    store = partition_store(tmp_path / "p1")
    with pytest.raises(PlacementError) as info:
        _on(store, partitions=6)
    store.close()
    assert "\n" not in str(info.value)
    assert "has 6 partitions, its state was built with 4" in str(info.value)
    again = _state(tmp_path / "p1")  # the same count: fine
    assert again.next_offset == 1


def test_a_chunk_of_single_events_is_placed_as_record_by_record(tmp_path: Path) -> None:
    """A fetch of single events decoded as one chunk of many tenants (`WorkerDecoder`)
    forwards, dead-letters and counts each record as the record-by-record decoder does:
    keyed at home, unkeyed at home or away, keyed as another tenant, broken."""
    records = []
    for i in range(40):
        tenant = (HOME + AWAY)[i % (len(HOME) + len(AWAY))]
        key: bytes | None = tenant.encode() if i % 3 else None
        if i == 7:
            key = HOME[1].encode() if tenant != HOME[1] else HOME[0].encode()  # another tenant
        records.append(_record(i, usage_event(i, T0 + i, tenant), key))
    records[20] = InputRecord(20, None, b"{not json", None, T0)
    fetch = WorkerDecoder(None).many([(r.value, r.headers, T0) for r in records[:20]])
    assert fetch.mixed is not None and len(fetch.mixed) == len(fetch.rows) == 20
    chunked = _on(PartitionStore(tmp_path / "a", bucket_ms=3_600_000, window_ms=60_000))
    chunked.decode_many = WorkerDecoder(None).many
    one_by_one = _state(tmp_path / "b")
    results = [state.process(records, T0 + 1000) for state in (chunked, one_by_one)]
    (outputs, delta, counts), (outputs_b, delta_b, counts_b) = results
    # the chunk's own outputs follow those of the batch's other records
    counts.dead_letter_fields.sort()
    counts_b.dead_letter_fields.sort()
    assert counts == counts_b and counts.dead_lettered == 2 and counts.forwarded > 0
    assert counts.counted == 40 - counts.dead_lettered - counts.forwarded
    key_of = lambda o: (o.topic, o.partition or 0, o.key or b"", o.value)  # noqa: E731
    assert sorted(outputs, key=key_of) == sorted(outputs_b, key=key_of)
    assert delta.to_bytes() == delta_b.to_bytes()
