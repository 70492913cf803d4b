"""GET /v1/usage and GET /v1/invoices/{tenant}: billing reads through the ClickHouse
reader (`sinks/clickhouse/reader.py`), run in a worker thread so the event loop keeps
serving ingest while ClickHouse answers.

`as_of` is the server's time; a range ending less than `settle_s` before it may still
change (`open: true`: late events and window corrections), and an invoice is `final`
only once its month ended more than `settle_s` ago.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tokenops.api.auth import authenticate, require_tenant
from tokenops.api.errors import ApiError
from tokenops.api.state import ApiState
from tokenops.errors import TokenopsError
from tokenops.sinks.clickhouse.wire import invoice_to_json, parse_time

_BY = ("model", "day", "hour")


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
    key = authenticate(request, state.keys)
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
    rows = await _read(lambda: reader.usage(tenant, start, end, by))
    now = datetime.now(UTC)
    settled = end <= now - timedelta(seconds=state.settings.settle_s)
    return _json({"tenant": tenant, "by": by, "as_of": now, "open": not settled, "rows": rows})


async def get_invoice(request: Request) -> Response:
    state: ApiState = request.app.state.api
    key = authenticate(request, state.keys)
    tenant = request.path_params["tenant"]
    require_tenant(key, tenant)
    month_text = _param(request, "month")
    try:
        month = date.fromisoformat(month_text + "-01")
    except ValueError:
        raise ApiError(400, f"month={month_text!r}: expected YYYY-MM") from None
    reader = _reader(state)
    bill = await _read(lambda: reader.invoice(tenant, month))
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    final = end <= now - timedelta(seconds=state.settings.settle_s)
    return _json({**invoice_to_json(bill), "as_of": now, "final": final})


async def _read(query: Any) -> Any:
    try:
        return await asyncio.to_thread(query)
    except TokenopsError as exc:  # store missing or busy without an endpoint: say so
        raise ApiError(503, f"billing store unavailable: {exc.message}") from None
