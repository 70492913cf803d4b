"""The worker's verdicts, as the sink stores them: it never judges a record itself.

The worker is the one judge of what is counted (signatures and their scope, lateness,
future times, keys, placement). The sink stores every usage record it can read that sits
in its tenant's home partition, with the key id that signed it, and every dead letter
the worker wrote for the usage topic; the billing view `raw_events_latest` leaves out
dead-lettered records and keeps the first occurrence of an event, as the worker counts.
So a sink whose keyring or clock differs from the worker's cannot store a different
verdict (docs/clickhouse.md, "Raw events follow the worker").
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenops.deadletters import (
    DLQ_BUNDLE,
    DLQ_FIELD,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TIME_MS,
    DLQ_TOPIC,
)

DEAD_LETTER_COLUMNS = [
    "topic",
    "partition",
    "offset",
    "element",
    "reason",
    "field",
    "key",
    "dead_lettered_at",
]

Headers = Sequence[tuple[str, bytes | None]] | None


def dead_letter_row(headers: Headers, key: bytes | None, usage_topic: str) -> list[object] | None:
    """The `dead_letters` row of one dead-letter record in DEAD_LETTER_COLUMNS order;
    None for a dead letter of another topic or without the worker's position headers."""
    found = {k: v for k, v in headers or () if k.startswith("tokenops.dlq.") and v is not None}
    if found.get(DLQ_TOPIC) != usage_topic.encode():
        return None
    try:
        partition, offset = int(found[DLQ_PARTITION]), int(found[DLQ_OFFSET])
        element = 0
        if DLQ_BUNDLE in found:
            # an element of a bundle: its events are stored at the bundle's position and
            # its index there (`decoding.py`); DLQ_PARTITION/OFFSET say where it was written
            partition, offset, element = map(int, found[DLQ_BUNDLE].split(b":"))
        time_ms = int(found.get(DLQ_TIME_MS, b"0"))
    except (KeyError, ValueError):
        return None
    return [
        usage_topic,
        partition,
        offset,
        element,
        found.get(DLQ_REASON, b"").decode("utf-8", "replace"),
        found.get(DLQ_FIELD, b"").decode("utf-8", "replace"),
        (key or b"").decode("utf-8", "replace"),
        time_ms,
    ]
