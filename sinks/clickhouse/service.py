"""`run_sink`: the process behind `tokenops sink clickhouse`, from open store to shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry

from tokenops.settings import KafkaSettings, TopicSettings, WatermarkSettings, load
from tokenops.sinks.clickhouse.errors import ClickHouseError, StoreBusyError
from tokenops.sinks.clickhouse.metrics import SinkMetrics
from tokenops.sinks.clickhouse.migrations import migrate
from tokenops.sinks.clickhouse.prices import load_prices, sync_prices
from tokenops.sinks.clickhouse.rows import Batch
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.sink import BatchWriter, ClickHouseSink
from tokenops.sinks.clickhouse.store import ClickHouseStore, open_store
from tokenops.sinks.clickhouse.watermarks import WatermarkTracker
from tokenops.sinks.clickhouse.writer import ClickHouseWriter, Closing

logger = logging.getLogger(__name__)


class Listener(Protocol):
    """The sink's HTTP listener: /metrics, /healthz and the billing reads. It is built
    above the sinks' layer (tokenops/api/sink_listener.py, the app of `tokenops api`),
    so the command that runs the sink passes its factory in."""

    url: str
    token: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


# (the open store, the lock its writes take, the sink's registry) -> the listener
ListenerFactory = Callable[[ClickHouseStore, threading.Lock, CollectorRegistry], Listener]


class LockedWriter:
    """Serialises the sink's writes with the endpoint's reads on the one shared client."""

    def __init__(self, writer: BatchWriter, lock: threading.Lock) -> None:
        self.writer, self.lock = writer, lock

    def write(self, batch: Batch) -> None:
        with self.lock:
            self.writer.write(batch)


class FaultFileWriter:
    """Fails every write while `fault_file` exists (`TOKENOPS_CLICKHOUSE_FAULT_FILE`).

    A fault-injection point for tests of a real sink process (the chaos test makes the
    store fail for 30 s); the failure takes the same path as a real storage error.
    """

    def __init__(self, writer: BatchWriter, fault_file: Path) -> None:
        self.writer, self.fault_file = writer, fault_file

    def write(self, batch: Batch) -> None:
        if self.fault_file.exists():
            raise ConnectionError(f"injected storage failure ({self.fault_file} exists)")
        self.writer.write(batch)


def prepare_store(store: ClickHouseStore, prices_file: Path | None) -> list[str]:
    """Migrate and load prices; returns what changed, for the caller to report."""
    settings = store.settings
    done = migrate(store.client, settings.raw_events_retention_days, settings.schema_variant)
    book = load_prices(prices_file or settings.prices_file)
    if sync_prices(store.client, book):
        done.append(f"prices: loaded {len(book.prices)} prices (digest {book.digest})")
    return done


def run_sink(
    kafka: KafkaSettings,
    topics: TopicSettings,
    settings: ClickHouseSettings,
    state_dir: Path,
    *,
    stop: threading.Event | None = None,
    registry: CollectorRegistry | None = None,
    listener: ListenerFactory | None = None,
) -> None:
    """Open the store, migrate it, serve /metrics and queries (`listener`, when
    `http_port` is set), and sink until `stop`."""
    registry = registry or CollectorRegistry()
    stop = stop or threading.Event()
    store = _open_when_reachable(settings, state_dir, stop)
    endpoint: Listener | None = None
    try:
        for change in prepare_store(store, settings.prices_file):
            logger.info("store prepared: %s", change)
        lock = threading.Lock()
        if settings.http_port and listener is not None:
            endpoint = listener(store, lock, registry)
            endpoint.start()
            store.advertise(endpoint.url, endpoint.token)
        # The worker's window rules: the sink judges partitions idle and months closed
        # as the worker closes windows.
        rules = load(WatermarkSettings)
        closing = Closing(settings.zone_of, rules.allowed_lateness_s)
        writer: BatchWriter = LockedWriter(
            ClickHouseWriter(store.client, settings.insert_settings(), closing), lock
        )
        if settings.fault_file is not None:
            writer = FaultFileWriter(writer, settings.fault_file)
        tracker = WatermarkTracker(rules.allowed_lateness_s, rules.idle_timeout_s)
        sink = ClickHouseSink(kafka, topics, settings, writer, SinkMetrics(registry), stop, tracker)
        logger.info("clickhouse sink writing to %s", store.description)
        sink.run()
    finally:
        if endpoint is not None:
            endpoint.stop()
        store.close()


def _open_when_reachable(
    settings: ClickHouseSettings, state_dir: Path, stop: threading.Event
) -> ClickHouseStore:
    """Open the store; a server that is down at start is waited for with backoff (the
    sink blocks rather than exits). An embedded store that cannot open fails at once."""
    delay_ms = settings.retry_initial_ms
    while True:
        try:
            return open_store(settings, state_dir)
        except StoreBusyError:
            raise
        except ClickHouseError as exc:
            if settings.embedded_path(state_dir) is not None or stop.is_set():
                raise
            logger.warning("cannot reach ClickHouse, retry_in_ms=%d: %s", delay_ms, exc)
            if stop.wait(delay_ms / 1000):
                raise
            delay_ms = min(delay_ms * 2, settings.retry_max_ms)
