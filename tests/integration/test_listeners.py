"""Every HTTP listener (worker, Prometheus sink, ClickHouse sink) against hostile clients.

The worker's and the ClickHouse sink's real listeners are started on free ports; the
Prometheus sink serves through the same `SafeHTTPServer` (tests/integration/
test_prometheus_sink.py scrapes it). The ClickHouse sink serves the API's app on
uvicorn (`SinkListener`): its queries need the run token of the store's owner file or
an admin API key. The 500 case runs a query on a real chDB store that has no tables, so
ClickHouse itself raises.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tokenops.api.keys import new_key
from tokenops.api.sink_listener import SinkListener
from tokenops.listen import SafeHTTPServer
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.store import read_owner
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.streams.metrics import serve_http
from tokenops.streams.settings import WorkerSettings


@pytest.fixture
def worker_http() -> Iterator[SafeHTTPServer]:
    ready = threading.Event()
    ready.set()
    settings = WorkerSettings()
    server = serve_http(CollectorRegistry(), settings.http_host, 0, "metrics.internal", ready)
    yield server
    server.stop()


@pytest.fixture
def sink_store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    """An embedded store held by this process, as the sink holds it (not migrated)."""
    settings = ClickHouseSettings(url=f"chdb://{tmp_path / 'ch'}", http_port=0)
    with open_store(settings, tmp_path) as store:
        yield store


@pytest.fixture
def sink_http(sink_store: ClickHouseStore, tmp_path: Path) -> Iterator[SinkListener]:
    listener = SinkListener(
        sink_store, threading.Lock(), CollectorRegistry(), tmp_path / "api-keys.json"
    )
    listener.start()
    yield listener
    listener.stop()


def get(
    port: int, path: str, host: str | None = None, token: str | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host} if host is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def test_every_listener_binds_loopback_by_default(sink_http: SinkListener) -> None:
    assert WorkerSettings().http_host == "127.0.0.1"
    assert PrometheusSinkSettings().host == "127.0.0.1"
    assert ClickHouseSettings().http_host == "127.0.0.1"
    assert sink_http.socket.getsockname()[0] == "127.0.0.1"


def test_worker_listener_binds_loopback(worker_http: SafeHTTPServer) -> None:
    assert worker_http.server_address[0] == "127.0.0.1"
    assert get(worker_http.port, "/healthz")[0] == 200


def test_a_host_header_not_allowed_gets_421(
    worker_http: SafeHTTPServer, sink_http: SinkListener
) -> None:
    port = worker_http.port
    assert get(port, "/metrics", "rebind.attacker.example")[0] == 421
    assert get(port, "/metrics", f"rebind.attacker.example:{port}")[0] == 421
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "10.1.2.3", f"metrics.internal:{port}"):
        assert get(port, "/metrics", host)[0] == 200, host
    port, token = sink_http.port, sink_http.token  # the same rule on the sink's uvicorn
    assert get(port, "/v1/usage", "rebind.attacker.example", token)[0] == 421
    assert get(port, "/metrics", f"localhost:{port}")[0] == 200


@pytest.fixture
def quick_sink_http(sink_store: ClickHouseStore) -> Iterator[SinkListener]:
    """The sink's listener with a 1 s request deadline (the default is 10 s)."""
    listener = SinkListener(sink_store, threading.Lock(), CollectorRegistry(), None, timeout_s=1)
    listener.start()
    yield listener
    listener.stop()


@pytest.mark.parametrize("which", ["worker", "clickhouse sink"])
def test_a_slow_loris_connection_is_closed_by_the_deadline(
    which: str, request: pytest.FixtureRequest
) -> None:
    if which == "worker":
        worker_http: SafeHTTPServer = request.getfixturevalue("worker_http")
        worker_http.timeout_s = 1.0  # the default is 10 s; the rule is the same
        port = worker_http.port
    else:
        port = request.getfixturevalue("quick_sink_http").port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n")
        started, closed = time.monotonic(), False
        while time.monotonic() - started < 4:
            try:
                sock.sendall(b"X")  # one byte of a header every 0.2 s, never the end
                time.sleep(0.2)
            except OSError:
                closed = True
                break
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed, "a request trickled in byte by byte must not hold its connection"
        assert time.monotonic() - started < 3


def test_half_open_connections_do_not_block_the_sinks_probe(sink_http: SinkListener) -> None:
    idle = [socket.create_connection(("127.0.0.1", sink_http.port)) for _ in range(300)]
    try:
        for sock in idle[::2]:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: loc")  # half-sent
        time.sleep(0.5)
        started = time.monotonic()
        assert get(sink_http.port, "/healthz")[0] == 200  # not a 503: the oldest were closed
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()


def test_half_open_connections_neither_pin_threads_nor_block_a_request(
    worker_http: SafeHTTPServer,
) -> None:
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", worker_http.port)) for _ in range(300)]
    try:
        for sock in idle[::2]:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: loc")  # half-sent
        time.sleep(0.5)
        started = time.monotonic()
        assert get(worker_http.port, "/healthz")[0] == 200
        assert time.monotonic() - started < 2
        assert threading.active_count() - threads_before <= worker_http.max_connections + 2
    finally:
        for sock in idle:
            sock.close()


def test_an_internal_error_is_an_opaque_500(
    sink_http: SinkListener, caplog: pytest.LogCaptureFixture
) -> None:
    # The store is not migrated: the query's tables are missing and ClickHouse raises.
    with caplog.at_level(logging.ERROR):
        status, body = get(
            sink_http.port, "/v1/reconcile?from=2026-11-01&to=2026-11-02", token=sink_http.token
        )
    assert status == 500
    answer = orjson.loads(body)
    assert set(answer) == {"error", "error_id"} and answer["error"] == "internal error"
    assert answer["error_id"] in caplog.text  # the id leads an operator to the logged cause
    assert "window_totals" in caplog.text or "Exception" in caplog.text
    for leak in (b"Code:", b"DB::", b"Exception", b"window_totals", b"Traceback"):
        assert leak not in body
    assert sink_http.token not in caplog.text


def test_the_sink_queries_need_its_token_or_an_admin_key(
    sink_store: ClickHouseStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys_file = tmp_path / "api-keys.json"
    admin, tenant = new_key(keys_file, None)[1], new_key(keys_file, "acme")[1]
    listener = SinkListener(sink_store, threading.Lock(), CollectorRegistry(), keys_file)
    with caplog.at_level(logging.DEBUG):
        listener.start()
        sink_store.advertise(listener.url, listener.token)
        try:
            port, token = listener.port, listener.token
            for path in ("/v1/usage", "/v1/invoices/acme", "/v1/reconcile", "/v1/sql"):
                assert get(port, path)[0] == 401, path  # no credential
                assert get(port, path, token=token[:-1] + "x")[0] == 401, path  # a wrong one
                assert get(port, path, token=tenant)[0] == 401, path  # a tenant key
                assert get(port, path, token=token)[0] == 400, path  # in: no parameters
                assert get(port, path, token=admin)[0] == 400, path
            body = get(port, "/v1/usage")[1]
            assert b"API key" in body and token.encode() not in body
            assert get(port, "/healthz")[0] == 200  # probes and the scraper need none
            assert get(port, "/metrics")[0] == 200
        finally:
            listener.stop()
    owner = sink_store.path.with_name(sink_store.path.name + ".owner")  # type: ignore[union-attr]
    assert owner.stat().st_mode & 0o777 == 0o600  # only the sink's user reads the token
    assert read_owner(sink_store.path)["token"] == token  # type: ignore[arg-type]
    assert token not in caplog.text


def test_the_sink_serves_on_a_public_bind_with_the_token_only(tmp_path: Path) -> None:
    settings = ClickHouseSettings(url=f"chdb://{tmp_path / 'ch'}", http_host="0.0.0.0", http_port=0)
    with open_store(settings, tmp_path) as store:
        listener = SinkListener(store, threading.Lock(), CollectorRegistry(), None)
        listener.start()
        try:
            assert listener.url == f"http://127.0.0.1:{listener.port}"
            assert get(listener.port, "/v1/usage")[0] == 401
            assert get(listener.port, "/v1/usage", token=listener.token)[0] == 400  # no tenant
            assert get(listener.port, "/healthz")[0] == 200
        finally:
            listener.stop()
