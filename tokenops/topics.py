"""The topics tokenops owns, with the retention each one needs, created idempotently;
and `read_to_end`, which reads a topic back as it is now."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tokenops.errors import TokenopsError
from tokenops.reach import cluster_metadata
from tokenops.settings import KafkaSettings, TopicSettings

logger = logging.getLogger(__name__)

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def pipeline_topics(topics: TopicSettings) -> list[TopicSpec]:
    """Every topic of the pipeline: raw usage is kept for replay, results are compacted.

    Usage records are stamped by the broker (LogAppendTime): the worker judges event
    times by that clock, which no producer sets (streams/routing.py `event_clock`)."""
    n, rf = topics.partitions, topics.replication_factor
    compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    usage = {"retention.ms": str(7 * _DAY_MS), "message.timestamp.type": "LogAppendTime"}
    return [
        TopicSpec(topics.usage, n, rf, usage),
        TopicSpec(topics.aggregates, n, rf, compacted),
        TopicSpec(topics.dead_letter, n, rf, {"retention.ms": str(30 * _DAY_MS)}),
        TopicSpec(topics.quota_alerts, n, rf, {"retention.ms": str(30 * _DAY_MS)}),
        TopicSpec(topics.quotas, 1, rf, compacted),
    ]


def ensure_topics(
    kafka: KafkaSettings, specs: list[TopicSpec], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created."""
    existing = set(cluster_metadata(kafka, timeout_s=timeout_s).topics)  # or a clear refusal
    admin = AdminClient(kafka.librdkafka())
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config) for s in missing],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a racing creator is fine
                raise TokenopsError(f"cannot create topic {name}: {exc.args[0].str()}") from exc
    logger.info("created topics %s", ",".join(sorted(created)))
    return created


def read_to_end(kafka: KafkaSettings, topic: str, *, timeout_s: float = 60.0) -> list[Message]:
    """Every record of `topic` below each partition's end offset when the call starts,
    each partition's in order; what is produced meanwhile is left out.

    Raises TokenopsError if the records are not all read within `timeout_s`. A partition
    whose end is a transaction marker (no record) counts as read once the consumer's
    position passes it."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"tokenops-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    messages: list[Message] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TokenopsError(
                    f"could not read topic {topic} to its end within {timeout_s:.0f} s "
                    f"(partitions left: {sorted(pending)})",
                    hint="check that the broker is up: tokenops stack status",
                )
            batch = consumer.consume(10_000, timeout=0.5)
            for message in batch:
                partition, offset = message.partition(), message.offset()
                if message.error() is not None or partition is None or offset is None:
                    continue
                if offset < ends[partition]:
                    messages.append(message)
                if offset + 1 >= ends[partition]:
                    pending.discard(partition)
            if not batch and pending:  # ends that are transaction markers, not records
                positions = consumer.position([TopicPartition(topic, p) for p in pending])
                pending -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    finally:
        consumer.close()
    return messages
