"""The ASGI app of `tokenops api`: routes, the Host check, and answers that never leak.

Every error is JSON `{"error": ...}`; an unexpected exception answers 500 with an opaque
`error_id` that is logged with the traceback, never sent.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tokenops.api.errors import ApiError, opaque_500
from tokenops.api.events_endpoint import EventsEndpoint, HotRoutes
from tokenops.api.ingest import post_traces
from tokenops.api.queries import get_invoice, get_usage
from tokenops.api.quotas import get_quota
from tokenops.api.state import ApiState, QueryState
from tokenops.listen import host_allowed, parse_allowed_hosts

OPENAPI_FILE = "tokenops-api.openapi.json"


def openapi_document() -> bytes:
    return resources.files("tokenops.schemas").joinpath(OPENAPI_FILE).read_bytes()


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})  # alive while serving: a blocked sink is alive


async def metrics(request: Request) -> Response:
    """The registry in the format the scraper asks for (Prometheus text or OpenMetrics)."""
    state: QueryState = request.app.state.api
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(state.registry), media_type=content_type)


async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi, media_type="application/json")


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return Response(exc.json(), exc.status, exc.headers, media_type="application/json")


async def unexpected(request: Request, exc: Exception) -> Response:
    body = opaque_500(request.url.path, exc)
    return Response(body, status_code=500, media_type="application/json")


class HostCheck:
    """421 for a Host header naming a host not allowed (DNS rebinding), before routing;
    the rule is tokenops/listen.py's, shared by every listener."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed
        # Verdicts by Host value: clients send the same few on every request, and
        # parsing each as an IP address showed in profiles of the ingest routes.
        self.verdicts: dict[bytes | None, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = None
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value  # the last one, as a dict of the headers would keep
            allowed = self.verdicts.get(host)
            if allowed is None:
                allowed = host_allowed(
                    None if host is None else host.decode("latin-1"), self.allowed
                )
                if len(self.verdicts) >= 256:  # hostile clients vary it: stay small
                    self.verdicts.clear()
                self.verdicts[host] = allowed
            if not allowed:
                response = JSONResponse({"error": "this Host is not served"}, status_code=421)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# The queries and probes the ClickHouse sink's app serves as well (api/sink_app.py).
SHARED_ROUTES = [
    Route("/v1/usage", get_usage, methods=["GET"]),
    Route("/v1/invoices/{tenant}", get_invoice, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
ROUTES = [
    Route("/v1/traces", post_traces, methods=["POST"]),
    Route("/v1/quotas/{tenant}", get_quota, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    *SHARED_ROUTES,
]


def create_app(state: ApiState, extra_routes: list[Any] | None = None) -> ASGIApp:
    """The app over `state`; `extra_routes` lets a benchmark add its baseline route."""
    events = EventsEndpoint(state)
    routes = [Route("/v1/events", events, methods=["POST"]), *ROUTES, *(extra_routes or [])]
    app = starlette_app(routes, state)
    app.state.openapi = openapi_document()
    return HostCheck(HotRoutes(app, events), parse_allowed_hosts(state.settings.allowed_hosts))


def starlette_app(routes: list[Any], state: QueryState) -> Starlette:
    """`routes` over `state` with the answers every tokenops app gives: JSON errors, and
    an opaque 500 for anything unexpected (the ClickHouse sink's app is one too)."""
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error, Exception: unexpected})
    app.state.api = state
    return app
