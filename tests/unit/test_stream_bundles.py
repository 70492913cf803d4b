"""Bundles: the records a worker forwards to one home partition as one record
(`wire.encode_bundle`, `decode.bundle_elements`, `routing.py`, `partition.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness.partition import partition_state, usage_event
from tokenops.deadletters import DLQ_BUNDLE, DLQ_FIELD, DLQ_OFFSET, DLQ_PARTITION
from tokenops.placement import home_partition
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import bundle_elements, decode_columns, is_bundle
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import FUTURE
from tokenops.schemas.wire import BUNDLE_HEADER, EVENT_HEADERS, encode_bundle, encode_event
from tokenops.streams.partition import InputRecord, PartitionState
from tokenops.streams.routing import LOG_APPEND_TIME

T0 = 1_750_000_020_000
PARTITIONS = 4
TENANTS = [f"tenant-{i}" for i in range(40)]
AT = {p: [t for t in TENANTS if home_partition(t, PARTITIONS) == p] for p in range(PARTITIONS)}


def _decode(value: bytes, headers: Any, now_ms: int) -> EventColumns:
    return decode_columns(value, headers, now_ms=now_ms)


def _state(path: Path, partition: int) -> PartitionState:
    return partition_state(
        path, decode=_decode, partition=partition, outputs=("aggs", "dlq"), partitions=PARTITIONS
    )


def _bundle(elements: list[tuple[str, bytes, int, int]], **meta: Any) -> tuple[bytes, Any]:
    """A bundle of (key, value, partition, offset), clocks T0, as a worker writes it."""
    keys, values, partitions, offsets = (list(c) for c in zip(*elements, strict=True))
    value, headers = encode_bundle(
        keys, values, [1] * len(keys), (partitions, offsets), [T0] * len(keys)
    )
    if meta:
        columns = {**orjson.loads(headers[1][1]), **meta}
        headers = [headers[0], (BUNDLE_HEADER, orjson.dumps(columns))]
    return value, headers


def test_a_bundle_carries_each_record_as_written() -> None:
    a, b = encode_event(usage_event(1, T0, "acme")), b'{"not": "an event"}'
    value, headers = encode_bundle(["acme", "b\u00e9ta"], [a, b], [1, 0], ([0, 2], [17, 4]), [5, 6])
    assert orjson.loads(value) == [orjson.loads(a), orjson.loads(b)]  # a JSON array
    assert is_bundle(None, headers) and not is_bundle(b"acme", headers)
    got = bundle_elements(value, headers)
    assert [tuple(e) for e in got] == [
        (b"acme", a, EVENT_HEADERS, 0, 17, 5),
        ("b\u00e9ta".encode(), b, None, 2, 4, 6),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"size": [1, 2]},  # sizes that do not add up to the value
        {"offset": [-1, 0]},
        {"clock_ms": [T0, "soon"]},
        {"typed": [1, 2]},
        {"key": ["acme", ""]},
        {"partition": [0]},  # columns of different lengths
        {"extra": [0, 0]},
    ],
)
def test_a_bundle_whose_header_does_not_fit_is_refused(change: dict[str, Any]) -> None:
    value, headers = _bundle([("acme", b"{}", 0, 1), ("acme", b"{}", 0, 2)], **change)
    with pytest.raises(InvalidEventError) as info:
        bundle_elements(value, headers)
    assert info.value.field == "bundle"


def test_a_bundle_split_elsewhere_than_its_commas_is_refused() -> None:
    value, headers = _bundle([("acme", b"{}", 0, 1), ("acme", b"{}", 0, 2)])
    with pytest.raises(InvalidEventError):
        bundle_elements(value.replace(b"},{", b"}]{"), headers)
    with pytest.raises(InvalidEventError):
        bundle_elements(value, [headers[0]])  # no bundle header


def _forwarded_home(path: Path, records: list[InputRecord]) -> tuple[list[Any], Any]:
    """Forward `records` from partition 0, then process what reached partition 1."""
    outputs, _, counts = _state(path / "p0", 0).process(records, T0 + 1_000)
    assert counts.forwarded == len(records) and counts.counted == 0
    bundles = [o for o in outputs if o.topic == "usage"]
    assert [(o.partition, o.key) for o in bundles] == [(1, None)]  # one record for all
    home = bundles[0]
    record = InputRecord(9, None, home.value, home.headers, home.timestamp_ms)
    return _state(path / "p1", 1).process([record], T0 + 1_000)[::2]


def test_each_element_is_judged_alone_and_named_where_it_was_written(tmp_path: Path) -> None:
    tenant, other = AT[1][0], AT[1][1]
    good = encode_event(usage_event(1, T0, tenant))
    records = [
        InputRecord(0, tenant.encode(), good, EVENT_HEADERS, T0),
        InputRecord(1, tenant.encode(), good, EVENT_HEADERS, T0),  # a resend
        InputRecord(2, tenant.encode(), b"{not json", None, T0),
        InputRecord(3, tenant.encode(), encode_event(usage_event(2, T0, other)), None, T0),  # key
        InputRecord(4, tenant.encode(), encode_event(usage_event(3, T0, tenant)), None, T0),
    ]
    outputs, counts = _forwarded_home(tmp_path, records)
    assert (counts.records, counts.dead_lettered, counts.forwarded) == (5, 2, 0)
    assert (counts.counted, counts.duplicates) == (2, 1)
    dead = [dict(o.headers) for o in outputs if o.topic == "dlq"]
    assert [(d[DLQ_PARTITION], d[DLQ_OFFSET], d[DLQ_FIELD], d[DLQ_BUNDLE]) for d in dead] == [
        (b"0", b"2", b"record", b"1:9:2"),
        (b"0", b"3", b"key", b"1:9:3"),
    ]
    assert [o.value for o in outputs if o.topic == "dlq"] == [records[2].value, records[3].value]


def test_an_elements_clock_is_capped_by_the_bundles_own(tmp_path: Path) -> None:
    """A forged header cannot move an element's clock past the bundle's own event clock
    at home; it can only make it earlier, which judges the element more strictly."""
    tenant = AT[1][0]
    ahead = encode_event(usage_event(1, T0 + 10 * 60_000, tenant))  # 10 min past T0
    value, headers = encode_bundle(
        [tenant] * 2,
        [ahead, encode_event(usage_event(2, T0, tenant))],
        [1, 1],
        ([0, 0], [1, 2]),
        [T0 + 3_600_000, T0 - 60_000],  # forged: an hour ahead; and a minute behind
    )
    state = _state(tmp_path / "p1", 1)
    record = InputRecord(0, None, value, headers, T0, LOG_APPEND_TIME)
    _, delta, counts = state.process([record], T0 + 3_600_000)
    assert counts.dead_letter_fields == [FUTURE] and counts.counted == 1
    assert delta.max_event_ms == T0


def test_a_bundle_written_by_a_producer_gains_nothing(tmp_path: Path) -> None:
    """Keyed, it is no bundle (dead-lettered whole); unkeyed, each element is judged as a
    record: one keyed elsewhere goes on to its key's home, in a bundle, as it would have
    alone; a malformed one is dead-lettered whole at its own position."""
    tenant, elsewhere = AT[1][0], AT[2][0]
    one = encode_event(usage_event(1, T0, tenant))
    value, headers = _bundle([(tenant, one, 3, 7), (elsewhere, one, 3, 8)])
    state = _state(tmp_path / "p1", 1)
    records = [
        InputRecord(0, tenant.encode(), value, headers, T0),
        InputRecord(1, None, value, headers, T0),
        InputRecord(2, None, value + b" ", headers, T0),
    ]
    outputs, _, counts = state.process(records, T0 + 1_000)
    assert (counts.records, counts.counted, counts.forwarded, counts.dead_lettered) == (4, 1, 1, 2)
    assert counts.dead_letter_fields == ["bundle", "record"]  # the keyed one: not an object
    onward = [o for o in outputs if o.topic == "usage"]
    assert [(o.partition, o.key) for o in onward] == [(2, None)]
    assert [tuple(e) for e in bundle_elements(onward[0].value, onward[0].headers)] == [
        (elsewhere.encode(), one, EVENT_HEADERS, 3, 8, T0)
    ]
    dead = [dict(o.headers) for o in outputs if o.topic == "dlq"]
    assert [(d[DLQ_PARTITION], d[DLQ_OFFSET]) for d in dead] == [(b"1", b"2"), (b"1", b"0")]
    assert not any(DLQ_BUNDLE in d for d in dead)


def test_forwarding_in_bundles_counts_what_murmur2_placement_counts(tmp_path: Path) -> None:
    """The same records, once each written to its tenant's home and once spread over
    every partition (consistent_random's effect), give the same state at each home."""
    records = {p: [] for p in range(PARTITIONS)}  # type: dict[int, list[InputRecord]]
    spread = {p: [] for p in range(PARTITIONS)}  # type: dict[int, list[InputRecord]]
    events = [usage_event(i, T0 + i, TENANTS[i % len(TENANTS)]) for i in range(150)]
    for i in range(200):
        event = events[i % 150]  # 50 resends
        tenant, value = event.tenant_id, encode_event(event)
        home = home_partition(tenant, PARTITIONS)
        records[home].append(InputRecord(len(records[home]), tenant.encode(), value, None, T0))
        p = (i * 7) % PARTITIONS
        spread[p].append(InputRecord(len(spread[p]), tenant.encode(), value, None, T0))
    arrived = {p: list(spread[p]) for p in range(PARTITIONS)}
    for p in range(PARTITIONS):
        outputs, _, _ = _state(tmp_path / f"s{p}", p).process(spread[p], T0 + 1_000)
        for o in outputs:
            if o.topic == "usage":
                assert o.key is None and o.partition != p
                n = len(arrived[o.partition])
                arrived[o.partition].append(InputRecord(n, None, o.value, o.headers, T0))
    for p in range(PARTITIONS):
        direct = _state(tmp_path / f"d{p}", p)
        _, want, want_counts = direct.process(records[p], T0 + 1_000)
        spread_home = _state(tmp_path / f"h{p}", p)
        kept = [r for r in arrived[p] if r.key is None or home_partition(r.key.decode(), 4) == p]
        at_home = [r._replace(offset=i) for i, r in enumerate(kept)]  # the others went on
        _, got, got_counts = spread_home.process(at_home, T0 + 1_000)
        assert (got_counts.counted, got_counts.duplicates) == (
            want_counts.counted,
            want_counts.duplicates,
        )
        assert sorted(got.open) == sorted(want.open)
