"""A dead letter stays below the dead-letter topic's limit, however large its record."""

from __future__ import annotations

from typing import Any

from tokenops.deadletters import DLQ_OFFSET, DLQ_PARTITION, DLQ_TOPIC, DLQ_VALUE_BYTES
from tokenops.streams.deadletter import DEAD_LETTER_MAX_BYTES, dead_letter_record

WHERE: dict[str, Any] = dict(
    reason="r", field="record", topic="usage", partition=3, offset=41, time_ms=1
)


def test_a_small_record_is_kept_whole() -> None:
    value, headers = dead_letter_record(b"{not json", [("content-type", b"x")], **WHERE)
    assert value == b"{not json"
    assert headers[0] == ("content-type", b"x")
    assert DLQ_VALUE_BYTES not in dict(headers)


def test_a_near_limit_record_loses_its_value_and_says_where_it_was() -> None:
    big = b"x" * 1_000_000  # what a usage topic at the broker's default limit accepts
    value, headers = dead_letter_record(big, [("trace", b"t" * 40_000)], **WHERE)
    found = dict(headers)
    assert value == b""
    assert found[DLQ_VALUE_BYTES] == b"1000000"
    assert (found[DLQ_TOPIC], found[DLQ_PARTITION], found[DLQ_OFFSET]) == (b"usage", b"3", b"41")
    assert found["trace"] == b"t" * 40_000  # small original headers stay


def test_oversized_original_headers_are_left_out_too() -> None:
    original = [(f"h{i}", b"y" * 100_000) for i in range(9)]
    value, headers = dead_letter_record(b"{}", original, **WHERE)
    assert value == b""
    assert sum(len(k) + len(v) for k, v in headers) < DEAD_LETTER_MAX_BYTES
    assert dict(headers)[DLQ_VALUE_BYTES] == b"2"


def test_a_tombstone_is_dead_lettered_as_it_came() -> None:
    value, _ = dead_letter_record(None, None, **WHERE)  # type: ignore[arg-type]  # as Kafka gives it
    assert value is None
