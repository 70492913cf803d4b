"""Every HTTP listener (worker, Prometheus sink, ClickHouse sink) against hostile clients.

The worker's and the ClickHouse sink's real listeners are started on free ports; the
Prometheus sink serves through the same `SafeHTTPServer` (tests/integration/
test_prometheus_sink.py scrapes it). The 500 case runs a query on a real chDB store
that has no tables, so ClickHouse itself raises.
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

from tokenops.listen import SafeHTTPServer
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.endpoint import SinkEndpoint
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


def get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host} if host is not None else {}
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def test_every_listener_binds_loopback_by_default(tmp_path: Path) -> None:
    assert WorkerSettings().http_host == "127.0.0.1"
    assert PrometheusSinkSettings().host == "127.0.0.1"
    settings = ClickHouseSettings(url=f"chdb://{tmp_path / 'ch'}", http_port=0)
    assert settings.http_host == "127.0.0.1"
    with open_store(settings, tmp_path) as store:
        endpoint = SinkEndpoint(
            settings, store.client, threading.Lock(), CollectorRegistry(), queries=True
        )
        assert endpoint.server.server_address[0] == "127.0.0.1"
        endpoint.server.server_close()


def test_worker_listener_binds_loopback(worker_http: SafeHTTPServer) -> None:
    assert worker_http.server_address[0] == "127.0.0.1"
    assert get(worker_http.port, "/healthz")[0] == 200


def test_a_host_header_not_allowed_gets_421(worker_http: SafeHTTPServer) -> None:
    port = worker_http.port
    assert get(port, "/metrics", "rebind.attacker.example")[0] == 421
    assert get(port, "/metrics", f"rebind.attacker.example:{port}")[0] == 421
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "10.1.2.3", f"metrics.internal:{port}"):
        assert get(port, "/metrics", host)[0] == 200, host


def test_a_slow_loris_connection_is_closed_by_the_deadline(worker_http: SafeHTTPServer) -> None:
    worker_http.timeout_s = 1.0  # the default is 10 s; the rule is the same
    with socket.create_connection(("127.0.0.1", worker_http.port), timeout=5) as sock:
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
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ClickHouseSettings(url=f"chdb://{tmp_path / 'ch'}", http_port=0)
    with open_store(settings, tmp_path) as store:  # not migrated: the query's tables are missing
        endpoint = SinkEndpoint(
            settings, store.client, threading.Lock(), CollectorRegistry(), queries=True
        )
        endpoint.start()
        try:
            with caplog.at_level(logging.ERROR):
                status, body = get(
                    endpoint.server.port, "/v1/reconcile?from=2026-11-01&to=2026-11-02"
                )
        finally:
            endpoint.stop()
    assert status == 500
    answer = orjson.loads(body)
    assert set(answer) == {"error", "error_id"} and answer["error"] == "internal error"
    assert answer["error_id"] in caplog.text  # the id leads an operator to the logged cause
    assert "window_totals" in caplog.text or "Exception" in caplog.text
    for leak in (b"Code:", b"DB::", b"Exception", b"window_totals", b"Traceback"):
        assert leak not in body


@pytest.mark.parametrize(("opt_in", "expected"), [(False, 403), (True, 400)])
def test_billing_queries_need_an_opt_in_on_a_public_bind(
    tmp_path: Path, opt_in: bool, expected: int
) -> None:
    settings = ClickHouseSettings(
        url=f"chdb://{tmp_path / 'ch'}",
        http_host="0.0.0.0",
        http_port=0,
        http_queries_on_public_bind=opt_in,
    )
    with open_store(settings, tmp_path) as store:
        endpoint = SinkEndpoint(
            settings, store.client, threading.Lock(), CollectorRegistry(), queries=True
        )
        endpoint.start()
        try:
            assert get(endpoint.server.port, "/v1/usage")[0] == expected  # 400: no tenant
            assert get(endpoint.server.port, "/healthz")[0] == 200
        finally:
            endpoint.stop()
