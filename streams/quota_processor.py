"""The quota evaluator as a worker partition processor, and the quota topic it follows.

`quota_processors(kafka, topics)` gives the worker what it needs: a factory of
`QuotaProcessor`s (one per input partition, sharing one `QuotaBook`) and a
`QuotaWatcher` thread that keeps the book current from the compacted quota topic.
Crossings are published to `TopicSettings().quota_alerts` with the key
`tenant|quota|period_start_ms|threshold_pct`. The worker publishes outputs before the
state delta that records them becomes durable, so after a crash the replayed batch
decides the same crossings again. To keep one record per crossing, a recovered
processor first reads the keys published since its state was written
(`published_alert_keys`) and does not publish those again; their state still advances.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from tokenops.quotas.book import QuotaBook
from tokenops.quotas.evaluator import QuotaEvaluator
from tokenops.quotas.replay import published_alert_keys
from tokenops.quotas.topic import apply_next, quota_consumer
from tokenops.schemas.columns import EventColumns
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.streams.processors import OutputRecord, ProcessorFactory
from tokenops.streams.quota_metrics import QuotaMetrics

logger = logging.getLogger(__name__)
_HEADERS = [("content-type", b"application/json")]


PublishedKeys = Callable[[int], set[str]]
# A batch's alerts are produced after the batch began, so records of the batch that was
# interrupted are no older than the state's `applied_at_ms` minus clock skew.
_REPLAY_MARGIN_MS = 60_000


class QuotaProcessor:
    """Quota usage and crossings of one input partition (a `PartitionProcessor`)."""

    name = "quotas"

    def __init__(
        self,
        book: QuotaBook,
        alerts_topic: str,
        published: PublishedKeys | None = None,
        metrics: QuotaMetrics | None = None,
    ) -> None:
        self.evaluator = QuotaEvaluator(book)
        self.alerts_topic = alerts_topic
        self.published = published
        self.metrics = metrics
        self.already_published: set[str] = set()

    def load(self, state: Mapping[str, Any]) -> None:
        """Recover the state; then learn which crossings were published after it was written."""
        self.evaluator.load(state)
        since = self.evaluator.applied_at_ms
        if self.published is not None and since:
            self.already_published = self.published(since - _REPLAY_MARGIN_MS)

    def apply(
        self, columns: Sequence[EventColumns], *, now_ms: int
    ) -> tuple[list[OutputRecord], dict[str, Any]]:
        """Count a batch (one `EventColumns` per record, offset order); its alert records."""
        late_before = self.evaluator.stats["late_ignored"]
        alerts, delta = self.evaluator.apply(columns, now_ms=now_ms)
        replayed = [a for a in alerts if a.key in self.already_published]
        if replayed:
            for alert in replayed:
                logger.info("quota crossing already published key=%s", alert.key)
            alerts = [a for a in alerts if a.key not in self.already_published]
        if self.metrics is not None:
            self.metrics.crossings.inc(len(alerts))
            self.metrics.replayed.inc(len(replayed))
            self.metrics.late_ignored.inc(self.evaluator.stats["late_ignored"] - late_before)
        for alert in alerts:
            logger.info(
                "quota threshold crossed tenant=%s quota=%s threshold_pct=%d usage=%s limit=%s",
                alert.tenant_id,
                alert.quota,
                alert.threshold_pct,
                alert.usage,
                alert.limit,
            )
        records = [
            OutputRecord(self.alerts_topic, a.key.encode(), a.to_bytes(), list(_HEADERS))
            for a in alerts
        ]
        return records, delta


class QuotaWatcher:
    """A daemon thread applying every quota-topic record to `book`, from the beginning."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings, book: QuotaBook) -> None:
        self.kafka, self.topic, self.book = kafka, topics.quotas, book
        self.loaded = threading.Event()  # set once the topic was read to its end
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quota-watcher", daemon=True)

    def start(self, *, wait_s: float = 30.0) -> None:
        self._thread.start()
        if not self.loaded.wait(wait_s):
            logger.warning("quota topic %s not read to its end within %.0f s", self.topic, wait_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        consumer = quota_consumer(self.kafka, "watcher")
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        try:
            while not self._stop.is_set():
                problem = apply_next(consumer, self.book)
                error = problem.error() if problem is not None else None
                if error is None:
                    continue
                if error.code() == KafkaError._PARTITION_EOF:
                    self.loaded.set()
                elif error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    logger.warning("quota topic %s: %s", self.topic, error.str())
        finally:
            consumer.close()


def quota_processors(
    kafka: KafkaSettings, topics: TopicSettings, registry: CollectorRegistry | None = None
) -> tuple[ProcessorFactory, QuotaWatcher]:
    """The worker's quota processor factory and the (not yet started) quota watcher."""
    book = QuotaBook()
    watcher = QuotaWatcher(kafka, topics, book)
    metrics = QuotaMetrics(registry, book.__len__) if registry is not None else None

    def published(since_ms: int) -> set[str]:
        return published_alert_keys(kafka, topics.quota_alerts, since_ms)

    def factory(_partition: int) -> QuotaProcessor:
        return QuotaProcessor(book, topics.quota_alerts, published, metrics)

    return factory, watcher
