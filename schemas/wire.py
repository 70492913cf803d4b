"""The wire constants of usage records: content types, CloudEvents attributes, limits."""

from __future__ import annotations

CONTENT_TYPE_HEADER = "content-type"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/vnd.tokenops.usage-batch.v1+json"
EVENT_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]
BATCH_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE.encode())]
SPECVERSION = "1.0"
EVENT_TYPE = "ai.tokenops.usage"
BATCH_TYPE = "ai.tokenops.usage.batch"
BATCH_VERSION = 1
MAX_BATCH_EVENTS = 10_000
MAX_RECORD_BYTES = 1_000_000  # Kafka's default message.max.bytes, less headroom
# The columnar batch (`column_batch.py`): one list per field, no per-event objects.
COLUMNS_CONTENT_TYPE = "application/vnd.tokenops.usage-batch.v2+json"
COLUMNS_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, COLUMNS_CONTENT_TYPE.encode())]
COLUMNS_VERSION = 2
