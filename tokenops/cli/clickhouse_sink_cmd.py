"""`tokenops sink clickhouse`: window totals and raw events from Kafka into ClickHouse."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from types import FrameType

from prometheus_client import CollectorRegistry

from tokenops.progress_log import ProgressLog
from tokenops.settings import KafkaSettings, LogSettings, StackSettings, TopicSettings, load
from tokenops.sinks.clickhouse import ClickHouseSettings
from tokenops.sinks.clickhouse.service import run_sink
from tokenops.sinks.clickhouse.sink import raise_young_gc_threshold
from tokenops.stack.targets import advertise, withdraw


def sink() -> None:
    """Consume the aggregates topic (and the usage and dead-letter topics, for raw events)
    into ClickHouse; raw events follow the worker's verdicts (its dead letters).

    Migrates the store and loads deploy/prices.yaml first. Offsets are committed only
    after each batch is durable; while ClickHouse is down the sink retries and blocks.
    Serves /metrics, /healthz and the read-only queries `tokenops usage|invoice|reconcile|
    sql` use while this process holds the embedded store (TOKENOPS_CLICKHOUSE_HTTP_PORT;
    the queries take the per-run token of the store's owner file, or an admin API key).
    Stops cleanly on SIGINT/SIGTERM.
    """
    # The sink logs every failed write itself, once, with the attempt and the backoff.
    for chatty in ("urllib3", "clickhouse_connect"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    stop = threading.Event()
    stopping: list[str] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    raise_young_gc_threshold()
    settings, state_dir = load(ClickHouseSettings), load(StackSettings).state_dir
    registry = CollectorRegistry()
    progress = ProgressLog(
        "clickhouse sink", registry, CLICKHOUSE_SINK_FIGURES, load(LogSettings).progress_every_s
    ).start()
    port = settings.http_port
    target = advertise(state_dir, "tokenops-clickhouse-sink", port) if port else None
    # Imported here: the HTTP stack loads only in the processes that serve it.
    from tokenops.api.settings import ApiSettings
    from tokenops.api.sink_listener import SinkListener

    keys_file = load(ApiSettings).keys_file  # its admin keys are taken besides the run token
    # Everything imported so far lives as long as the process: out of the collector's
    # sight, so the HTTP stack's modules do not lengthen the sink's full collections.
    gc.freeze()
    try:
        run_sink(
            load(KafkaSettings), load(TopicSettings), settings, state_dir,
            stop=stop, registry=registry,
            listener=lambda store, lock, reg: SinkListener(store, lock, reg, keys_file),
        )  # fmt: skip
    finally:
        withdraw(target)
    progress.stop(stopping[0] if stopping else "end")


# What the ClickHouse sink's progress line reports, from its /metrics.
CLICKHOUSE_SINK_FIGURES = {
    "records": "tokenops_clickhouse_sink_records_total",
    "rows": "tokenops_clickhouse_sink_rows_total",
    "batches": "tokenops_clickhouse_sink_batches_total",
    "invalid": "tokenops_clickhouse_sink_invalid_records_total",
    "write_failures": "tokenops_clickhouse_sink_write_failures_total",
    "blocked": "tokenops_clickhouse_sink_blocked",
}
