"""Publishing quota definitions to the compacted quota topic, and reading them back.

The topic has one partition (see `tokenops.topics`), so a reader that consumes it to the
end has every quota in force; later records of a key replace earlier ones and a
tombstone deletes the quota.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from tokenops.quotas.book import QuotaBook
from tokenops.quotas.errors import QuotaError
from tokenops.schemas.quota import QuotaDefinition, quota_key
from tokenops.settings import KafkaSettings, TopicSettings

logger = logging.getLogger(__name__)


def publish_quotas(
    kafka: KafkaSettings, topics: TopicSettings, quotas: Iterable[QuotaDefinition]
) -> int:
    """Write each quota (key `tenant|name`); returns how many were acknowledged."""
    return _produce(kafka, topics.quotas, [(q.key, q.to_bytes()) for q in quotas])


def delete_quota(kafka: KafkaSettings, topics: TopicSettings, tenant_id: str, name: str) -> None:
    """Write the tombstone that deletes quota `name` of `tenant_id`."""
    _produce(kafka, topics.quotas, [(quota_key(tenant_id, name), None)])


def read_quota_book(
    kafka: KafkaSettings, topics: TopicSettings, *, timeout_s: float = 30.0
) -> QuotaBook:
    """Every quota in force: the quota topic read from the beginning to its end."""
    book = QuotaBook()
    consumer = quota_consumer(kafka, "reader")
    try:
        metadata = consumer.list_topics(topics.quotas, timeout=timeout_s).topics[topics.quotas]
        if metadata.error is not None:
            raise QuotaError(f"cannot read quota topic {topics.quotas}: {metadata.error.str()}")
        partitions = [
            TopicPartition(topics.quotas, p, OFFSET_BEGINNING) for p in metadata.partitions
        ]
        pending = set(metadata.partitions)
        for p in list(pending):
            low, high = consumer.get_watermark_offsets(TopicPartition(topics.quotas, p), timeout_s)
            if high <= low:
                pending.discard(p)
        consumer.assign(partitions)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise QuotaError(f"timed out reading quota topic {topics.quotas}")
            problem = apply_next(consumer, book)
            if problem is not None and _code(problem) == KafkaError._PARTITION_EOF:
                pending.discard(problem.partition() or 0)
    except KafkaException as exc:
        raise QuotaError(f"cannot read quota topic {topics.quotas}: {exc.args[0].str()}") from exc
    finally:
        consumer.close()
    return book


def quota_consumer(kafka: KafkaSettings, purpose: str) -> Consumer:
    """A consumer of the quota topic under a group of its own (it commits nothing: every
    reader starts from the beginning) that reports each partition's end."""
    return Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"tokenops-quota-{purpose}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )


def apply_next(consumer: Consumer, book: QuotaBook, timeout_s: float = 0.5) -> Message | None:
    """Poll once and apply a quota record to `book`; returns the message if it carried an
    error instead (a partition's end among them), else None."""
    message = consumer.poll(timeout_s)
    if message is None:
        return None
    if message.error() is not None:
        return message
    book.apply_record(message.key(), message.value())
    return None


def _code(message: Message) -> int:
    error = message.error()
    return error.code() if error is not None else 0


def _produce(kafka: KafkaSettings, topic: str, records: list[tuple[str, bytes | None]]) -> int:
    producer = Producer({**kafka.librdkafka(), "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(err: object, _message: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in records:
        producer.produce(topic, value, key=key.encode(), on_delivery=delivered)
    if producer.flush(30) != 0:
        raise QuotaError(
            f"quota records to {topic} not acknowledged within 30 s",
            hint=f"check that Kafka at {kafka.bootstrap_servers} is up (`tokenops stack status`)",
        )
    if failures:
        raise QuotaError(f"cannot write quota records to {topic}: {failures[0]}")
    return len(records)
