"""Home or forward, the event clock and the partition-count check (streams/routing.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.harness.partition import partition_state, partition_store
from tokenops.deadletters import DLQ_FIELD
from tokenops.placement import home_partition
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.event import FUTURE, UsageEvent
from tokenops.schemas.wire import encode_event
from tokenops.streams.errors import PlacementError
from tokenops.streams.metrics import WorkerMetrics
from tokenops.streams.partition import InputRecord, PartitionState
from tokenops.streams.routing import CREATE_TIME, LOG_APPEND_TIME, event_clock
from tokenops.streams.state.store import PartitionStore

T0 = 1_750_000_020_000  # a minute boundary in the past: the worker's wall clock here
PARTITIONS = 4
HOME = [t for t in (f"tenant-{i}" for i in range(50)) if home_partition(t, PARTITIONS) == 1]
AWAY = [t for t in (f"tenant-{i}" for i in range(50)) if home_partition(t, PARTITIONS) == 3]


def _event(i: int, t_ms: int, tenant: str) -> UsageEvent:
    return UsageEvent(
        id=f"e{i}",
        source="//node/1",
        time=datetime.fromtimestamp(t_ms / 1000, UTC),
        tenant_id=tenant,
        model="m1",
        provider="p",
        input_tokens=10,
        output_tokens=4,
    )


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
    return InputRecord(offset, key, encode_event(event), [("h", b"v")], ts, **kw)


def test_the_clock_is_the_brokers_append_time_or_the_producers_capped_by_the_wall() -> None:
    assert event_clock(T0 + 3_600_000, LOG_APPEND_TIME, T0) == T0 + 3_600_000
    assert event_clock(T0 + 3_600_000, CREATE_TIME, T0) == T0  # a producer's clock ahead
    assert event_clock(T0 - 5_000, CREATE_TIME, T0) == T0 - 5_000  # a replayed record
    assert event_clock(-1, CREATE_TIME, T0) == T0  # no timestamp at all


def test_a_misplaced_or_unkeyed_record_is_forwarded_home_not_counted(tmp_path: Path) -> None:
    state = _state(tmp_path / "p1")
    home, away = HOME[0], AWAY[0]
    records = [
        _record(0, _event(1, T0, home), home.encode()),  # at home: counted
        _record(1, _event(2, T0, away), away.encode()),  # keyed, wrong partition
        _record(2, _event(3, T0, away), None),  # no key (kcat, explicit partition)
        _record(3, _event(4, T0, home), None),  # no key, but at home: counted
    ]
    outputs, delta, counts = state.process(records, T0 + 1000)
    assert (counts.counted, counts.forwarded, counts.dead_lettered) == (2, 2, 0)
    forwarded = [o for o in outputs if o.topic == "usage"]
    assert [(o.partition, o.key, o.value) for o in forwarded] == [
        (3, away.encode(), records[1].value),
        (3, away.encode(), records[2].value),
    ]
    assert all(o.headers == [("h", b"v")] and o.timestamp_ms == T0 for o in forwarded)
    assert state.book.open[T0] == {(home, "m1"): state.book.open[T0][(home, "m1")]}
    assert delta.next_offset == 4  # the forwarded records are done here
    registry = CollectorRegistry()
    WorkerMetrics(registry).record(counts)
    sample = registry.get_sample_value
    assert sample("tokenops_worker_records_total", {"outcome": "forwarded"}) == 2
    assert sample("tokenops_worker_records_total", {"outcome": "counted"}) == 2


def test_a_keyed_record_away_from_home_goes_there_undecoded_and_is_judged_there(
    tmp_path: Path,
) -> None:
    """A keyed record's home is its key's: it is forwarded without a decode, and a broken
    or mis-keyed one is dead-lettered at that home, alone, with its reason."""
    away, home = AWAY[0], HOME[0]
    broken = InputRecord(0, away.encode(), b'{"tenant_id": "acme"', None, T0)
    miskeyed = _record(1, _event(1, T0, home), away.encode())  # key: another tenant
    good = _record(2, _event(2, T0, away), away.encode())
    outputs, _, counts = _state(tmp_path / "p1").process([broken, miskeyed, good], T0)
    assert (counts.forwarded, counts.dead_lettered, counts.counted) == (3, 0, 0)
    assert [(o.topic, o.partition, o.value) for o in outputs] == [
        ("usage", 3, r.value) for r in (broken, miskeyed, good)
    ]
    at_home = _on(partition_store(tmp_path / "p3"), 4, 3)
    copies = [InputRecord(i, o.key, o.value, o.headers, T0) for i, o in enumerate(outputs)]
    outputs, _, counts = at_home.process(copies, T0)
    assert (counts.forwarded, counts.dead_lettered, counts.counted) == (0, 2, 1)
    assert counts.dead_letter_fields == ["record", "key"]
    assert [o.topic for o in outputs] == ["dlq", "dlq"]


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
    state.process([_record(0, _event(1, T0, tenant), None)], T0)
    ahead = _event(2, T0 + 64 * 60_000, tenant)
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
    _, delta, _ = state.process([_record(0, _event(1, T0, HOME[0]), None)], T0)
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
