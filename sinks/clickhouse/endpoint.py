"""The sink's small HTTP endpoint: /metrics, /healthz, and read-only billing queries.

chDB allows one process per store, so while `tokenops sink clickhouse` holds the embedded
store, `tokenops usage|invoice|reconcile` cannot open it; they ask this endpoint instead
(its address is in the store's owner file). The queries are the fixed ones below, with
bound parameters, served only for an embedded store and only to loopback clients;
/metrics and /healthz are served to anyone who can reach the port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from clickhouse_connect.driver.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from tokenops.errors import TokenopsError
from tokenops.sinks.clickhouse import billing, reconcile
from tokenops.sinks.clickhouse.bi_sql import PARAM_PREFIX, run_sql
from tokenops.sinks.clickhouse.errors import ClickHouseError
from tokenops.sinks.clickhouse.wire import invoice_to_json, parse_time, usage_to_json

logger = logging.getLogger(__name__)

Query = Callable[[Client, dict[str, str]], Any]


def _usage(client: Client, q: dict[str, str]) -> Any:
    by = q.get("by", "model")
    if by not in ("model", "day", "hour", "month"):
        raise TokenopsError(f"by={by!r}: must be model, day, hour or month")
    start, end = parse_time(q["from"]), parse_time(q["to"])
    zone = q.get("time_zone", "UTC")
    return usage_to_json(billing.usage(client, q["tenant"], start, end, by, zone))  # type: ignore[arg-type]


def _invoice(client: Client, q: dict[str, str]) -> Any:
    month = date.fromisoformat(q["month"] + "-01")
    return invoice_to_json(billing.invoice(client, q["tenant"], month, q.get("time_zone", "UTC")))


def _reconcile(client: Client, q: dict[str, str]) -> Any:
    checks, differences = reconcile.reconcile(
        client, parse_time(q["from"]), parse_time(q["to"]), raw_events=q.get("raw") != "0"
    )
    return {"checks": checks, "differences": [d.__dict__ for d in differences]}


def _sql(client: Client, q: dict[str, str]) -> Any:
    named = {k.removeprefix(PARAM_PREFIX): v for k, v in q.items() if k.startswith(PARAM_PREFIX)}
    return run_sql(client, q["sql"], named)


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
    """Serves GET /metrics and GET /v1/{usage,invoice,reconcile} on a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        client: Client,
        lock: threading.Lock,
        registry: CollectorRegistry,
        *,
        queries: bool,
    ) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("endpoint " + format, *args)

        self.client, self.lock, self.registry, self.queries = client, lock, registry, queries
        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ClickHouseError(
                f"the sink's endpoint cannot listen on {host}:{port}: {exc.strerror}",
                hint="set TOKENOPS_CLICKHOUSE_HTTP_PORT to a free port, or 0 to turn it off",
            ) from exc
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.url = f"http://{shown}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        logger.info("sink endpoint listening url=%s", self.url)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlparse(request.path)
        if url.path == "/metrics":
            self._send(request, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
            return
        if url.path == "/healthz":  # alive while serving; a blocked sink is alive by design
            self._send(request, 200, b'{"status": "ok"}')
            return
        query = QUERIES.get(url.path)
        if query is None:
            self._send(request, 404, b'{"error": "not found"}')
            return
        if not self.queries or not ip_address(request.client_address[0]).is_loopback:
            # Billing data is served only for an embedded store, and only to this host.
            self._send(request, 403, b'{"error": "queries are served to this host only"}')
            return
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            with self.lock:
                result = query(self.client, params)
            body, status = orjson.dumps(result, default=_default), 200
        except (KeyError, ValueError, TokenopsError) as exc:
            body, status = orjson.dumps({"error": f"bad request: {exc}"}), 400
        except Exception as exc:
            logger.exception("endpoint query failed path=%s", url.path)
            body, status = orjson.dumps({"error": str(exc)}), 500
        self._send(request, status, body)

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str = "application/json"
    ) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", kind)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("endpoint client went away before the answer")
