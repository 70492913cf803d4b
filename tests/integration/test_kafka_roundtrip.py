"""The broker started by the fixture is a real Kafka: bytes go in and come back out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from tokenops.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_produce_and_consume_through_the_real_broker(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=3)
    producer = Producer({**kafka_settings.librdkafka(), "enable.idempotence": True})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(100)}
    for key, value in sent.items():
        producer.produce(topic, value, key=key)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            **kafka_settings.librdkafka(),
            "group.id": f"roundtrip-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    try:
        for _ in range(200):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            received[message.key()] = message.value()
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert received == sent


def test_murmur2_partitioner_matches_the_java_client(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    """Faust (aiokafka) and the Java client place keys by murmur2; so must our producers."""
    from aiokafka.partitioner import DefaultPartitioner

    topic = new_topic(partitions=4)
    producer = Producer({**kafka_settings.librdkafka(), "partitioner": "murmur2_random"})
    placed: dict[bytes, int] = {}

    def remember(err: object, message: object) -> None:
        assert err is None
        placed[message.key()] = message.partition()  # type: ignore[attr-defined]

    keys = [f"tenant-{i}".encode() for i in range(50)]
    for key in keys:
        producer.produce(topic, b"x", key=key, on_delivery=remember)
    assert producer.flush(30) == 0
    partitioner = DefaultPartitioner()
    for key in keys:
        assert placed[key] == partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3])
