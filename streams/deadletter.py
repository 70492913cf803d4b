"""Dead letters: an input record the worker cannot count, kept whole with the reason.

A dead letter goes to `TopicSettings().dead_letter` with the original record's key and
value bytes and its original headers, plus these headers (values UTF-8 text):

- `tokenops.dlq.reason`    why it was rejected (`InvalidEventError` message, or
                           `too_late: ...` for events older than the dedup horizon)
- `tokenops.dlq.field`     the offending field (`record`, `time`, `tenant_id`, ...)
- `tokenops.dlq.topic`     the topic, partition and offset the record was read from
- `tokenops.dlq.partition`
- `tokenops.dlq.offset`
- `tokenops.dlq.time_ms`   wall-clock time the worker dead-lettered it (epoch ms)

A record is dead-lettered as a whole (a batch record with one bad event included), so
re-publishing a fixed record cannot count its good events twice. Topic, partition and
offset identify a dead letter: a replay after a crash may publish it again, and readers
deduplicate on those three headers.
"""

from __future__ import annotations

from collections.abc import Sequence

DLQ_REASON = "tokenops.dlq.reason"
DLQ_FIELD = "tokenops.dlq.field"
DLQ_TOPIC = "tokenops.dlq.topic"
DLQ_PARTITION = "tokenops.dlq.partition"
DLQ_OFFSET = "tokenops.dlq.offset"
DLQ_TIME_MS = "tokenops.dlq.time_ms"
DLQ_HEADERS = (DLQ_REASON, DLQ_FIELD, DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, DLQ_TIME_MS)

Headers = list[tuple[str, bytes]]


def dead_letter_headers(
    original: Sequence[tuple[str, bytes | None]] | None,
    *,
    reason: str,
    field: str,
    topic: str,
    partition: int,
    offset: int,
    time_ms: int,
) -> Headers:
    """The original headers followed by the `tokenops.dlq.*` ones."""
    headers: Headers = [(k, v if v is not None else b"") for k, v in original or ()]
    headers += [
        (DLQ_REASON, reason.encode()),
        (DLQ_FIELD, field.encode()),
        (DLQ_TOPIC, topic.encode()),
        (DLQ_PARTITION, str(partition).encode()),
        (DLQ_OFFSET, str(offset).encode()),
        (DLQ_TIME_MS, str(time_ms).encode()),
    ]
    return headers
