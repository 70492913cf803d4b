"""GET /v1/usage and GET /v1/invoices/{tenant}: billing reads through the ClickHouse
reader (`sinks/clickhouse/reader.py`), run in a worker thread so the event loop keeps
serving ingest while ClickHouse answers.

How final the figures are comes from the billing store (`sinks/clickhouse/finality.py`,
docs/bi.md): `as_of` (the lowest partition watermark), `open_windows`, and `final` (an
invoice: its month closed and froze; usage: `as_of` passed the range). `open` is
`not final`.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tokenops.api.auth import authenticate, require_tenant
from tokenops.api.errors import ApiError
from tokenops.api.state import ApiState
from tokenops.errors import TokenopsError
from tokenops.sinks.clickhouse.wire import invoice_to_json, parse_time, usage_to_json

_BY = ("model", "day", "hour", "region")  # region: from the window totals (docs/bi.md)


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value, default=_default), media_type="application/json")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # Decimal: as text, never float


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise ApiError(400, f"query parameter {name!r} is required")
    return value


def _reader(state: ApiState) -> Any:
    if state.reader is None:
        raise ApiError(404, "billing queries are not configured on this server")
    return state.reader


async def get_usage(request: Request) -> Response:
    state: ApiState = request.app.state.api
    key = authenticate(request.headers, state.keys)
    tenant = _param(request, "tenant")
    require_tenant(key, tenant)
    by = request.query_params.get("by", "model")
    if by not in _BY:
        raise ApiError(400, f"by={by!r}: must be one of {', '.join(_BY)}")
    try:
        start, end = parse_time(_param(request, "from")), parse_time(_param(request, "to"))
    except ValueError:
        raise ApiError(400, "from and to must be ISO dates or times (UTC)") from None
    if end <= start:
        raise ApiError(400, "to must be after from")
    reader = _reader(state)
    result = await _read(lambda: reader.usage(tenant, start, end, by))
    body = usage_to_json(result)
    return _json({"tenant": tenant, "by": by, "open": not result.finality.final, **body})


async def get_invoice(request: Request) -> Response:
    state: ApiState = request.app.state.api
    key = authenticate(request.headers, state.keys)
    tenant = request.path_params["tenant"]
    require_tenant(key, tenant)
    month_text = _param(request, "month")
    try:
        month = date.fromisoformat(month_text + "-01")
    except ValueError:
        raise ApiError(400, f"month={month_text!r}: expected YYYY-MM") from None
    reader = _reader(state)
    bill = await _read(lambda: reader.invoice(tenant, month))
    return _json(invoice_to_json(bill))


async def _read(query: Any) -> Any:
    try:
        return await asyncio.to_thread(query)
    except TokenopsError as exc:  # store missing or busy without an endpoint: say so
        raise ApiError(503, f"billing store unavailable: {exc.message}") from None
