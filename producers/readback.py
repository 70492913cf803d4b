"""Read a usage topic back from the beginning: what the broker holds, decoded.

For tests, the simulator's `--verify` and the demo: every record is decoded with the
contract's `decode_record`; records it rejects are kept as raw bytes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from tokenops.schemas import InvalidEventError, UsageEvent, decode_record
from tokenops.settings import KafkaSettings


@dataclass
class TopicContents:
    events: list[UsageEvent] = field(default_factory=list)
    invalid: list[bytes] = field(default_factory=list)  # values decode_record rejected
    records: int = 0


def read_topic(kafka: KafkaSettings, topic: str, *, timeout_s: float = 60.0) -> TopicContents:
    """Every record up to the end offsets seen when the call starts (or `timeout_s`)."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"tokenops-readback-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    contents = TopicContents()
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = list(metadata.topics[topic].partitions)
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(10_000, timeout=0.5):
                if message.error():
                    continue
                contents.records += 1
                value = message.value() or b""
                try:
                    contents.events.extend(decode_record(value, message.headers()))  # type: ignore[arg-type]
                except InvalidEventError:
                    contents.invalid.append(value)
                partition, offset = message.partition(), message.offset() or 0
                if offset + 1 >= ends.get(partition or 0, 0):
                    ends.pop(partition or 0, None)
    finally:
        consumer.close()
    return contents
