"""The billing reads: GET /v1/usage and /v1/invoices/{tenant} (tokenops api and the
ClickHouse sink), and GET /v1/reconcile and /v1/sql (the sink's listener only, admin).

They read through the ClickHouse reader (`sinks/clickhouse/reader.py`) in a worker
thread, so the event loop keeps serving while ClickHouse answers. In `tokenops api`
the reader opens the store (or asks the sink that holds it); in the sink it is the
sink's own open client (tokenops/api/sink_app.py).

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

from tokenops.api.auth import authenticate, require_admin, require_tenant
from tokenops.api.errors import ApiError
from tokenops.api.state import QueryState
from tokenops.errors import TokenopsError
from tokenops.sinks.clickhouse.bi_sql import PARAM_PREFIX
from tokenops.sinks.clickhouse.errors import ClickHouseError
from tokenops.sinks.clickhouse.reader import BillingReader
from tokenops.sinks.clickhouse.wire import (
    differences_to_json,
    invoice_to_json,
    parse_time,
    usage_to_json,
)

_BY = ("model", "day", "hour", "month", "region")  # region: from the window totals (docs/bi.md)


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


def _range(request: Request) -> tuple[datetime, datetime]:
    try:
        start, end = parse_time(_param(request, "from")), parse_time(_param(request, "to"))
    except ValueError:
        raise ApiError(400, "from and to must be ISO dates or times (UTC)") from None
    if end <= start:
        raise ApiError(400, "to must be after from")
    return start, end


def _reader(state: QueryState) -> BillingReader:
    if state.reader is None:
        raise ApiError(404, "billing queries are not configured on this server")
    return state.reader


async def get_usage(request: Request) -> Response:
    state: QueryState = request.app.state.api
    key = authenticate(request.headers, state.keys)
    tenant = _param(request, "tenant")
    require_tenant(key, tenant)
    by = request.query_params.get("by", "model")
    if by not in _BY:
        raise ApiError(400, f"by={by!r}: must be one of {', '.join(_BY)}")
    start, end = _range(request)
    reader = _reader(state)
    result = await _read(lambda: reader.usage(tenant, start, end, by))  # type: ignore[arg-type]
    body = usage_to_json(result)
    return _json({"tenant": tenant, "by": by, "open": not result.finality.final, **body})


async def get_invoice(request: Request) -> Response:
    state: QueryState = request.app.state.api
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


async def get_reconcile(request: Request) -> Response:
    """Every tenant's figures checked against each other (docs/clickhouse.md): admin."""
    state: QueryState = request.app.state.api
    require_admin(authenticate(request.headers, state.keys))
    start, end = _range(request)
    reader = _reader(state)
    checks, differences = await _read(lambda: reader.reconcile(start, end))
    return _json({"checks": checks, "differences": differences_to_json(differences)})


async def get_sql(request: Request) -> Response:
    """Read-only SQL for BI (sinks/clickhouse/bi_sql.py), `p_<name>` bound: admin."""
    state: QueryState = request.app.state.api
    require_admin(authenticate(request.headers, state.keys))
    sql = _param(request, "sql")
    named = {
        name.removeprefix(PARAM_PREFIX): value
        for name, value in request.query_params.items()
        if name.startswith(PARAM_PREFIX)
    }
    reader = _reader(state)
    return _json(await _read(lambda: reader.sql(sql, named)))


async def _read(query: Any) -> Any:
    try:
        return await asyncio.to_thread(query)
    except ClickHouseError as exc:  # store missing, busy, or its sink not answering
        raise ApiError(
            503, f"billing store unavailable: {exc.message}", detail=_hint(exc)
        ) from None
    except TokenopsError as exc:  # the caller's mistake (unknown tenant, a write in sql)
        raise ApiError(400, exc.message, detail=_hint(exc)) from None


def _hint(exc: TokenopsError) -> dict[str, Any] | None:
    """The remedy, for the CLI to show as it would for a local read."""
    return {"hint": exc.hint} if exc.hint else None
