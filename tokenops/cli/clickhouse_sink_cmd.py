"""`tokenops sink clickhouse`: window totals and raw events from Kafka into ClickHouse."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from tokenops.settings import KafkaSettings, StackSettings, TopicSettings, load
from tokenops.sinks.clickhouse import ClickHouseSettings
from tokenops.sinks.clickhouse.service import run_sink


def sink() -> None:
    """Consume the aggregates topic (and the usage and dead-letter topics, for raw events)
    into ClickHouse; raw events follow the worker's verdicts (its dead letters).

    Migrates the store and loads deploy/prices.yaml first. Offsets are committed only
    after each batch is durable; while ClickHouse is down the sink retries and blocks.
    Serves /metrics and the read-only queries `tokenops usage|invoice|reconcile` use while
    this process holds the embedded store (TOKENOPS_CLICKHOUSE_HTTP_PORT). Stops cleanly
    on SIGINT/SIGTERM.
    """
    # The sink logs every failed write itself, once, with the attempt and the backoff.
    for chatty in ("urllib3", "clickhouse_connect"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_sink(
        load(KafkaSettings),
        load(TopicSettings),
        load(ClickHouseSettings),
        load(StackSettings).state_dir,
        stop=stop,
    )
