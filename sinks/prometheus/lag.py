"""The worker group's consumer lag on the usage topic, polled for the Prometheus sink.

A consumer with the worker's group id that never subscribes can read the group's
committed offsets without joining it; lag is the high watermark minus the committed
offset (or minus the low watermark while nothing is committed).
"""

from __future__ import annotations

import logging
import threading
import uuid

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import Counter

from tokenops.settings import KafkaSettings
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings

logger = logging.getLogger(__name__)
LagKey = tuple[str, str, int]  # (group, topic, partition)


class LagPoller:
    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        settings: PrometheusSinkSettings,
        errors: Counter,
        stop: threading.Event,
    ) -> None:
        self.kafka, self.topic, self.group = kafka, topic, settings.worker_group
        self.interval_s, self.errors, self.stop = settings.lag_interval_s, errors, stop
        self.lag: dict[LagKey, int] = {}  # replaced whole on each poll; read by scrapes

    def run(self) -> None:
        """Poll until `stop` is set; a broker hiccup is counted, never fatal."""
        config = {**self.kafka.librdkafka(), "group.id": self.group, "enable.auto.commit": False}
        consumer = Consumer({**config, "client.id": f"tokenops-lag-{uuid.uuid4().hex[:6]}"})
        polled = False
        try:
            while not self.stop.is_set():
                try:
                    self.lag = self._read(consumer)
                    polled = True
                except Exception as exc:
                    # The group's coordinator may still be loading at start: count only
                    # failures after a first success.
                    if polled:
                        self.errors.labels("lag").inc()
                    logger.warning("cannot read consumer lag group=%s error=%s", self.group, exc)
                self.stop.wait(self.interval_s)
        finally:
            consumer.close()

    def _read(self, consumer: Consumer) -> dict[LagKey, int]:
        found = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        if found is None or found.error is not None:
            return {}
        parts = [TopicPartition(self.topic, p) for p in found.partitions]
        lag = {}
        for committed in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(committed, timeout=10, cached=False)
            position = committed.offset if committed.offset >= 0 else low
            lag[(self.group, self.topic, committed.partition)] = max(0, high - position)
        return lag
