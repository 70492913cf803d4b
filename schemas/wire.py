"""The wire format of usage records on Kafka, and its encoders.

Three record formats, all keyed by the events' `tenant_id` (so a tenant's events stay
ordered in one partition) and told apart by the `content-type` header:

- one CloudEvent 1.0 in structured mode, `application/cloudevents+json`, whose `data`
  holds the GenAI fields (`encode_event`): what kcat, a Java or Go gateway send;
- a v1 batch envelope of up to `MAX_BATCH_EVENTS` CloudEvents of ONE tenant
  (`encode_batch`), `application/vnd.tokenops.usage-batch.v1+json`::

    {"type": "ai.tokenops.usage.batch", "version": 1, "tenant_id": "acme",
     "events": [<CloudEvent>, <CloudEvent>, ...]}

- a v2 columnar batch (`encode_columns`, what the SDK sends),
  `application/vnd.tokenops.usage-batch.v2+json`::

    {"type": "ai.tokenops.usage.batch", "version": 2, "tenant_id": "acme",
     "schema_version": 1,
     "columns": {"id": ["a1", "a2"], "source": ["//n/1", "//n/1"],
                 "time": ["2026-11-27T10:00:00.000Z", "2026-11-27T10:00:00.250Z"],
                 "model": [...], "provider": [...], "input_tokens": [...], ...}}

  Event i is the CloudEvent whose `id`, `source` and `time` are `columns[...][i]` and
  whose `data` holds `tenant_id`, `schema_version` and every other column's value at i.
  Columns may be left out: optional identifiers (then null), `operation` ("chat"), the
  cache and reasoning counts (0) and `attributes` ({}); `REQUIRED_COLUMNS` may not.
  Columns are 2.6x smaller than v1 on the wire and parse about 3x faster.

Decoding all three is `decode.py`'s.

One more form is the worker's own, never a producer's: a **bundle**
(`application/cloudevents-batch+json`, `encode_bundle`), the records a worker forwards
to one home partition (`streams/routing.py`) as ONE record, unkeyed. Its value is the
elements' original value bytes joined as a JSON array (a CloudEvents batch when each
element is a structured CloudEvent); its `tokenops.bundle` header holds, per element,
its original key, partition, offset, event clock, byte size and whether it carried the
CloudEvents content-type header, as columns::

    {"key": ["acme", "beta"], "partition": [0, 2], "offset": [17, 4],
     "clock_ms": [1764790000000, 1764790000012], "size": [412, 398], "typed": [1, 1]}

The sizes, not a JSON parse, split the value (`decode.bundle_elements`), so each element
reaches the worker at home as the bytes it was written with, judged as if alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import repeat
from operator import add, floordiv, mod
from typing import Any

import orjson

from tokenops.schemas.columns import EventColumns, build_event
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    EPOCH,
    ONE_MS,
    SCHEMA_VERSION,
    UsageEvent,
)
from tokenops.schemas.rules import IDENTITY, OPTIONAL_IDS, TOKEN_COLUMNS

CONTENT_TYPE_HEADER = "content-type"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/vnd.tokenops.usage-batch.v1+json"
COLUMNS_CONTENT_TYPE = "application/vnd.tokenops.usage-batch.v2+json"
EVENT_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())]
BATCH_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, BATCH_CONTENT_TYPE.encode())]
COLUMNS_HEADERS: list[tuple[str, bytes]] = [(CONTENT_TYPE_HEADER, COLUMNS_CONTENT_TYPE.encode())]
BUNDLE_CONTENT_TYPE = "application/cloudevents-batch+json"
BUNDLE_HEADER = "tokenops.bundle"
BUNDLE_COLUMNS = ("key", "partition", "offset", "clock_ms", "size", "typed")
SPECVERSION = "1.0"
EVENT_TYPE = "ai.tokenops.usage"
BATCH_TYPE = "ai.tokenops.usage.batch"
BATCH_VERSION = 1
COLUMNS_VERSION = 2
MAX_BATCH_EVENTS = 10_000
MAX_RECORD_BYTES = 1_000_000  # Kafka's default message.max.bytes, less headroom
REQUIRED_COLUMNS = ("id", "source", "time", "model", "provider", "input_tokens", "output_tokens")
COLUMN_NAMES = frozenset(
    (*REQUIRED_COLUMNS, "operation", *TOKEN_COLUMNS, *OPTIONAL_IDS, "attributes")
)

_DATA_KEYS = tuple(k for k in UsageEvent.model_fields if k not in IDENTITY | {"attributes"})
_second_texts: dict[int, str] = {}  # this module's own memo of formatted seconds
_MS_Z = tuple(f".{ms:03d}Z" for ms in range(1000))


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


def encode_bundle(
    keys: list[str],
    values: list[bytes],
    typed: list[int],
    positions: tuple[list[int], list[int]],
    clocks_ms: list[int],
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of a bundle of records (see above): `keys` their Kafka keys,
    `values` their value bytes, `typed[i]` 1 if record i carried exactly the CloudEvents
    content-type header (0: no header), `positions` their (partitions, offsets),
    `clocks_ms` their event clocks. No element is decoded."""
    meta = dict(
        zip(
            BUNDLE_COLUMNS,
            (keys, *positions, clocks_ms, list(map(len, values)), typed),
            strict=True,
        )
    )
    headers = [(CONTENT_TYPE_HEADER, _BUNDLE_TYPE), (BUNDLE_HEADER, orjson.dumps(meta))]
    return b"".join((b"[", b",".join(values), b"]")), headers


_BUNDLE_TYPE = BUNDLE_CONTENT_TYPE.encode()


def format_time(moment: datetime) -> str:
    """A UTC datetime as the canonical `2026-01-31T12:00:00.000Z`."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def encode_columns(columns: EventColumns) -> bytes:
    """The v2 batch record of already validated columns (from `decode_columns`, or
    `EventColumns.from_events`); columns holding only their default are left out."""
    cols: dict[str, Any] = {
        "id": columns.id,
        "source": columns.source,
        "time": format_times(columns.time_ms),
        "model": columns.model,
        "provider": columns.provider,
    }
    if columns.operation.count("chat") != len(columns.operation):
        cols["operation"] = columns.operation
    for name, values in zip(TOKEN_COLUMNS, columns.tokens(), strict=True):
        if name in REQUIRED_COLUMNS or any(values):
            cols[name] = values
    for name in OPTIONAL_IDS:
        values = getattr(columns, name)
        if values.count(None) != len(values):
            cols[name] = values
    if columns.attributes is not None and any(columns.attributes):
        cols["attributes"] = columns.attributes
    return orjson.dumps(
        {
            "type": BATCH_TYPE,
            "version": COLUMNS_VERSION,
            "tenant_id": columns.tenant_id,
            "schema_version": SCHEMA_VERSION,
            "columns": cols,
        }
    )


def format_ms(ms: int) -> str:
    """Epoch milliseconds as the canonical `2026-01-31T12:00:00.000Z`."""
    return format_times([ms])[0]


def format_times(millis: list[int]) -> list[str]:
    """`format_ms` of a column, in C-level passes: a record's few distinct seconds are
    formatted once each (and cached), then joined with a precomputed `.mmmZ` per event.
    The producer encodes every event it sends, so this is on its hot path."""
    n = len(millis)
    seconds = list(map(floordiv, millis, repeat(1000, n)))
    # A local dict of this record's seconds: another thread clearing the shared cache
    # meanwhile cannot take a text away.
    texts = {second: _second_text(second) for second in set(seconds)}
    return list(
        map(
            add,
            map(texts.__getitem__, seconds),
            map(_MS_Z.__getitem__, map(mod, millis, repeat(1000, n))),
        )
    )


def _second_text(second: int) -> str:
    """The `YYYY-MM-DDTHH:MM:SS` of an epoch second, cached."""
    text = _second_texts.get(second)
    if text is None:
        if len(_second_texts) >= 65_536:
            _second_texts.clear()
        text = _second_texts[second] = (EPOCH + ONE_MS * (second * 1000)).isoformat()[:19]
    return text
