"""Batching rules of the ClickHouse sink, without servers."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from tests.clickhouse_helpers import event, ms, window
from tokenops.deadletters import DLQ_BUNDLE
from tokenops.placement import home_partition
from tokenops.schemas.signing import signature_key_id
from tokenops.schemas.wire import EVENT_HEADERS, encode_batch, encode_event, encode_fields
from tokenops.sinks.base import NOT_HOME, UNREADABLE, Skip
from tokenops.sinks.clickhouse.decoding import EventDecoder, decode_chunk
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS, Batch, Decoded, supersedes
from tokenops.sinks.clickhouse.verdicts import dead_letter_row
from tokenops.streams.deadletter import dead_letter_record


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
    columns, skipped = decode_chunk(records)
    assert [skip.reason for skip in skipped] == [UNREADABLE]
    assert "offset=41" in skipped[0].detail
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
    now = datetime.now(UTC)

    def ahead(delta: timedelta) -> bytes:
        fields = {**event("acme", "gpt-4o", t, 1).model_dump(), "time": now + delta}
        return encode_fields(fields, max_future_skew_s=10**10)[1]

    records = [
        (value, EVENT_HEADERS, home, 1),
        (ahead(timedelta(days=1)), EVENT_HEADERS, home, 2),  # the worker: `future`
        (value, EVENT_HEADERS, elsewhere, 3),  # forwarded home by the worker
        # beyond any worker's reach: not stored (a month, a partition, each)
        (ahead(timedelta(days=9)), EVENT_HEADERS, home, 4),
    ]
    columns, skipped = decode_chunk(records, partitions=4)
    assert [skip.reason for skip in skipped] == [NOT_HOME, UNREADABLE]
    assert dict(zip(EVENT_COLUMNS, columns, strict=True))["kafka_offset"] == [1, 2]
    assert len(decode_chunk(records)[1]) == 1  # no partition count: no placement rule


def test_chunks_in_flight_count_at_their_expected_rows_and_resolve_in_order() -> None:
    batch = Batch()
    late: Future[Decoded] = Future()
    batch.add_pending(late, records=2, expected_rows=200)
    batch.add_pending(EventDecoder(0).submit([], None), records=0, expected_rows=0)
    assert len(batch) == 200
    assert batch.resolve_ready() == [] and len(batch.pending) == 2  # the first is not done
    skip = Skip(UNREADABLE, "offset=3: not JSON")
    late.set_result(([[n] for n in range(len(EVENT_COLUMNS))], [skip]))
    assert batch.resolve_ready() == [skip]
    assert batch.pending == [] and batch.event_rows == 1 and len(batch) == 1


def test_dead_letters_of_the_usage_topic_become_rows_and_others_are_ignored() -> None:
    _, headers = dead_letter_record(
        b"{}",
        [("tokenops.signature", b"v1;kid=node-a-1;sig=x")],
        reason="too_late: older than the dedup horizon",
        field="time",
        topic="usage",
        partition=3,
        offset=17,
        time_ms=5,
    )
    row = dead_letter_row(headers, b"acme", "usage")
    assert row == ["usage", 3, 17, 0, "too_late: older than the dedup horizon", "time", "acme", 5]
    # an element of a bundle: the row names where its events are stored (the bundle's
    # position and its index there), not where it was written
    bundled = dead_letter_row([*headers, (DLQ_BUNDLE, b"1:40:2")], b"acme", "usage")
    assert bundled is not None and bundled[:4] == ["usage", 1, 40, 2]
    assert dead_letter_row([*headers, (DLQ_BUNDLE, b"1:40")], b"acme", "usage") is None
    assert dead_letter_row(headers, b"acme", "another-topic") is None
    assert dead_letter_row([("tokenops.dlq.topic", b"usage")], None, "usage") is None


def test_the_key_id_is_read_from_one_well_formed_signature_header() -> None:
    sig = ("tokenops.signature", b"v1;kid=node-a-2026-10;sig=" + b"A" * 43)
    assert signature_key_id([sig]) == "node-a-2026-10"
    assert signature_key_id([sig, sig]) is None  # the worker rejects two signatures
    assert signature_key_id([("tokenops.signature", b"v2;kid=k;sig=x")]) is None
    assert signature_key_id(None) is None
