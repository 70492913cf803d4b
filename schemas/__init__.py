"""The data contracts of tokenops: usage events in, window totals out.

On the event path (decoding, validating, encoding and signing a usage event), six
modules, with the contract's rules written once (`rules.py`):

- `event.py`: the public pydantic model `UsageEvent`, the field patterns, limits and
  time rules; the source of the JSON Schemas. No hot path builds it.
- `rules.py`: the one rule set, applied per event (`check_fields`, which names the
  broken field; also the SDK's `send` check, `quick_row`) and per column
  (`checked_columns`, the fast check of every decoder and of `send_many`).
- `columns.py`: `EventColumns`, a record's events as columns (what the worker, the
  sinks and the SDK's batches work on), and fields made columns through `rules.py`.
- `decode.py`: the one decoder: single CloudEvent, v1 envelope and v2 columns into
  `EventColumns` (`decode_columns`, `decode_many` for a fetch, `decode_record`).
- `wire.py`: the wire format's constants (content types, limits) and its encoders.
- `signing.py`: record signatures over the events as columns, and each key's scope.

Off the event path:

- `errors.py`: `InvalidEventError`, the one error a broken rule raises (every module
  above raises it, so it sits below them all).
- `aggregates.py`: the worker's output record, `WindowTotals`, on its compacted topic.
- `quota.py`: quota definitions and quota alerts, their own topics' contracts.
- `jsonschema.py`: the generator of the checked-in JSON Schemas (`python -m
  tokenops.schemas.jsonschema`), run by hand when the contract changes.
"""

from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals, window_key
from tokenops.schemas.columns import EventColumns, build_event
from tokenops.schemas.decode import decode_columns, decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import MAX_EVENT_BYTES, SCHEMA_VERSION, UsageEvent
from tokenops.schemas.wire import (
    BATCH_CONTENT_TYPE,
    BATCH_HEADERS,
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    COLUMNS_HEADERS,
    CONTENT_TYPE_HEADER,
    EVENT_HEADERS,
    MAX_BATCH_EVENTS,
    MAX_RECORD_BYTES,
    encode_batch,
    encode_batch_encoded,
    encode_columns,
    encode_event,
    encode_fields,
    kafka_key,
)

__all__ = [
    "BATCH_CONTENT_TYPE",
    "BATCH_HEADERS",
    "CLOUDEVENTS_CONTENT_TYPE",
    "COLUMNS_CONTENT_TYPE",
    "COLUMNS_HEADERS",
    "CONTENT_TYPE_HEADER",
    "EVENT_HEADERS",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "TOKEN_TYPES",
    "EventColumns",
    "InvalidEventError",
    "UsageEvent",
    "WindowTotals",
    "build_event",
    "decode_columns",
    "decode_record",
    "encode_batch",
    "encode_batch_encoded",
    "encode_columns",
    "encode_event",
    "encode_fields",
    "kafka_key",
    "window_key",
]
