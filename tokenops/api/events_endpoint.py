"""POST /v1/events as a plain ASGI app: the ingest route without Starlette's layers.

The busiest route of the API, so it skips what it does not use: the middleware stack,
routing, the `Request` and `Response` objects, and the awaits each adds. It reads the
body straight from ASGI `receive` and writes its answer with two `send` calls. The
answers are the route's, as documented (tokenops/api/ingest.py): errors are JSON
`{"error": ...}` with their status and headers, and anything unexpected an opaque 500
whose `error_id` is logged with the traceback (`opaque_500`, the app's own handler).

`HotRoutes` sends POST /v1/events here before Starlette; Starlette's route table still
lists the same app, so the other methods get its 405 and the table stays complete.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tokenops.api.auth import authenticate, headers_of
from tokenops.api.errors import ApiError, opaque_500
from tokenops.api.ingest import accept_events, read_body
from tokenops.api.state import ApiState

_JSON = (b"content-type", b"application/json")


class EventsEndpoint:
    def __init__(self, state: ApiState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = headers_of(scope)
            key = authenticate(headers, self.state.keys)
            body = await read_body(receive, self.state.settings.max_body_bytes, headers)
            if body is None:  # the client left before sending its body: nothing taken
                return
            accepted = await accept_events(self.state, key, headers, body)
            status, answer, extra = 200, b'{"accepted":%d,"durable":true}' % accepted, {}
        except ApiError as error:
            status, answer, extra = error.status, error.json(), error.headers
        except Exception as exc:  # answered opaque, logged in full
            status, answer, extra = 500, opaque_500(scope["path"], exc), {}
        response_headers = [_JSON, (b"content-length", b"%d" % len(answer))]
        response_headers += [
            (name.lower().encode(), value.encode()) for name, value in extra.items()
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": answer})


class HotRoutes:
    """Sends POST /v1/events to its endpoint directly, everything else to `app`."""

    def __init__(self, app: ASGIApp, events: ASGIApp) -> None:
        self.app, self.events = app, events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/events" and scope["method"] == "POST":
            await self.events(scope, receive, send)
        else:
            await self.app(scope, receive, send)
