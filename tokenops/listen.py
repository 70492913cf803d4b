"""`SafeHTTPServer`: the stdlib HTTP listener of the worker, the Prometheus sink and the
replication exporter, and the Host rule every tokenops listener shares (`host_allowed`:
`tokenops api` and the ClickHouse sink serve on uvicorn, tokenops/api/app.py).

Every listener gets the same guarantees, whatever it serves:

- it binds `127.0.0.1` unless its `*_HOST` setting names another address;
- a request whose `Host` header is a name not in its allow-list gets 421: a web page
  cannot reach it through DNS rebinding (a browser sends the attacker's name; an IP
  address or `localhost` is always accepted, since rebinding needs a name);
- a connection has `timeout_s` in total to send its request, however slowly the bytes
  arrive, so an idle or half-sent request (slow-loris) is closed instead of holding a
  thread; an answer the client does not read within `timeout_s` is abandoned;
- at most `max_connections` connections hold a thread; at the cap the oldest one still
  waiting for its request is closed to make room, so half-open connections cannot lock
  out a real request (if every slot is serving, a new one gets 503);
- an exception in a route answers 500 with an opaque `error_id`; the exception and its
  id are logged here, never sent.

Connections are HTTP/1.0 (one request each), so the per-connection deadline is the
per-request deadline.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
TIMEOUT_S = 10.0
MAX_CONNECTIONS = 128
_ALWAYS_ALLOWED = frozenset({"localhost"})


@dataclass(frozen=True)
class Request:
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    client_host: str


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[Request], Reply]


def metrics_route(registry: CollectorRegistry) -> Route:
    """GET /metrics: the registry in the format the scraper asks for (text or OpenMetrics)."""

    def metrics(request: Request) -> Reply:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Reply(200, encode(registry), content_type)

    return metrics


def parse_allowed_hosts(text: str) -> frozenset[str]:
    """`"a.example, b"` -> {"a.example", "b"}; `*` accepts every Host."""
    return frozenset(name.strip().lower().rstrip(".") for name in text.split(",") if name.strip())


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's Host header may reach this listener (see the module docstring)."""
    if header is None or "*" in allowed:
        return True  # no Host: not a browser, so not a rebinding page
    name = header.strip().lower()
    if name.startswith("["):  # [::1]:port
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.rstrip(".")
    try:
        ip_address(name)
        return True
    except ValueError:
        return name in _ALWAYS_ALLOWED or name in allowed


class _DeadlineReader(io.RawIOBase):
    """Socket reads that fail once the connection's deadline has passed, however slowly
    the bytes trickle in (a per-read timeout alone lets one byte every 9 s live forever)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: SafeHTTPServer

    def setup(self) -> None:
        super().setup()
        deadline = time.monotonic() + self.server.timeout_s
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self.server.request_received(self.connection)
        # The answer gets its own time (a read may have left the deadline nearly spent);
        # sendall's timeout bounds a whole write, so a slow reader cannot hold on either.
        self.connection.settimeout(self.server.timeout_s)
        return ok

    def do_GET(self) -> None:
        self._send(self.server.answer(self))

    def do_HEAD(self) -> None:
        self._send(self.server.answer(self), body=False)

    def _send(self, reply: Reply, *, body: bool = True) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if body:
                self.wfile.write(reply.body)
        except OSError:  # the client went away or stopped reading
            logger.debug("listener client went away before the answer")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http " + format, *args)


class SafeHTTPServer(ThreadingHTTPServer):
    """GET (and HEAD) on `routes` {path: route}; see the module docstring for the limits.

    `start()` serves on a daemon thread; `stop()` closes the socket.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = MAX_CONNECTIONS

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        *,
        allowed_hosts: frozenset[str] = frozenset(),
        timeout_s: float = TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.name, self.routes, self.allowed_hosts = name, dict(routes), allowed_hosts
        self.timeout_s, self.max_connections = timeout_s, max_connections
        self._lock = threading.Lock()
        self._active = 0
        self._waiting: dict[socket.socket, None] = {}  # oldest first, request not yet read
        super().__init__((host or LOOPBACK, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        shown = LOOPBACK if host in ("0.0.0.0", "::", "") else host
        return f"http://{shown}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        logger.info("%s listening host=%s port=%d", self.name, self.server_address[0], self.port)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if self._active >= self.max_connections:
                if not self._waiting:
                    self._refuse(request)
                    return
                oldest = next(iter(self._waiting))
                del self._waiting[oldest]
                _close_quietly(oldest)  # its thread's read fails and the thread ends
            self._active += 1
            self._waiting[request] = None
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._active -= 1
                self._waiting.pop(request, None)

    def request_received(self, connection: socket.socket) -> None:
        with self._lock:
            self._waiting.pop(connection, None)

    def answer(self, handler: BaseHTTPRequestHandler) -> Reply:
        if not host_allowed(handler.headers.get("Host"), self.allowed_hosts):
            return Reply(421, b"misdirected request: this Host is not served here\n")
        url = urlsplit(handler.path)
        route = self.routes.get(url.path)
        if route is None:
            return Reply(404, b"not found\n")
        request = Request(
            path=url.path,
            query={k: v[0] for k, v in parse_qs(url.query).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            client_host=str(handler.client_address[0]),
        )
        try:
            return route(request)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            logger.exception("%s request failed path=%s error_id=%s", self.name, url.path, error_id)
            body = f'{{"error": "internal error", "error_id": "{error_id}"}}\n'.encode()
            return Reply(500, body, "application/json")

    def _refuse(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        self.shutdown_request(request)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its client
        sock.shutdown(socket.SHUT_RDWR)
