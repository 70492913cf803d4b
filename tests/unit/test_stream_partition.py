"""One partition's batch processing: dedup, dead letters, replay skipping, state on disk."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.harness.partition import partition_state, partition_store
from tokenops.deadletters import DLQ_FIELD, DLQ_OFFSET, DLQ_REASON
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import encode_batch, encode_event
from tokenops.streams.partition import InputRecord, PartitionState
from tokenops.streams.signing import WorkerDecoder
from tokenops.streams.state.delta import StateDelta

T0 = 1_750_000_020_000  # a minute boundary in the past


def _event(i: int, t_ms: int, tenant: str = "acme", source: str = "//node/1") -> UsageEvent:
    return UsageEvent(
        id=f"e{i}",
        source=source,
        time=datetime.fromtimestamp(t_ms / 1000, UTC),
        tenant_id=tenant,
        model="m1",
        provider="p",
        input_tokens=10,
        output_tokens=4,
    )


def _decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
    return decode_columns(value, headers, now_ms=now_ms)


def _state(path: Path, **kw: Any) -> PartitionState:
    kw.setdefault("decode", _decode)
    return partition_state(path, outputs=("aggs", "dlq"), **kw)


def _record(offset: int, value: bytes) -> InputRecord:
    return InputRecord(offset, b"acme", value, [("x", b"1")], T0 + 10_000_000)


def test_duplicates_are_counted_once_within_and_across_batches(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    batch = encode_batch([_event(1, T0 + 1), _event(2, T0 + 2), _event(1, T0 + 1)])
    _, delta, counts = state.process([_record(0, batch)], T0)
    state.commit(delta, 1)
    assert (counts.counted, counts.duplicates) == (2, 1)
    _, delta, counts = state.process([_record(1, encode_event(_event(2, T0 + 2)))], T0)
    state.commit(delta, 2)
    assert (counts.counted, counts.duplicates) == (0, 1)
    assert state.book.open[T0][("acme", "m1")][5] == 2


def test_malformed_record_is_dead_lettered_whole_with_reason_headers(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    good = encode_event(_event(1, T0 + 1))
    outputs, _, counts = state.process([_record(0, good), _record(1, b"{not json")], T0)
    assert counts.dead_lettered == 1 and counts.counted == 1
    (dead,) = outputs
    assert dead.topic == "dlq" and dead.value == b"{not json" and dead.key == b"acme"
    headers = dict(dead.headers or [])
    assert headers["x"] == b"1" and headers[DLQ_FIELD] == b"record"
    assert headers[DLQ_OFFSET] == b"1" and headers[DLQ_REASON]


def test_records_below_the_state_offset_are_skipped(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    _, delta, _ = state.process([_record(0, encode_event(_event(1, T0 + 1)))], T0)
    state.commit(delta, 1)
    _, delta, counts = state.process(
        [_record(0, encode_event(_event(1, T0 + 1))), _record(1, encode_event(_event(2, T0)))],
        T0,
    )
    assert counts.skipped == 1 and counts.records == 1 and counts.counted == 1
    assert delta.start_offset == 1 and delta.next_offset == 2


def test_state_survives_a_restart_and_the_changelog_rebuilds_it(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    deltas: list[bytes] = []
    events = [_event(1, T0 + 1), _event(2, T0 + 61_000), _event(3, T0 + 200_000)]
    for offset, event in enumerate(events):
        outputs, delta, _ = state.process([_record(offset, encode_event(event))], T0)
        state.commit(delta, offset + 1)
        deltas.append(delta.to_bytes())
    closed = [WindowTotals.from_bytes(o.value) for o in outputs]
    assert {c.window_start_ms for c in closed} == {T0, T0 + 60_000}
    state.store.close()
    # a late event for a closed window, after a restart from the local store
    again = _state(tmp_path / "p0")
    assert again.next_offset == 3
    outputs, _, counts = again.process([_record(3, encode_event(_event(4, T0 + 5)))], T0)
    fixed = WindowTotals.from_bytes(outputs[0].value)
    assert (fixed.revision, fixed.event_count, fixed.input_tokens) == (2, 2, 20)
    assert counts.late_events == 1 and counts.corrections == 1
    # the same deltas rebuild the same state in a fresh store
    fresh = partition_store(tmp_path / "rebuilt")
    for i, raw in enumerate(deltas):
        fresh.apply(StateDelta.from_bytes(raw), i + 1, "me")
    assert fresh.closed_window(("acme", "m1", T0)) == again.store.closed_window(("acme", "m1", T0))
    assert fresh.open_windows() == again.store.open_windows()
    assert fresh.seen(["//node/1\x00e1", "//node/1\x00nope"]) == [True, False]


def test_an_offset_gap_is_counted(tmp_path: Path) -> None:
    state = _state(tmp_path / "p0")
    _, delta, _ = state.process([_record(0, encode_event(_event(1, T0 + 1)))], T0)
    state.commit(delta, 1)
    _, delta, counts = state.process([_record(5, encode_event(_event(2, T0 + 2)))], T0)
    assert counts.gaps == 1 and delta.next_offset == 6


def test_events_keyed_as_another_tenant_are_dead_lettered(tmp_path: Path) -> None:
    """Dedup is per partition: an event under a foreign key would dodge its own index."""
    state = _state(tmp_path / "p0")
    foreign = InputRecord(0, b"other", encode_event(_event(1, T0 + 1)), None, T0 + 10_000_000)
    unkeyed = InputRecord(1, None, encode_event(_event(2, T0 + 2)), None, T0 + 10_000_000)
    outputs, _, counts = state.process([foreign, unkeyed], T0)
    assert (counts.dead_lettered, counts.counted) == (1, 1)
    (dead,) = outputs
    headers = dict(dead.headers or [])
    assert headers[DLQ_FIELD] == b"key" and b"acme" in headers[DLQ_REASON]


def test_single_event_records_are_decoded_and_counted_as_one_batch(tmp_path: Path) -> None:
    """A batch of one-CloudEvent records of many tenants is decoded in one call (the worker
    decoder's `many`), and a bad record in the middle is dead-lettered alone with its
    field while every other record is counted."""
    calls: list[int] = []

    def many(items: list[tuple[bytes, Any, int]]) -> list[Any]:
        calls.append(len(items))
        return WorkerDecoder(None).many(items)

    decoder = WorkerDecoder(None)
    decoder.many = many  # type: ignore[method-assign]
    state = _state(tmp_path / "p0", decode=decoder)
    records = []
    for i in range(200):
        tenant = f"t{i % 7}"
        event = _event(i, T0 + i, tenant=tenant)
        value = encode_event(event)
        if i == 57:
            value = value.replace(b'"input_tokens":10', b'"input_tokens":-1')
        records.append(InputRecord(i, tenant.encode(), value, None, T0 + 10_000_000))
    outputs, _, counts = state.process(records, T0)
    assert calls == [200]
    assert (counts.counted, counts.dead_lettered, counts.duplicates) == (199, 1, 0)
    (dead,) = outputs
    assert dead.topic == "dlq" and dead.key == b"t1"
    headers = dict(dead.headers or [])
    assert headers[DLQ_FIELD] == b"input_tokens" and headers[DLQ_OFFSET] == b"57"
    assert sum(t[5] for slot in state.book.open.values() for t in slot.values()) == 199
