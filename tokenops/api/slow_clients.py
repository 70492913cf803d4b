"""`guarded_protocol`: uvicorn's httptools protocol with the slow-client rules of
tokenops/listen.py, for the ClickHouse sink's listener.

uvicorn closes a keep-alive connection idle between requests, but waits as long as the
client likes for the headers of a request that trickles in, and answers 503 to every
request once `limit_concurrency` connections are open. So a few hundred half-open
connections would fail the sink's liveness probe. Here, as in the stdlib listener:

- a connection has `timeout_s` from its start (or from the first byte of its next
  request) to send the request's headers, however slowly they arrive; then it is closed;
- at `max_connections`, a new connection closes the oldest one still waiting for its
  headers, so idle or half-sent connections cannot lock out a probe or a scrape.

Written against uvicorn 0.54's `HttpToolsProtocol` hooks (pinned in pyproject.toml;
tests/integration/test_listeners.py runs both rules against the sink's listener).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def guarded_protocol(timeout_s: float, max_connections: int) -> type[HttpToolsProtocol]:
    """A protocol class (uvicorn.Config(http=...)) for one server: its own waiting list."""
    waiting: dict[HttpToolsProtocol, None] = {}  # oldest first, headers not yet read

    class GuardedHttpTools(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections and waiting:
                oldest = next(iter(waiting))
                del waiting[oldest]
                oldest.transport.close()  # its client was slowest to ask
            self._wait()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:  # the next request of a kept-alive connection
                self._wait()

        def on_headers_complete(self) -> None:
            self._received()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._received()
            super().connection_lost(exc)

        def _wait(self) -> None:
            waiting[self] = None
            self._deadline = self.loop.call_later(timeout_s, self._too_slow)

        def _received(self) -> None:
            waiting.pop(self, None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            waiting.pop(self, None)
            self.transport.close()

    return GuardedHttpTools
