"""Batching rules of the ClickHouse sink, without servers."""

from __future__ import annotations

from concurrent.futures import Future

from tests.clickhouse_helpers import event, ms, window
from tokenops.placement import home_partition
from tokenops.schemas.codec import EVENT_HEADERS, encode_batch, encode_event, encode_fields
from tokenops.sinks.clickhouse.decoding import EventDecoder, decode_chunk
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS, Batch, Decoded, supersedes


def test_a_batch_keeps_the_reader_rule_latest_revision_then_more_events() -> None:
    start = ms(2026, 11, 3, 10, 0)
    batch = Batch()
    for w in (
        window("t", "m", start, revision=2, events=4),
        window("t", "m", start, revision=1, events=9),  # older revision, more events
        window("t", "m", start, revision=2, events=5),  # re-close with more events
        window("t", "m", start, revision=2, events=3),
    ):
        batch.add_window(w)
    (kept,) = batch.windows.values()
    assert (kept.revision, kept.event_count) == (2, 5)
    assert supersedes(window("t", "m", start, revision=3), kept)


def test_decoding_yields_columns_and_counts_invalid_records() -> None:
    t = ms(2026, 11, 3, 10, 0)
    events = [event("acme", "gpt-4o", t + i, i, input_tokens=1000 + i) for i in range(3)]
    records = [
        (encode_batch(events[:2]), None, 1, 40),
        (b"{not json", None, 1, 41),
        (encode_event(events[2]), EVENT_HEADERS, 2, 7),
    ]
    columns, invalid = decode_chunk(records)
    assert invalid == 1
    table = dict(zip(EVENT_COLUMNS, columns, strict=True))
    assert table["id"] == ["evt-0", "evt-1", "evt-2"]
    assert table["input_tokens"] == [1000, 1001, 1002]
    assert table["time"] == [t, t + 1, t + 2]
    assert table["kafka_partition"] == [1, 1, 2] and table["kafka_offset"] == [40, 40, 7]
    assert table["project_id"] == ["", "", ""]  # absent identifiers are ''


def test_raw_events_store_what_the_worker_judges_and_only_in_the_home_partition() -> None:
    """Key, clock and signature are the worker's verdicts (its dead letters leave such
    records out of the billing view), so the sink stores them; a record outside its
    tenant's home partition is not stored: the worker forwards it, and stores that copy."""
    t = ms(2026, 11, 3, 10, 0)
    value = encode_event(event("acme", "gpt-4o", t, 0))
    home = home_partition("acme", 4)
    elsewhere = (home + 1) % 4
    fields = {**event("acme", "gpt-4o", t, 1).model_dump(), "time": "2290-01-01T00:00:00Z"}
    far_ahead = encode_fields(fields, max_future_skew_s=10**10)[1]
    records = [
        (value, EVENT_HEADERS, home, 1),
        (far_ahead, EVENT_HEADERS, home, 2),  # the worker dead-letters it `future`
        (value, EVENT_HEADERS, elsewhere, 3),  # forwarded home by the worker
    ]
    columns, skipped = decode_chunk(records, partitions=4)
    assert skipped == 1
    assert dict(zip(EVENT_COLUMNS, columns, strict=True))["kafka_offset"] == [1, 2]
    assert decode_chunk(records)[1] == 0  # no partition count: no placement rule


def test_chunks_in_flight_count_at_their_expected_rows_and_resolve_in_order() -> None:
    batch = Batch()
    late: Future[Decoded] = Future()
    batch.add_pending(late, records=2, expected_rows=200)
    batch.add_pending(EventDecoder(0).submit([], None), records=0, expected_rows=0)
    assert len(batch) == 200
    assert batch.resolve_ready() == 0 and len(batch.pending) == 2  # the first is not done
    late.set_result(([[n] for n in range(len(EVENT_COLUMNS))], 1))
    assert batch.resolve_ready() == 1
    assert batch.pending == [] and batch.event_rows == 1 and len(batch) == 1
