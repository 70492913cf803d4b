"""The columnar batch path of `PartitionState` gives exactly what counting event by event
gives: same counts, same outputs, byte-identical changelog deltas, and the processors see
the same fresh events (first occurrences), record by record."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import tokenops.streams.partition as partition_module
from tokenops.deadletters import DLQ_REASON
from tokenops.schemas.columns import EventColumns, MixedColumns
from tokenops.schemas.decode import decode_columns, decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import encode_batch, encode_event
from tokenops.streams.partition import InputRecord, PartitionState, select
from tokenops.streams.processors import OutputRecord
from tokenops.streams.signing import WorkerDecoder
from tokenops.streams.state.delta import StateDelta
from tokenops.streams.state.store import PartitionStore

T0 = 1_750_000_020_000  # a minute boundary in the past
BUCKET_MS = 60_000  # small dedup buckets, so records straddle them


class Recorder:
    """A processor that remembers what it was given, record by record."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[list[list[UsageEvent]]] = []

    def load(self, state: Mapping[str, Any]) -> None:
        pass

    def apply(
        self, columns: Sequence[EventColumns | MixedColumns], *, now_ms: int
    ) -> tuple[list[OutputRecord], dict[str, Any]]:
        self.calls.append([event for part in columns for event in _events(part)])
        return [], {"n": sum(len(part) for part in columns)}


def _events(part: EventColumns | MixedColumns) -> list[UsageEvent]:
    records = part.records() if isinstance(part, MixedColumns) else [part]
    return [event for record in records for event in record.events()]


class EventByEvent(PartitionState):
    """The reference: every event deduplicated and windowed on its own, with `add()`."""

    def _count(
        self,
        chunk: Any,
        counts: Any,
        delta: StateDelta,
        outputs: list[OutputRecord],
        now_ms: int,
    ) -> None:
        parts, chunk.parts, chunk.size = chunk.parts, [], 0
        if not parts:
            return
        fresh: list[EventColumns] = []
        for part in parts:
            kept = []
            for event in _events(part):
                key = f"{event.source}\x00{event.id}"
                counts.events += 1
                if self.store.seen([key])[0] or key in chunk.seen:
                    counts.duplicates += 1
                    continue
                chunk.seen.add(key)
                chunk.buckets.setdefault(event.time_ms // self.store.bucket_ms, []).append(key)
                self.book.add(
                    event.tenant_id,
                    event.model,
                    event.time_ms,
                    (
                        event.input_tokens,
                        event.output_tokens,
                        event.cache_read_input_tokens,
                        event.cache_creation_input_tokens,
                        event.reasoning_output_tokens,
                    ),
                )
                counts.counted += 1
                kept.append(event)
            if kept:
                fresh.append(EventColumns.from_events(kept))
        for processor in self.processors:
            extra, changes = processor.apply(fresh, now_ms=now_ms)
            outputs.extend(extra)
            delta.processors.setdefault(processor.name, {}).update(changes)


def _decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
    return decode_columns(value, headers, now_ms=now_ms)


def _state(
    cls: type[PartitionState], path: Path, recorder: Recorder, decode: Any = _decode
) -> PartitionState:
    return cls(
        topic="usage",
        partition=0,
        store=PartitionStore(path, bucket_ms=BUCKET_MS, window_ms=60_000),
        owner="me",
        window_s=60,
        lateness_ms=30_000,
        horizon_ms=300_000,
        outputs=("aggs", "dlq"),
        decode=decode,
        processors=[recorder],
    )


def _event(event_id: str, t_ms: int, tenant: str, model: str, tokens: int) -> UsageEvent:
    return UsageEvent(
        id=event_id,
        source="//node/1",
        time=datetime.fromtimestamp(t_ms / 1000, UTC),
        tenant_id=tenant,
        model=model,
        provider="p",
        input_tokens=tokens,
        output_tokens=tokens % 7,
    )


@contextmanager
def _chunk_events(n: int) -> Iterator[None]:
    saved = partition_module.CHUNK_EVENTS
    partition_module.CHUNK_EVENTS = n
    try:
        yield
    finally:
        partition_module.CHUNK_EVENTS = saved


event_rows = st.tuples(
    st.integers(0, 40),  # id: a small pool, so duplicates within and across batches
    st.integers(0, 400_000),  # time offset: several buckets, windows, some too late
    st.sampled_from(["m1", "m2"]),
    st.integers(0, 10_000),
)
record_rows = st.tuples(st.sampled_from(["acme", "beta"]), st.lists(event_rows, max_size=12))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.lists(record_rows, max_size=6), min_size=1, max_size=5),
    st.sampled_from([3, 20, 20_000]),
    st.booleans(),
    st.booleans(),
)
def test_columnar_batches_equal_event_by_event(
    batches: list[list[tuple[str, list[tuple[int, int, str, int]]]]],
    chunk: int,
    ordered: bool,
    singles: bool,
) -> None:
    """`singles`: each event its own record, decoded by the worker's decoder, so a batch
    of a dozen or more is counted as one chunk of many tenants (`MixedColumns`)."""
    with TemporaryDirectory() as tmp, _chunk_events(chunk):
        fast, slow = Recorder(), Recorder()
        decode = WorkerDecoder(None) if singles else _decode
        states = (
            _state(PartitionState, Path(tmp) / "fast", fast, decode),
            _state(EventByEvent, Path(tmp) / "slow", slow),
        )
        offset = 0
        for b, batch in enumerate(batches):
            records = []
            for tenant, rows in batch:
                events = [
                    _event(f"e{i}", T0 + (b * 60_000 + t if ordered else t), tenant, m, k)
                    for i, t, m, k in rows
                ]
                if not events:
                    values = [b"{}"]  # dead-lettered
                elif singles:
                    values = [encode_event(event) for event in events]
                else:
                    values = [encode_batch(events)]
                for value in values:
                    key = tenant.encode()
                    records.append(InputRecord(offset, key, value, None, T0 + 10_000_000))
                    offset += 1
            now_ms = T0 + 20_000_000
            results = []
            for state in states:
                outputs, delta, counts = state.process(records, now_ms)
                state.commit(delta, b + 1)
                counts.dead_letter_fields.sort()  # a chunk's outputs follow the others'
                results.append((outputs, delta.to_bytes(), counts))
            assert results[0] == results[1]
        assert fast.calls == slow.calls
        for state in states:
            state.store.close()


def test_the_too_late_error_names_the_first_event_past_the_horizon(tmp_path: Path) -> None:
    state = _state(PartitionState, tmp_path / "p0", Recorder())
    first = encode_event(_event("a", T0 + 900_000, "acme", "m1", 1))
    now = T0 + 10_000_000
    _, delta, _ = state.process([InputRecord(0, b"acme", first, None, now)], now)
    state.commit(delta, 1)
    times = [T0 + 800_000, T0 + 700_000, T0, T0 - 5, T0 + 800_000]
    value = encode_batch([_event(f"b{i}", t, "acme", "m1", 1) for i, t in enumerate(times)])
    outputs, _, counts = state.process([InputRecord(1, b"acme", value, None, now)], now)
    assert counts.dead_lettered == 1 and counts.dead_letter_fields == ["time"]
    event = decode_record(value, None)[2]
    expected = InvalidEventError(
        "time", event.time, "too_late: older than the dedup horizon", index=2
    )
    assert dict(outputs[0].headers or [])[DLQ_REASON] == str(expected.message).encode()


def test_select_keeps_the_masked_events_and_drops_empty_attributes() -> None:
    events = [_event(f"e{i}", T0 + i, "acme", "m1", i) for i in range(4)]
    events[1] = events[1].model_copy(update={"attributes": {"k": "v"}})
    columns = EventColumns.from_events(events)
    assert select(columns, [True, True, False, False]).events() == events[:2]
    kept = select(columns, [True, False, True, False])
    assert kept.attributes is None and kept.events() == [events[0], events[2]]
