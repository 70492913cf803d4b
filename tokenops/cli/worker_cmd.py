"""`tokenops worker`: run the stream worker (Faust) until stopped."""

from __future__ import annotations

import gc
import logging

from prometheus_client import CollectorRegistry

from tokenops.settings import KafkaSettings, TopicSettings, load
from tokenops.streams.settings import WorkerSettings

logger = logging.getLogger(__name__)


def worker() -> None:
    """Aggregate usage events into exact per-tenant, per-model window totals.

    Reads TOKENOPS_WORKER_*, TOKENOPS_KAFKA_* and TOKENOPS_TOPIC_*; serves /metrics and
    /healthz on TOKENOPS_WORKER_HTTP_HOST (loopback by default) and _HTTP_PORT. Run several
    with the same app id to share the partitions; a stopped or killed worker's partitions
    move to the others.
    """
    import faust

    from tokenops.streams.app import create_app
    from tokenops.streams.metrics import serve_http
    from tokenops.streams.signing import signature_check, worker_decoder
    from tokenops.streams.topics import ensure_worker_topics

    settings, kafka, topics = load(WorkerSettings), load(KafkaSettings), load(TopicSettings)
    check = signature_check(settings)  # None unless TOKENOPS_WORKER_SIGNATURE_MODE is set
    ensure_worker_topics(settings, kafka, topics)

    decode = worker_decoder(check)  # records as columns; events only to check signatures

    from tokenops.streams.quota_processor import quota_processors

    registry = CollectorRegistry()
    quotas, quota_watcher = quota_processors(kafka, topics, registry)  # in the worker's state
    quota_watcher.start()
    app, stream_worker = create_app(settings, kafka, topics, registry, decode, [quotas])
    if settings.http_port:
        serve_http(
            registry,
            settings.http_host,
            settings.http_port,
            settings.http_allowed_hosts,
            stream_worker.ready,
        )
    # v1 records (one JSON object per event) and the exact per-event paths allocate
    # short-lived containers per event; with the default threshold (700) the collector
    # would run every few records (measured then: ~10-15% more events/s with this).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    level = logging.getLevelName(logging.getLogger().level)
    faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False).execute_from_commandline()
