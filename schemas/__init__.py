"""The data contracts of tokenops: usage events in, window totals out."""

from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals, window_key
from tokenops.schemas.codec import (
    BATCH_CONTENT_TYPE,
    BATCH_HEADERS,
    CLOUDEVENTS_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    EVENT_HEADERS,
    MAX_BATCH_EVENTS,
    MAX_RECORD_BYTES,
    decode_record,
    encode_batch,
    encode_batch_encoded,
    encode_event,
    encode_fields,
    kafka_key,
)
from tokenops.schemas.column_batch import encode_columns
from tokenops.schemas.columns import EventColumns
from tokenops.schemas.decode import decode_columns
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import MAX_EVENT_BYTES, SCHEMA_VERSION, UsageEvent
from tokenops.schemas.validate import build_event
from tokenops.schemas.wire import COLUMNS_CONTENT_TYPE, COLUMNS_HEADERS

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
