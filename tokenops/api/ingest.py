"""POST /v1/events and POST /v1/traces: decode, check the tenant, answer once durable.

2xx means every event of the request is acknowledged by Kafka (`acks=all`) or fsynced
in the producer spool. 400 names each bad event and takes none (all or none); 403 is
an event of a tenant the key may not write (none taken); 413 a body above
`max_body_bytes`; 503 with `Retry-After` a full producer queue, an unwritable spool or a
broker that did not acknowledge within `durable_timeout_s` (retry with the same ids:
they are counted once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from google.protobuf.message import DecodeError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from tokenops.api.auth import authenticate, headers_of, require_tenant
from tokenops.api.errors import ApiError
from tokenops.api.keys import ApiKey
from tokenops.api.otlp_wire import parse_traces, traces_response
from tokenops.api.state import ApiState
from tokenops.producers import ProducerBackpressureError, ProducerError
from tokenops.producers.http import (
    IngestRejectedError,
    NotDurableError,
    decode_request,
    spans_to_events,
)
from tokenops.schemas import EventColumns

logger = logging.getLogger(__name__)


async def read_body(receive: Receive, limit: int, headers: Mapping[str, str]) -> bytes | None:
    """The body from ASGI messages (None if the client disconnected first); 413 as soon
    as it is known to exceed `limit` bytes, 415 when compressed."""
    check_body_headers(headers, limit)
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise ApiError(413, f"body exceeds {limit} bytes")
    if not message.get("more_body", False):  # the usual case: one message
        return body
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def check_body_headers(headers: Mapping[str, str], limit: int) -> None:
    """413 for a declared length above `limit`, 415 for a compressed body: before reading."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body exceeds {limit} bytes")
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise ApiError(415, "content-encoding is not supported; send the body uncompressed")


async def send_durably(
    state: ApiState, parts: Sequence[EventColumns], encoded: bytes | None = None
) -> int:
    retry = {"Retry-After": str(state.settings.retry_after_s)}
    try:
        return await state.sender.send(parts, encoded)
    except ProducerBackpressureError:
        state.metrics.unavailable.labels("queue_full").inc()
        raise ApiError(503, "the ingest queue is full; retry later", headers=retry) from None
    except NotDurableError:
        state.metrics.unavailable.labels("not_durable").inc()
        message = "not confirmed durable in time; retry with the same ids (counted once)"
        raise ApiError(503, message, headers=retry) from None
    except ProducerError as exc:  # spool unwritable, producer closed: the log has it
        logger.error("ingest unavailable error=%s", exc)
        state.metrics.unavailable.labels("producer").inc()
        raise ApiError(503, "ingest is unavailable; retry later", headers=retry) from None


async def accept_events(
    state: ApiState, key: ApiKey, headers: Mapping[str, str], body: bytes
) -> int:
    """POST /v1/events once the caller's `key` is known and the body read: decode, check
    the tenants, wait until durable; the events accepted (ApiError otherwise)."""
    try:
        parts, encoded = decode_request(body, headers.get("content-type", ""), headers)
    except IngestRejectedError as rejected:
        state.metrics.rejected.inc(len(rejected.problems))
        problems = [p.to_json() for p in rejected.problems]
        detail = {"accepted": 0, "all_or_none": True, "problems": problems}
        raise ApiError(400, rejected.message, detail=detail) from None
    for part in parts:
        require_tenant(key, part.tenant_id)
    accepted = await send_durably(state, parts, encoded)
    state.metrics.accepted_cloudevents.inc(accepted)
    return accepted


async def post_traces(request: Request) -> Response:
    state: ApiState = request.app.state.api
    headers = headers_of(request.scope)
    key = authenticate(headers, state.keys)
    body = await read_body(request.receive, state.settings.max_body_bytes, headers)
    if body is None:  # the client left: nobody to answer, nothing taken
        raise ApiError(400, "the request's body did not arrive")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        export = parse_traces(body, content_type)
    except (DecodeError, ValueError) as exc:
        raise ApiError(400, f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    attribute = state.settings.otlp_tenant_attribute

    def tenant_of(resource: dict[str, object]) -> str | None:
        named = resource.get(attribute)
        if key.tenant is not None:
            return key.tenant if named in (None, key.tenant) else None
        return named if isinstance(named, str) else None

    result = spans_to_events(export, tenant_of)
    state.metrics.ignored_spans.inc(result.ignored_spans)
    state.metrics.rejected.inc(result.rejected_spans)
    if result.parts:
        await send_durably(state, result.parts)
        state.metrics.accepted_otlp.inc(result.events)
    message = "; ".join(result.errors[:20])
    return traces_response(content_type, result.rejected_spans, message)
