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

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from tokenops.schemas.columnar import quick_batch
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    MAX_EVENT_BYTES,
    MIN_EVENT_TIME,
    SCHEMA_VERSION,
    UsageEvent,
    to_epoch_ms,
)
from tokenops.schemas.fastpath import MISSING, quick_event, quick_fields, validate_fields

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
_OPTIONAL_ATTRIBUTES = frozenset({"datacontenttype", "dataschema", "subject"})
_EXTENSION = re.compile(r"[a-z0-9]{1,20}").fullmatch
_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_IDENTITY = frozenset({"id", "source", "time"})
_CORE = frozenset({"specversion", "type", "source", "id", "time", "data"})
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

    Same rules and errors as `build_event`, without building the model: the SDK's hot
    path. Optional fields may travel as JSON null; decoding gives the same event.
    """
    data = dict(fields)
    data.setdefault("schema_version", SCHEMA_VERSION)
    event_id, source = data.pop("id", MISSING), data.pop("source", MISSING)
    when = data.pop("time", MISSING)
    earliest, latest = _EARLIEST_MS, int(time.time() * 1000) + int(max_future_skew_s * 1000)
    try:
        out = quick_fields(data, event_id, source, when, earliest, latest)
    except (TypeError, AttributeError, ValueError):  # an unhashable value: not quick
        out = None
    if out is None:
        event = validate_fields(data, event_id, source, when, earliest, latest)
        return event.tenant_id, encode_event(event)
    stamp = when if when.__class__ is str else format_time(out["time"])
    ce = {
        "specversion": SPECVERSION,
        "type": EVENT_TYPE,
        "source": source,
        "id": event_id,
        "time": stamp,
        "data": data,
    }
    return out["tenant_id"], orjson.dumps(ce)


def format_time(moment: datetime) -> str:
    """A UTC datetime as the canonical `2026-01-31T12:00:00.000Z`."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def _content_type(headers: list[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name.lower() == CONTENT_TYPE_HEADER:
            try:
                return value.split(b";")[0].strip().lower().decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                raise InvalidEventError(CONTENT_TYPE_HEADER, value, "not ASCII") from None
    return None


def decode_record(
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
    *,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    now_ms: int | None = None,
) -> list[UsageEvent]:
    """The events of one Kafka record (one, or a whole batch); raises InvalidEventError."""
    if value.__class__ is not bytes:
        raise InvalidEventError("record", value, "record value must be bytes")
    assert value is not None
    if len(value) > MAX_RECORD_BYTES:
        raise InvalidEventError("record", value[:64], f"record exceeds {MAX_RECORD_BYTES} bytes")
    content_type = _content_type(headers)
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError("record", value[:64], f"not UTF-8 JSON: {exc}") from None
    if body.__class__ is not dict:
        raise InvalidEventError("record", value[:64], "must be a JSON object")
    if content_type is None:
        content_type = BATCH_CONTENT_TYPE if "events" in body else CLOUDEVENTS_CONTENT_TYPE
    latest_ms = (int(time.time() * 1000) if now_ms is None else now_ms) + int(
        max_future_skew_s * 1000
    )
    if content_type == CLOUDEVENTS_CONTENT_TYPE:
        if len(value) > MAX_EVENT_BYTES:
            raise InvalidEventError("record", value[:64], f"event exceeds {MAX_EVENT_BYTES} bytes")
        return [from_cloudevent(body, latest_ms)]
    if content_type != BATCH_CONTENT_TYPE:
        raise InvalidEventError(CONTENT_TYPE_HEADER, content_type, "unknown content type")
    return _batch(body, latest_ms)


def _batch(body: dict[str, Any], latest_ms: int) -> list[UsageEvent]:
    if body.get("type") != BATCH_TYPE or body.keys() != {"type", "version", "tenant_id", "events"}:
        raise InvalidEventError("batch", sorted(body), f"a {BATCH_TYPE} envelope is expected")
    version = body["version"]
    if version.__class__ is not int or version != BATCH_VERSION:
        raise InvalidEventError("batch", version, "unknown batch version")
    items = body["events"]
    if items.__class__ is not list or not 0 < len(items) <= MAX_BATCH_EVENTS:
        raise InvalidEventError("events", items, f"must be a list of 1..{MAX_BATCH_EVENTS}")
    tenant = body["tenant_id"]
    quick = quick_batch(items, tenant, EVENT_TYPE, _EARLIEST_MS, latest_ms)
    if quick is not None:
        return quick
    events = []
    for index, item in enumerate(items):
        try:
            event = from_cloudevent(item, latest_ms)
        except InvalidEventError as exc:
            raise exc.at(index) from None
        if event.tenant_id != tenant:
            raise InvalidEventError(
                "tenant_id", event.tenant_id, "differs from the batch's", index=index
            )
        events.append(event)
    return events


def envelope_fields(ce: Any) -> tuple[dict[str, Any], Any, Any, Any]:
    """(data, id, source, time) of a CloudEvent, after the envelope-level checks."""
    if ce.__class__ is not dict:
        raise InvalidEventError("record", ce, "a CloudEvent must be a JSON object")
    if ce.get("specversion") != SPECVERSION:
        raise InvalidEventError("specversion", ce.get("specversion"), "must be '1.0'")
    if ce.get("type") != EVENT_TYPE:
        raise InvalidEventError("type", ce.get("type"), f"must be {EVENT_TYPE!r}")
    data = ce.get("data")
    if data.__class__ is not dict:
        raise InvalidEventError("data", data, "must be a JSON object")
    if "schema_version" not in data:
        raise InvalidEventError("schema_version", None, "is required in data")
    if ce.keys() != _CORE:
        content = ce.get("datacontenttype")
        if content is not None and content != "application/json":
            raise InvalidEventError("datacontenttype", content, "must be application/json")
        for key in ce:
            if key not in _OPTIONAL_ATTRIBUTES and key not in _CORE and not _EXTENSION(key):
                raise InvalidEventError(key, ce[key], "is not a CloudEvents attribute")
    for key in _IDENTITY:
        if key in data:
            raise InvalidEventError(key, data[key], "belongs in the CloudEvent, not in data")
    return data, ce.get("id", MISSING), ce.get("source", MISSING), ce.get("time", MISSING)


def from_cloudevent(ce: Any, latest_ms: int) -> UsageEvent:
    """The event of one decoded CloudEvent, times up to `latest_ms`; or InvalidEventError."""
    try:
        if (
            ce.keys() == _CORE
            and ce["specversion"] == SPECVERSION
            and ce["type"] == EVENT_TYPE
            and ce["data"].__class__ is dict
        ):
            event = quick_event(
                ce["data"], ce["id"], ce["source"], ce["time"], _EARLIEST_MS, latest_ms
            )
            if event is not None:
                return event
    except (TypeError, AttributeError, ValueError):  # not the common shape: go carefully
        pass
    data, event_id, source, when = envelope_fields(ce)
    return validate_fields(data, event_id, source, when, _EARLIEST_MS, latest_ms)
