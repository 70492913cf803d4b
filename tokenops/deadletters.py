"""Dead letters as every component reads them: the `tokenops.dlq.*` header names and the
bounded vocabulary of their `field` header as a metric label.

The worker writes dead letters (`streams/deadletter.py` builds them); the ClickHouse sink
stores them and the Prometheus sink counts them. All three read the names here, so the
sinks and the worker never import each other.

A dead letter carries the original record's key, value and headers, plus (values UTF-8):

- `tokenops.dlq.reason`    why it was rejected (`InvalidEventError` message, or
                           `too_late: ...` for events older than the dedup horizon)
- `tokenops.dlq.field`     the offending field (`record`, `time`, `tenant_id`, ...)
- `tokenops.dlq.topic`     the topic, partition and offset the record was read from
- `tokenops.dlq.partition`
- `tokenops.dlq.offset`
- `tokenops.dlq.time_ms`   wall-clock time the worker dead-lettered it (epoch ms)
- `tokenops.dlq.value_bytes` only when the value was left out: its size
- `tokenops.dlq.bundle`    only for a record that reached its home partition in a
                           worker's bundle (`schemas/wire.py`): `partition:offset:index`
                           of the bundle it was read from; `partition` and `offset` above
                           then name where it was written (as the bundle's header says)

The `field` header names the field or rule a record broke (`InvalidEventError.field`).
Most values are fixed names, but a few echo a name the producer chose (an unknown event
field, batch column or CloudEvent attribute), so as a label it must be bounded: values
outside the vocabulary below are `other`. The worker's
`tokenops_worker_dead_letters_total{field}` and the Prometheus sink's
`tokenops_dead_letter_records_total{field}` both label through `dead_letter_label`, so
a dashboard shows the same words as the header on the dead-letter topic.
"""

from __future__ import annotations

from tokenops.schemas.event import FUTURE, UsageEvent
from tokenops.schemas.signing import SCOPE_FIELD
from tokenops.schemas.wire import CONTENT_TYPE_HEADER

DLQ_REASON = "tokenops.dlq.reason"
DLQ_FIELD = "tokenops.dlq.field"
DLQ_TOPIC = "tokenops.dlq.topic"
DLQ_PARTITION = "tokenops.dlq.partition"
DLQ_OFFSET = "tokenops.dlq.offset"
DLQ_TIME_MS = "tokenops.dlq.time_ms"
DLQ_VALUE_BYTES = "tokenops.dlq.value_bytes"
DLQ_BUNDLE = "tokenops.dlq.bundle"
DLQ_HEADERS = (DLQ_REASON, DLQ_FIELD, DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, DLQ_TIME_MS)

OTHER = "other"

# Problems of the record as a whole (see InvalidEventError) and of its envelope.
RECORD_FIELDS = (
    "record",
    "key",
    CONTENT_TYPE_HEADER,
    "batch",
    "columns",
    "events",
    "specversion",
    "type",
    "data",
    "datacontenttype",
    "signature",
    "bundle",
)
# Rules named instead of a field: an event time past now + the allowed skew, an event
# outside its signing key's scope, a JSON key twice in one object (schemas/decode.py).
RULES = (FUTURE, SCOPE_FIELD, "duplicate_key")

DEAD_LETTER_FIELDS = frozenset(UsageEvent.model_fields) | frozenset(RECORD_FIELDS + RULES)


def dead_letter_label(field: str | None) -> str:
    """The label value for a dead letter's `tokenops.dlq.field`: itself if known, else other."""
    return field if field in DEAD_LETTER_FIELDS else OTHER
