"""The wire format of usage events on Kafka: CloudEvents 1.0 structured mode, or a batch.

A single event is one record: header `content-type: application/cloudevents+json`, value
a CloudEvent whose `data` holds the GenAI fields (`encode_event`). A batch record packs
up to `MAX_BATCH_EVENTS` events of ONE tenant (`encode_batch`), header `content-type:
application/vnd.tokenops.usage-batch.v1+json`, value::

    {"type": "ai.tokenops.usage.batch", "version": 1, "tenant_id": "acme",
     "events": [<CloudEvent>, <CloudEvent>, ...]}

so every event inside stays a readable CloudEvent. Either way the Kafka key is the
tenant_id (`kafka_key`), so a tenant's events stay ordered in one partition.
`decode_record` reads both (and sniffs the body when headers are missing); any bad input
raises `InvalidEventError`, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from tokenops.schemas.decode import decode_record, envelope_fields, from_cloudevent
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    MIN_EVENT_TIME,
    UsageEvent,
    to_epoch_ms,
)
from tokenops.schemas.validate import build_event
from tokenops.schemas.wire import (
    BATCH_CONTENT_TYPE,
    BATCH_HEADERS,
    BATCH_TYPE,
    BATCH_VERSION,
    CLOUDEVENTS_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    EVENT_HEADERS,
    EVENT_TYPE,
    MAX_BATCH_EVENTS,
    MAX_RECORD_BYTES,
    SPECVERSION,
)

__all__ = [  # the public wire API; decoding lives in decode.py, constants in wire.py
    "BATCH_CONTENT_TYPE",
    "BATCH_HEADERS",
    "BATCH_TYPE",
    "BATCH_VERSION",
    "CLOUDEVENTS_CONTENT_TYPE",
    "CONTENT_TYPE_HEADER",
    "EVENT_HEADERS",
    "EVENT_TYPE",
    "MAX_BATCH_EVENTS",
    "MAX_RECORD_BYTES",
    "SPECVERSION",
    "decode_record",
    "encode_batch",
    "encode_batch_encoded",
    "encode_event",
    "encode_fields",
    "envelope_fields",
    "format_time",
    "from_cloudevent",
    "kafka_key",
    "to_cloudevent",
]

_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_IDENTITY = frozenset({"id", "source", "time"})
_DATA_KEYS = tuple(k for k in UsageEvent.model_fields if k not in _IDENTITY | {"attributes"})


def kafka_key(event: UsageEvent) -> bytes:
    return event.tenant_id.encode()


def to_cloudevent(event: UsageEvent) -> dict[str, Any]:
    """The CloudEvent (a JSON-ready dict) of one event; optional fields left out when None."""
    d = event.__dict__
    data = {k: d[k] for k in _DATA_KEYS if d[k] is not None}
    if d["attributes"]:
        data["attributes"] = d["attributes"]
    return {
        "specversion": SPECVERSION,
        "type": EVENT_TYPE,
        "source": d["source"],
        "id": d["id"],
        "time": format_time(d["time"]),
        "data": data,
    }


def encode_event(event: UsageEvent) -> bytes:
    return orjson.dumps(to_cloudevent(event))


def encode_batch(events: Sequence[UsageEvent]) -> bytes:
    """One batch record of events that all belong to the same tenant."""
    if not 0 < len(events) <= MAX_BATCH_EVENTS:
        raise InvalidEventError("events", len(events), f"a batch holds 1..{MAX_BATCH_EVENTS}")
    tenant = events[0].tenant_id
    for event in events:
        if event.tenant_id != tenant:
            raise InvalidEventError("tenant_id", event.tenant_id, f"batch is for {tenant!r}")
    return encode_batch_encoded(tenant, [encode_event(e) for e in events])


def encode_batch_encoded(tenant_id: str, encoded: Sequence[bytes]) -> bytes:
    """The batch record of already encoded events (`encode_event`, `encode_fields`) of
    tenant `tenant_id`; the caller guarantees they are valid and of that tenant."""
    head = b'{"type":"%s","version":%d,"tenant_id":' % (BATCH_TYPE.encode(), BATCH_VERSION)
    return b"".join((head, orjson.dumps(tenant_id), b',"events":[', b",".join(encoded), b"]}"))


def encode_fields(
    fields: Mapping[str, Any], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> tuple[str, bytes]:
    """(tenant_id, CloudEvent bytes) of the event `UsageEvent(**fields)` would be.

    Same rules and errors as `build_event`; optional fields left out when None.
    """
    event = build_event(fields, max_future_skew_s=max_future_skew_s)
    return event.tenant_id, encode_event(event)


def format_time(moment: datetime) -> str:
    """A UTC datetime as the canonical `2026-01-31T12:00:00.000Z`."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"
