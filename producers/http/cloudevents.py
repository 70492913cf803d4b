"""CloudEvents over HTTP (structured, batch and binary mode) and tokenops' own batch
records, turned into validated columns by `decode_columns`, the worker's own decoder.

A request is all or none: if any event is invalid, none is taken and every bad event
is named by its index and field. A CloudEvents batch is parsed once and its events are
checked together by the decoder's column check (`decode_cloudevents_array`, the rules
of a batch record, duplicate JSON keys included), then split per tenant. Only when that
check fails (an invalid event, or attributes and extensions that need the careful path)
is a batch of one tenant that fits one Kafka record decoded from the request's own
bytes wrapped in the v1 batch envelope, and other batches regrouped per tenant and
re-encoded, to name every bad event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tokenops.errors import TokenopsError
from tokenops.schemas import (
    BATCH_CONTENT_TYPE,
    BATCH_HEADERS,
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    EVENT_HEADERS,
    MAX_BATCH_EVENTS,
    MAX_RECORD_BYTES,
    EventColumns,
    InvalidEventError,
    decode_columns,
)
from tokenops.schemas.decode import decode_cloudevents_array

CLOUDEVENTS_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_BATCH_PREFIX = b'{"type":"ai.tokenops.usage.batch","version":1,"tenant_id":'


@dataclass(frozen=True)
class EventProblem:
    """Why one event (at `index` of the request's batch; None for a single event or the
    request as a whole) was refused, naming the broken `field`."""

    index: int | None
    field: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class IngestRejectedError(TokenopsError):
    """The request's events break the contract; none of them was taken."""

    def __init__(self, problems: Sequence[EventProblem]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} invalid event(s); none was taken")


def _problem(exc: InvalidEventError, index: int | None = None) -> EventProblem:
    return EventProblem(exc.index if index is None else index, exc.field, exc.reason)


def decode_body(body: bytes, content_type: str, headers: Mapping[str, str]) -> list[EventColumns]:
    """The columns of one request body (one part per tenant and record), or
    IngestRejectedError naming every bad event. `headers` are the request's, lower-cased
    (binary mode reads the `ce-*` ones)."""
    return decode_request(body, content_type, headers)[0]


def decode_request(
    body: bytes, content_type: str, headers: Mapping[str, str]
) -> tuple[list[EventColumns], bytes | None]:
    """`decode_body`, and for a single CloudEvent (structured or binary mode) the bytes
    the decoder accepted: a record of that event alone can carry them as they are
    (`UsageProducer.send_columns(..., encoded=)`) instead of encoding them again."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == CLOUDEVENTS_BATCH_CONTENT_TYPE:
        return decode_batch(body), None
    if kind == CLOUDEVENTS_CONTENT_TYPE:
        return [_decode_one(body, EVENT_HEADERS)], body
    if kind in (BATCH_CONTENT_TYPE, COLUMNS_CONTENT_TYPE):
        return [_decode_one(body, [("content-type", kind.encode())])], None
    if "ce-specversion" in headers:
        event = binary_event(body, kind, headers)
        return [_decode_one(event, EVENT_HEADERS)], event
    raise IngestRejectedError(
        [EventProblem(None, "content-type", f"{kind or 'none'} is not a usage event type")]
    )


def _decode_one(value: bytes, headers: list[tuple[str, bytes]]) -> EventColumns:
    try:
        return decode_columns(value, headers)
    except InvalidEventError as exc:
        raise IngestRejectedError([_problem(exc)]) from None


def binary_event(body: bytes, kind: str, headers: Mapping[str, str]) -> bytes:
    """Binary mode: the `ce-*` headers are the attributes and the body is `data`; the
    structured event is built around the body's own bytes, so the decoder sees them."""
    attributes = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    if kind:
        attributes["datacontenttype"] = kind
    head = orjson.dumps(attributes)[:-1]
    return head + (b',"data":' if attributes else b'"data":') + (body or b"null") + b"}"


def decode_batch(body: bytes) -> list[EventColumns]:
    """A CloudEvents batch (a JSON array of structured events)."""
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise IngestRejectedError([EventProblem(None, "record", "not UTF-8 JSON")]) from None
    if items.__class__ is not list or not 0 < len(items) <= MAX_BATCH_EVENTS:
        reason = f"a batch is a JSON array of 1..{MAX_BATCH_EVENTS} CloudEvents"
        raise IngestRejectedError([EventProblem(None, "events", reason)])
    try:  # the common case: parsed once, every event checked at once, split per tenant
        quick = decode_cloudevents_array(body, items)
    except InvalidEventError as exc:  # a key twice in one object
        raise IngestRejectedError([_problem(exc)]) from None
    if quick is not None:
        return quick
    tenants = [_tenant(item) for item in items]
    if len(set(tenants)) == 1 and tenants[0] is not None and len(body) < MAX_RECORD_BYTES - 200:
        wrapped = _BATCH_PREFIX + orjson.dumps(tenants[0]) + b',"events":' + body + b"}"
        try:
            return [decode_columns(wrapped, BATCH_HEADERS)]
        except InvalidEventError:
            pass  # name every bad event below
    return decode_events(items, fits_one_record=len(body) < MAX_RECORD_BYTES - 200)


def decode_events(items: Sequence[Any], *, fits_one_record: bool = False) -> list[EventColumns]:
    """Decoded CloudEvent objects, regrouped per tenant into records; all or none.
    `fits_one_record`: the caller knows they encode below the record size limit, so
    no tenant's events need splitting (and measuring)."""
    groups: dict[str, list[int]] = {}
    problems: list[EventProblem] = []
    for index, item in enumerate(items):
        tenant = _tenant(item)
        if tenant is None:
            problems += _each([index], items)
        else:
            groups.setdefault(tenant, []).append(index)
    parts: list[EventColumns] = []
    for tenant, indexes in groups.items():
        for chunk in [indexes] if fits_one_record else _chunks(indexes, items):
            envelope = {"type": "ai.tokenops.usage.batch", "version": 1, "tenant_id": tenant}
            value = orjson.dumps({**envelope, "events": [items[i] for i in chunk]})
            try:
                parts.append(decode_columns(value, BATCH_HEADERS))
            except InvalidEventError:
                problems += _each(chunk, items)
    if problems:
        raise IngestRejectedError(sorted(problems, key=lambda p: (p.index or 0, p.field)))
    return parts


def _each(indexes: Sequence[int], items: Sequence[Any]) -> list[EventProblem]:
    """Every bad event among `indexes`, each decoded alone to name it."""
    problems = []
    for index in indexes:
        try:
            decode_columns(orjson.dumps(items[index]), EVENT_HEADERS)
        except InvalidEventError as exc:
            problems.append(_problem(exc, index))
        except TypeError:  # orjson cannot write it back (e.g. an integer beyond 64 bits)
            problems.append(EventProblem(index, "record", "not representable JSON"))
    return problems


def _chunks(indexes: list[int], items: Sequence[Any]) -> list[list[int]]:
    """Split one tenant's events so each record stays under the record size limit."""
    chunks: list[list[int]] = [[]]
    size = 0
    for index in indexes:
        length = len(orjson.dumps(items[index])) + 1
        if chunks[-1] and (size + length > MAX_RECORD_BYTES - 200 or len(chunks[-1]) >= 5000):
            chunks.append([])
            size = 0
        chunks[-1].append(index)
        size += length
    return chunks


def _tenant(item: Any) -> str | None:
    data = item.get("data") if item.__class__ is dict else None
    tenant = data.get("tenant_id") if data.__class__ is dict else None
    return tenant if tenant.__class__ is str else None
