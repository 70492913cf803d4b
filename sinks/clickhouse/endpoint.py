"""The sink's small HTTP endpoint: /metrics, /healthz, and read-only billing queries.

chDB allows one process per store, so while `tokenops sink clickhouse` holds the embedded
store, `tokenops usage|invoice|reconcile` cannot open it; they ask this endpoint instead
(its address is in the store's owner file). The queries are the fixed ones below, with
bound parameters, served only for an embedded store. They carry no authentication yet
(docs/security.md), so they are served only on a loopback bind, unless
`TOKENOPS_CLICKHOUSE_HTTP_QUERIES_ON_PUBLIC_BIND=true` says the network is trusted.
Listening rules (Host allow-list, timeouts, opaque 500s) are `tokenops.listen`'s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, get_args

import orjson
from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry

from tokenops.errors import TokenopsError
from tokenops.listen import (
    Reply,
    Request,
    Route,
    SafeHTTPServer,
    is_loopback,
    metrics_route,
    parse_allowed_hosts,
)
from tokenops.sinks.clickhouse import billing, reconcile
from tokenops.sinks.clickhouse.bi_sql import PARAM_PREFIX, run_sql
from tokenops.sinks.clickhouse.errors import ClickHouseError
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.wire import invoice_to_json, parse_time, usage_to_json

logger = logging.getLogger(__name__)

# A query reads its parameters first (a mistake there is the caller's: 400 with the
# reason) and returns the call to run; a failure while running is ours: an opaque 500.
Query = Callable[[Mapping[str, str]], Callable[[Client], Any]]


def _usage(q: Mapping[str, str]) -> Callable[[Client], Any]:
    by = q.get("by", "model")
    if by not in get_args(billing.UsageBy):
        raise TokenopsError(f"by={by!r}: must be one of {', '.join(get_args(billing.UsageBy))}")
    tenant, start, end = q["tenant"], parse_time(q["from"]), parse_time(q["to"])
    zone = q.get("time_zone", "UTC")
    return lambda client: usage_to_json(
        billing.usage(client, tenant, start, end, by, zone)  # type: ignore[arg-type]
    )


def _invoice(q: Mapping[str, str]) -> Callable[[Client], Any]:
    tenant, month = q["tenant"], date.fromisoformat(q["month"] + "-01")
    zone = q.get("time_zone", "UTC")
    return lambda client: invoice_to_json(billing.invoice(client, tenant, month, zone))


def _reconcile(q: Mapping[str, str]) -> Callable[[Client], Any]:
    start, end, raw = parse_time(q["from"]), parse_time(q["to"]), q.get("raw") != "0"

    def run(client: Client) -> Any:
        checks, differences = reconcile.reconcile(client, start, end, raw_events=raw)
        return {"checks": checks, "differences": [d.__dict__ for d in differences]}

    return run


def _sql(q: Mapping[str, str]) -> Callable[[Client], Any]:
    sql = q["sql"]
    named = {k.removeprefix(PARAM_PREFIX): v for k, v in q.items() if k.startswith(PARAM_PREFIX)}
    return lambda client: run_sql(client, sql, named)


QUERIES: dict[str, Query] = {
    "/v1/usage": _usage,
    "/v1/invoice": _invoice,
    "/v1/reconcile": _reconcile,
    "/v1/sql": _sql,  # read-only SQL for BI (bi_sql.py)
}


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # Decimal: as text, never float


class SinkEndpoint:
    """Serves GET /metrics, /healthz and /v1/{usage,invoice,reconcile} on a thread."""

    def __init__(
        self,
        settings: ClickHouseSettings,
        client: Client,
        lock: threading.Lock,
        registry: CollectorRegistry,
        *,
        queries: bool,
    ) -> None:
        self.client, self.lock = client, lock
        host = settings.http_host
        public = not is_loopback(host)
        self.queries = queries and (not public or settings.http_queries_on_public_bind)
        if queries and not self.queries:
            logger.warning(
                "billing queries are not served on host=%s (no authentication yet); set "
                "TOKENOPS_CLICKHOUSE_HTTP_QUERIES_ON_PUBLIC_BIND=true on a trusted network",
                host,
            )
        routes: dict[str, Route] = {"/metrics": metrics_route(registry), "/healthz": _healthz}
        routes.update({path: self._route(query) for path, query in QUERIES.items()})
        try:
            self.server = SafeHTTPServer(
                "clickhouse-sink-http",
                host,
                settings.http_port,
                routes,
                allowed_hosts=parse_allowed_hosts(settings.http_allowed_hosts),
            )
        except OSError as exc:
            raise ClickHouseError(
                f"the sink's endpoint cannot listen on {host}:{settings.http_port}: {exc.strerror}",
                hint="set TOKENOPS_CLICKHOUSE_HTTP_PORT to a free port, or 0 to turn it off",
            ) from exc
        self.url = self.server.url

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def _route(self, query: Query) -> Route:
        def answer(request: Request) -> Reply:
            if not self.queries:
                return _json(403, {"error": "billing queries are not served on this listener"})
            try:
                run = query(request.query)
            except KeyError as exc:
                return _json(400, {"error": f"bad request: missing parameter {exc}"})
            except (ValueError, TokenopsError) as exc:
                return _json(400, {"error": f"bad request: {exc}"})
            try:
                with self.lock:
                    result = run(self.client)
            except TokenopsError as exc:  # the caller's mistake (unknown tenant, a write
                return _json(400, {"error": f"bad request: {exc}"})  # in `sql`): said as is
            return Reply(200, orjson.dumps(result, default=_default), "application/json")

        return answer


def _healthz(request: Request) -> Reply:
    return _json(200, {"status": "ok"})  # alive while serving; a blocked sink is alive


def _json(status: int, body: dict[str, str]) -> Reply:
    return Reply(status, orjson.dumps(body), "application/json")
