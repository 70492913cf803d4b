"""The sink's columnar raw-event decode gives exactly the rows of the per-event path.

`decode_chunk` builds the `raw_events` columns from `decode_columns` without any
`UsageEvent`; `per_event_decode_chunk` is the path it replaced (`decode_record`, then the
columns read back from the events), kept in tests/oracles/sink_per_event.py as the
reference (bench/sink_legacy.py runs it as the benchmark's baseline). Both must agree
on every chunk: the same columns in the same order, the same invalid-record count, with
and without the signature check.
"""

from __future__ import annotations

import pickle
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.oracles.sink_per_event import decode_chunk as per_event_decode_chunk
from tokenops.placement import home_partition
from tokenops.schemas import (
    BATCH_HEADERS,
    COLUMNS_HEADERS,
    EVENT_HEADERS,
    EventColumns,
    InvalidEventError,
    UsageEvent,
    decode_record,
    encode_batch,
    encode_columns,
    encode_event,
)
from tokenops.schemas.signing import SIGNATURE_HEADER, signature_header
from tokenops.sinks.clickhouse.decoding import RawRecord, decode_chunk
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS, Batch, Decoded

from .test_event_contract import valid_fields

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = b"0123456789abcdef0123456789abcdef"
BASE: dict[str, Any] = {
    "source": "//node/test",
    "time": datetime(2026, 11, 3, 10, 0, 0, 123000, tzinfo=UTC),
    "tenant_id": "acme",
    "model": "gpt-4o",
    "provider": "openai",
    "input_tokens": 1000,
    "output_tokens": 500,
}


def encoded(events: list[UsageEvent], kind: str) -> tuple[bytes, list[tuple[str, bytes]] | None]:
    """One record of `events` in the given wire format."""
    if kind == "event":
        return encode_event(events[0]), EVENT_HEADERS
    if kind == "v1":
        return encode_batch(events), BATCH_HEADERS
    if kind == "v2":
        return encode_columns(EventColumns.from_events(events)), COLUMNS_HEADERS
    if kind == "v2-sniffed":  # no content-type header: told apart by its body
        return encode_columns(EventColumns.from_events(events)), None
    return b'{"type": "ai.tokenops.usage.batch", "version": 2}', COLUMNS_HEADERS  # invalid


record_kinds = st.sampled_from(["event", "v1", "v2", "v2-sniffed", "invalid"])
records_strategy = st.lists(
    st.tuples(
        st.lists(valid_fields(), min_size=1, max_size=5),
        record_kinds,
        st.integers(0, 11),
        st.integers(0, 2**40),
    ),
    min_size=0,
    max_size=6,
)


def build(drawn: list[tuple[list[dict[str, Any]], str, int, int]]) -> list[RawRecord]:
    records: list[RawRecord] = []
    for many, kind, partition, offset in drawn:
        tenant = many[0]["tenant_id"]
        events = [UsageEvent(**{**fields, "tenant_id": tenant}) for fields in many]
        value, headers = encoded(events, kind)
        records.append((value, headers, partition, offset))
    return records


@SETTINGS
@given(records_strategy)
def test_columnar_decode_gives_the_rows_of_the_per_event_path(
    drawn: list[tuple[list[dict[str, Any]], str, int, int]],
) -> None:
    records = build(drawn)
    expected = per_event_decode_chunk(records)
    got = decode_chunk(records)
    assert reasons(got) == reasons(expected)
    assert [len(c) for c in got[0]] == [len(got[0][0])] * len(EVENT_COLUMNS)
    # decoder processes ship the result pickled (a shared empty attributes dict included)
    assert pickle.loads(pickle.dumps(got)) == got


@SETTINGS
@given(records_strategy, st.lists(st.sampled_from(["signed", "forged", "unsigned"]), max_size=6))
def test_the_signing_key_id_is_stored_and_the_signature_left_to_the_worker(
    drawn: list[tuple[list[dict[str, Any]], str, int, int]], signing: list[str]
) -> None:
    records = []
    for (value, headers, partition, offset), how in zip(build(drawn), signing, strict=False):
        try:
            events = decode_record(value, cast("list[tuple[str, bytes]] | None", headers))
        except InvalidEventError:
            events = []
        pairs = list(headers or [])
        if events and how != "unsigned":
            secret = SECRET if how == "signed" else b"not-the-key-0123456789abcdefghij"
            pairs.append((SIGNATURE_HEADER, signature_header("k1", secret, events)))
        records.append((value, pairs, partition, offset))
    got = decode_chunk(records)
    assert reasons(got) == reasons(per_event_decode_chunk(records))
    key_ids = dict(zip(EVENT_COLUMNS, got[0], strict=True))["key_id"]
    assert set(key_ids) <= {"k1", ""}


# What a gateway that is not the SDK sends: many single events, most at their tenant's
# home partition, a few broken, signed, with attributes, or batches. Twelve or more
# single events without attributes make one chunk of many tenants in the decoder
# (`decode_fetch`), whose lists the sink stores as they are.
many_singles = st.lists(
    st.tuples(
        st.lists(valid_fields(), min_size=1, max_size=2),
        st.sampled_from(["event"] * 12 + ["v1", "v2", "invalid"]),
        st.sampled_from(["home"] * 6 + ["away", "signed", "attributes"]),
        st.integers(0, 2**40),
    ),
    min_size=12,
    max_size=40,
)


@settings(SETTINGS, max_examples=40)
@given(many_singles, st.sampled_from([None, 4]))
def test_a_chunk_of_single_events_gives_the_rows_of_the_per_event_path(
    drawn: list[tuple[list[dict[str, Any]], str, str, int]], partitions: int | None
) -> None:
    records: list[RawRecord] = []
    for many, kind, how, offset in drawn:
        if how != "attributes":
            many = [{k: v for k, v in fields.items() if k != "attributes"} for fields in many]
        events = [UsageEvent(**{**fields, "tenant_id": many[0]["tenant_id"]}) for fields in many]
        value, headers = encoded(events, kind)
        pairs = list(headers or [])
        if how == "signed":
            pairs.append((SIGNATURE_HEADER, f"v1;kid=k{offset % 3};sig={'A' * 43}".encode()))
        home = home_partition(many[0]["tenant_id"], 4)
        records.append((value, pairs, home if how != "away" else (home + 1) % 4, offset))
    expected = per_event_decode_chunk(records, partitions)
    got = decode_chunk(records, partitions)
    assert reasons(got) == reasons(expected)  # skips in record order, as the oracle's
    # records read from a bundle (the oracle knows none) keep their index in it
    table = dict(zip(EVENT_COLUMNS, got[0], strict=True))
    bundled = decode_chunk([(*r, r[3] % 7) for r in records], partitions)
    assert dict(zip(EVENT_COLUMNS, bundled[0], strict=True)) == {
        **table,
        "kafka_element": [o % 7 for o in cast("list[int]", table["kafka_offset"])],
    }
    # a batch extends its first chunk's lists in place: no two columns may share a list
    batch = Batch()
    for _ in range(2):
        batch.add_pending(_done(decode_chunk(records, partitions)), len(records), 0)
        batch.resolve_oldest()
    assert batch.events == [column * 2 for column in expected[0]]


def test_common_batches_take_whole_columns_and_optional_ids_become_empty() -> None:
    base = dict(BASE, region="eu-1")
    with_attributes = {**base, "id": "b", "attributes": {"k": "v"}, "project_id": "p-1"}
    events = [UsageEvent(**{**base, "id": "a"}), UsageEvent(**with_attributes)]
    records: list[RawRecord] = [
        (*encoded(events, "v2"), 3, 17),
        (*encoded(events[:1], "v1"), 1, 5),
    ]
    columns, skipped = decode_chunk(records)
    table = dict(zip(EVENT_COLUMNS, columns, strict=True))
    assert skipped == []
    assert table["id"] == ["a", "b", "a"]
    assert table["tenant_id"] == ["acme"] * 3
    assert table["project_id"] == ["", "p-1", ""]
    assert table["region"] == ["eu-1"] * 3
    assert table["attributes"] == [{}, {"k": "v"}, {}]
    assert table["kafka_partition"] == [3, 3, 1] and table["kafka_offset"] == [17, 17, 5]
    assert reasons((columns, skipped)) == reasons(per_event_decode_chunk(records))


def test_a_batch_takes_the_first_chunk_as_it_is_and_appends_the_rest() -> None:
    events = [UsageEvent(**BASE, id="a")]
    records: list[RawRecord] = [(*encoded(events, "v2"), 0, n) for n in range(3)]
    batch = Batch()
    for n in range(3):
        batch.add_pending(_done(decode_chunk(records[n : n + 1])), records=1, expected_rows=1)
    assert [batch.resolve_oldest() for _ in range(3)] == [[], [], []]
    assert batch.events == decode_chunk(records)[0]


def reasons(decoded: Decoded) -> tuple[list[list[object]], list[str]]:
    """The columns and each skipped record's reason (the two paths word details apart)."""
    return decoded[0], [skip.reason for skip in decoded[1]]


def _done(decoded: Decoded) -> Future[Decoded]:
    future: Future[Decoded] = Future()
    future.set_result(decoded)
    return future
