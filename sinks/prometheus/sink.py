"""`PrometheusSink`: consumes the compacted topics and serves `/metrics`.

On start the sink reads the quota topic to its end (so tenants with quotas get labels
first), then the aggregates, quota-alerts and dead-letter topics from their beginning,
with no consumer group: every start rebuilds the same counters and gauges from the
compacted topics, so values are right again without new traffic. Offsets are never
committed. A second thread polls the worker group's committed offsets for the lag gauge.

The consuming thread is `sinks/base.py`'s loop: each `consume` is a batch, written into
the exported state under the scrape lock, with nothing to commit. A record it cannot
read is counted by topic role and reason
(`tokenops_prometheus_sink_skipped_records_total`) and logged with a sample.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError

from tokenops.deadletters import DLQ_FIELD, DLQ_OFFSET, DLQ_PARTITION, DLQ_TOPIC
from tokenops.listen import SafeHTTPServer, metrics_route, parse_allowed_hosts
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.quota import QuotaAlert
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.sinks.base import UNREADABLE, BatchingSink, Skip, SkippedRecords
from tokenops.sinks.prometheus.collector import StateCollector
from tokenops.sinks.prometheus.lag import LagPoller
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.sinks.prometheus.state import ExporterState

logger = logging.getLogger(__name__)
_EVICT_EVERY_S = 600.0


class PrometheusSink:
    def __init__(
        self,
        kafka: KafkaSettings,
        topics: TopicSettings,
        settings: PrometheusSinkSettings,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kafka, self.topics, self.settings = kafka, topics, settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.state = ExporterState(
            max_tenants=settings.max_tenants,
            max_models=settings.max_models,
            correction_horizon_ms=settings.correction_horizon_s * 1000,
            usage_retention_ms=settings.usage_retention_s * 1000,
            bootstrapping=True,
        )
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: SafeHTTPServer | None = None
        self.errors = Counter(
            "tokenops_prometheus_sink_errors",
            "Records the sink could not read or decode, and Kafka errors, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.skipped = SkippedRecords(
            Counter(
                "tokenops_prometheus_sink_skipped_records",
                "Records the sink could not read, by topic role and reason.",
                ["role", "reason"],
                registry=self.registry,
            ),
            logger,
        )
        self.close_delay = Histogram(
            "tokenops_window_close_delay_seconds",
            "Wall-clock delay from a window's end to its first (revision 1) record.",
            buckets=(1, 5, 15, 30, 45, 60, 90, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.lag = LagPoller(kafka, topics.usage, settings, self.errors, self._stop)
        self.registry.register(
            StateCollector(self.state, self.lock, lambda: self.lag.lag, self.ready.is_set, clock)
        )

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self.settings.port

    def start(self) -> None:
        """Serve /metrics and start consuming; returns at once (see `ready`)."""
        self._server = SafeHTTPServer(
            "prom-sink-http",
            self.settings.host,
            self.settings.port,
            {"/metrics": metrics_route(self.registry)},
            allowed_hosts=parse_allowed_hosts(self.settings.allowed_hosts),
        )
        self._server.start()
        for target, name in ((self._consume, "prom-sink-consume"), (self.lag.run, "prom-lag")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("prometheus sink listening port=%d", self.port)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._server is not None:
            self._server.stop()

    def _consumer(self, group: str, **extra: Any) -> Consumer:
        config = {**self.kafka.librdkafka(), "group.id": group, "enable.auto.commit": False}
        return Consumer({**config, **extra})

    def _partitions(self, consumer: Consumer, topic: str) -> list[TopicPartition]:
        while not self._stop.is_set():
            try:
                found = consumer.list_topics(topic, timeout=10).topics.get(topic)
            except KafkaException as exc:  # the broker is unreachable: keep trying
                self.errors.labels("kafka").inc()
                logger.warning("cannot list topic %s: %s", topic, exc)
                found = None
            if found is not None and found.error is None and found.partitions:
                return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in found.partitions]
            time.sleep(1)  # the topic is created by `tokenops topics create` or the worker
        return []

    def _consume(self) -> None:
        try:
            self._consume_until_stopped()
        except Exception:  # a bug: say so on /metrics (ready 0 -> an alert), not just in logs
            self.ready.clear()
            self.errors.labels("internal").inc()
            logger.exception("prometheus sink stopped consuming; its values are frozen")

    def _consume_until_stopped(self) -> None:
        _TopicsReader(self).run()

    def _handle(self, message: Message, pending: set[tuple[str, int]]) -> Skip | None:
        """Apply one record to the state; a `Skip` for a record it cannot read."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard((message.topic() or "", message.partition() or 0))
            else:
                self.errors.labels("kafka").inc()
                logger.warning("prometheus sink kafka error %s", error.str())
            return None
        topic, value = message.topic(), message.value()
        try:
            if topic == self.topics.quotas:
                self.state.on_quota(message.key(), value)
            elif value is None:
                return None
            elif topic == self.topics.aggregates:
                self.state.on_window(WindowTotals.from_bytes(value))
            elif topic == self.topics.quota_alerts:
                self.state.on_alert(QuotaAlert.from_bytes(value))
            elif topic == self.topics.dead_letter:
                headers = _text_headers(message)
                origin = tuple(headers.get(h, "") for h in (DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET))
                self.state.on_dead_letter(headers.get(DLQ_FIELD), origin)
        except (ValidationError, ValueError) as exc:
            self.errors.labels("decode").inc()
            where = f"topic={topic} partition={message.partition()} offset={message.offset()}"
            return Skip(UNREADABLE, f"{where}: {exc}")
        return None

    def role(self, topic: str | None) -> str:
        """The topic's role, a bounded label value."""
        t = self.topics
        roles = {t.quotas: "quotas", t.aggregates: "aggregates", t.quota_alerts: "quota_alerts"}
        return roles.get(topic or "", "dead_letter")


class _TopicsReader(BatchingSink[list[Message], None]):
    """The consuming thread's loop: the quota topic to its end first, then the others from
    their beginning; each `consume` is a batch applied to the state. Nothing is committed:
    every start rebuilds the state from the compacted topics."""

    def __init__(self, sink: PrometheusSink) -> None:
        super().__init__(sink._stop)
        self.sink = sink
        self.messages: list[Message] = []
        self.consumer = sink._consumer(
            f"tokenops-prometheus-sink-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
        )
        self.pending: set[tuple[str, int]] = set()
        self.rest_assigned, self.evicted_at = False, time.monotonic()

    def start(self) -> None:
        quota_parts = self.sink._partitions(self.consumer, self.sink.topics.quotas)
        self.consumer.assign(quota_parts)
        self.pending = {(p.topic, p.partition) for p in quota_parts}

    def collect(self) -> None:
        if not self.pending and not self.rest_assigned:
            t, sink = self.sink.topics, self.sink
            rest = [sink._partitions(self.consumer, x) for x in (t.aggregates, t.quota_alerts)]
            rest.append(sink._partitions(self.consumer, t.dead_letter))
            parts = [p for group in rest for p in group]
            self.consumer.incremental_assign(parts)
            self.pending, self.rest_assigned = {(p.topic, p.partition) for p in parts}, True
        self.messages = self.consumer.consume(1000, timeout=0.5)

    def take(self) -> tuple[list[Message], None]:
        messages, self.messages = self.messages, []
        return messages, None

    def write(self, batch: list[Message]) -> bool:
        sink, state = self.sink, self.sink.state
        skips: dict[str, list[Skip]] = {}
        with sink.lock:
            for message in batch:
                skip = sink._handle(message, self.pending)
                if skip is not None:
                    skips.setdefault(sink.role(message.topic()), []).append(skip)
            delays, state.close_delays_s = state.close_delays_s, []
        for role, skipped in skips.items():
            sink.skipped.skipped(role, skipped)
        for delay in delays:
            sink.close_delay.observe(delay)
        if self.rest_assigned and not self.pending and not sink.ready.is_set():
            with sink.lock:
                state.evict()
                state.finish_bootstrap()
            sink.ready.set()
            self.evicted_at = time.monotonic()
            logger.info("prometheus sink caught up with its topics")
        if sink.ready.is_set() and time.monotonic() - self.evicted_at > _EVICT_EVERY_S:
            with sink.lock:
                state.evict()
            self.evicted_at = time.monotonic()
        return True

    def close(self) -> None:
        self.consumer.close()


def _text_headers(message: Message) -> dict[str, str]:
    pairs: Any = message.headers() or []
    return {
        str(k): v.decode(errors="replace") if isinstance(v, bytes) else str(v or "")
        for k, v in pairs
    }
