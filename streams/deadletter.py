"""Dead letters the worker writes: an input record it cannot count, kept whole with the reason.

A dead letter goes to `TopicSettings().dead_letter` with the original record's key and
value bytes and its original headers, plus the `tokenops.dlq.*` headers named in
`tokenops/deadletters.py` (shared with the sinks, which read them).

An input record may be as large as the usage topic allows (1 MiB by default); with the
headers added here, its dead letter could pass the dead-letter topic's limit, and a
record the broker refuses would stop the worker at the same offset on every restart.
So a record whose value and headers together exceed `DEAD_LETTER_MAX_BYTES` is
dead-lettered without its value (and without its original headers, if those alone are
too large): the `tokenops.dlq.topic/partition/offset` headers say where to read it in
the usage topic while its retention lasts, and `tokenops.dlq.value_bytes` gives its size.

A record is dead-lettered as a whole (a batch record with one bad event included), so
re-publishing a fixed record cannot count its good events twice. Topic, partition and
offset identify a dead letter (with `tokenops.dlq.bundle` for a record read in a bundle,
whose partition and offset are where it was written, as the bundle says): a replay
after a crash may publish it again, and readers deduplicate on those headers.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenops.deadletters import DLQ_HEADERS, DLQ_VALUE_BYTES

# Half the broker's default max.message.bytes: room for the headers added here.
DEAD_LETTER_MAX_BYTES = 512 * 1024

Headers = list[tuple[str, bytes]]


def dead_letter_record(
    value: bytes,
    original: Sequence[tuple[str, bytes | None]] | None,
    *,
    reason: str,
    field: str,
    topic: str,
    partition: int,
    offset: int,
    time_ms: int,
) -> tuple[bytes, Headers]:
    """(value, headers) of the dead letter of a record read at topic/partition/offset;
    above `DEAD_LETTER_MAX_BYTES` the value is left out."""
    kept = list(original or ())
    header_bytes = sum(len(k) + len(v or b"") for k, v in kept)
    size = len(value) if value else 0  # a tombstone (None) is dead-lettered as it came
    fits = size + header_bytes <= DEAD_LETTER_MAX_BYTES
    if not fits and header_bytes > DEAD_LETTER_MAX_BYTES:
        kept = []
    # the original headers, then the `tokenops.dlq.*` ones (DLQ_HEADERS order)
    headers: Headers = [(k, v if v is not None else b"") for k, v in kept]
    verdict = (reason, field, topic, str(partition), str(offset), str(time_ms))
    headers += [(name, text.encode()) for name, text in zip(DLQ_HEADERS, verdict, strict=True)]
    if fits:
        return value, headers
    headers.append((DLQ_VALUE_BYTES, str(size).encode()))
    return b"", headers
