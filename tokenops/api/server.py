"""`tokenops api serve`: the producer, the quota view, the app and uvicorn in one process.

Starlette on uvicorn with uvloop and httptools: in bench/bench_api_stacks.py it served
3.3x the requests/s of uvicorn's defaults and matched granian (docs/benchmarks.md).
On shutdown the producer is closed: what the broker has not acknowledged is spooled.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from tokenops.api.app import create_app
from tokenops.api.keys import KeyStore, read_entries
from tokenops.api.quotas import QuotaView
from tokenops.api.settings import ApiSettings
from tokenops.api.state import ApiMetrics, ApiState
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.producers.http import DurableSender
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.sinks.clickhouse.reader import BillingReader
from tokenops.sinks.clickhouse.settings import ClickHouseSettings

logger = logging.getLogger(__name__)
# librdkafka's linger for the server's producer: a request waits for its own records,
# so they should leave at once; what arrives while a request is in flight still goes
# together in the next one (docs/benchmarks.md, HTTP API).
CLIENT_LINGER_MS = "1"


@dataclass(frozen=True)
class ServerSettings:
    """Everything `serve` reads, loaded once by the entry point."""

    api: ApiSettings
    kafka: KafkaSettings
    producer: ProducerSettings
    topics: TopicSettings
    clickhouse: ClickHouseSettings
    stack: StackSettings


def build_state(
    settings: ApiSettings, producer: UsageProducer, registry: CollectorRegistry
) -> ApiState:
    read_entries(settings.keys_file)  # a shared or broken keys file stops the start
    return ApiState(
        settings=settings,
        keys=KeyStore(settings.keys_file),
        sender=DurableSender(producer, settings.durable_timeout_s),
        registry=registry,
        metrics=ApiMetrics(registry),
    )


def serve(config: ServerSettings, extra_routes: list[Any] | None = None) -> None:
    """Run until SIGINT/SIGTERM; `extra_routes` lets a benchmark add its baseline route."""
    settings, registry = config.api, CollectorRegistry()
    # The server answers a full queue with 503 at once rather than holding the request,
    # and its requests wait for their records' acknowledgement (DurableSender): records
    # leave librdkafka after at most `CLIENT_LINGER_MS`, unless client_config says.
    client_config = {"linger.ms": CLIENT_LINGER_MS, **config.producer.client_config}
    producer_settings = config.producer.model_copy(
        update={"backpressure_timeout_s": 0.0, "client_config": client_config}
    )
    producer = UsageProducer(config.kafka, producer_settings, registry=registry)
    quotas = QuotaView(config.kafka, config.topics) if settings.quotas else None
    try:
        state = build_state(settings, producer, registry)
        if settings.queries:
            state.reader = BillingReader(config.clickhouse, config.stack.state_dir)
        if quotas is not None:
            quotas.start()
            state.quotas = quotas
        sockets = [shared_listener(settings.host, settings.port)] if settings.reuse_port else None
        logger.info("api listening host=%s port=%d", settings.host, settings.port)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(state, extra_routes),
                host=settings.host,
                port=settings.port,
                loop="uvloop",
                http="httptools",
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=False,
                limit_concurrency=1024,
                timeout_keep_alive=15,
            )
        )
        server.run(sockets)
    finally:
        if quotas is not None:
            quotas.stop()
        producer.close()


def shared_listener(host: str, port: int) -> socket.socket:
    """A listening socket with SO_REUSEPORT: several `tokenops api serve` processes bind
    the same port and the kernel spreads the connections among them; each process has
    its own producer (and its own file in the shared spool directory)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.setblocking(False)
    return sock
