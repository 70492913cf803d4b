"""The `field` label of dead-letter metrics: the `tokenops.dlq.field` header, bounded.

The header names the field or rule a record broke (`InvalidEventError.field`). Most
values are fixed names, but a few echo a name the producer chose (an unknown event
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
)
# Rules named instead of a field: an event time past now + the allowed skew, an event
# outside its signing key's scope, a JSON key twice in one object (schemas/decode.py).
RULES = (FUTURE, SCOPE_FIELD, "duplicate_key")

DEAD_LETTER_FIELDS = frozenset(UsageEvent.model_fields) | frozenset(RECORD_FIELDS + RULES)


def dead_letter_label(field: str | None) -> str:
    """The label value for a dead letter's `tokenops.dlq.field`: itself if known, else other."""
    return field if field in DEAD_LETTER_FIELDS else OTHER
