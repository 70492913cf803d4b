"""After a crash: which quota crossings did the interrupted batch already publish?

The worker publishes a batch's outputs before the state delta that records them; a crash
in between replays the batch, and the quota evaluator decides the same crossings again.
`published_alert_keys` reads the quota-alerts topic from a point in time (the recovered
state's `applied_at_ms`, less a margin) so the processor can leave those out.
"""

from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

from tokenops.settings import KafkaSettings

logger = logging.getLogger(__name__)


def published_alert_keys(
    kafka: KafkaSettings, topic: str, since_ms: int, *, timeout_s: float = 15.0
) -> set[str]:
    """Keys of the quota-alerts records written at or after `since_ms` (record timestamps).

    Reads every partition up to its end as of the call. On a Kafka failure it returns
    what it has and logs: at worst a crossing is published twice, never lost.
    """
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"tokenops-quota-replay-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    keys: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        found = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if found is None or found.error is not None:
            return keys
        wanted = [TopicPartition(topic, p, since_ms) for p in found.partitions]
        ends: dict[int, int] = {}
        starts = consumer.offsets_for_times(wanted, timeout=timeout_s)
        for start in starts:
            _, high = consumer.get_watermark_offsets(start, timeout=timeout_s)
            if 0 <= start.offset < high:
                ends[start.partition] = high
        consumer.assign([s for s in starts if s.partition in ends])
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is not None:
                    continue
                keys.add((message.key() or b"").decode())
                if (message.offset() or 0) + 1 >= ends.get(message.partition() or 0, 0):
                    ends.pop(message.partition() or 0, None)
        if ends:
            logger.warning("quota alerts not fully read within %.0f s topic=%s", timeout_s, topic)
    except KafkaException as exc:
        logger.warning("cannot read published quota alerts topic=%s error=%s", topic, exc)
    finally:
        consumer.close()
    return keys
