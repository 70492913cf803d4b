"""`tokenops api serve`: the producer, the app and uvicorn in one process.

Starlette on uvicorn (see docs/benchmarks.md for the measurement behind the choice).
The producer is closed on shutdown: what the broker has not acknowledged is spooled.
"""

from __future__ import annotations

import logging

import uvicorn
from prometheus_client import CollectorRegistry

from tokenops.api.app import create_app
from tokenops.api.keys import KeyStore, read_entries
from tokenops.api.settings import ApiSettings
from tokenops.api.state import ApiMetrics, ApiState
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.producers.http import DurableSender
from tokenops.settings import KafkaSettings

logger = logging.getLogger(__name__)


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


def serve(settings: ApiSettings, kafka: KafkaSettings, producer_settings: ProducerSettings) -> None:
    registry = CollectorRegistry()
    # The server answers a full queue with 503 at once rather than holding the request.
    producer_settings = producer_settings.model_copy(update={"backpressure_timeout_s": 0.0})
    producer = UsageProducer(kafka, producer_settings, registry=registry)
    try:
        app = create_app(build_state(settings, producer, registry))
        logger.info("api listening host=%s port=%d", settings.host, settings.port)
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            limit_concurrency=1024,
            timeout_keep_alive=15,
        )
    finally:
        producer.close()
