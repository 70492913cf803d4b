"""UsageProducer against the real broker: round trip, spool across a broker outage."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.schemas import (
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    InvalidEventError,
    UsageEvent,
    decode_record,
)
from tokenops.schemas.signing import Keyring, SigningKey
from tokenops.settings import KafkaSettings
from tokenops.simulate.readback import read_topic
from tokenops.stack.kafka import KafkaBroker

pytestmark = pytest.mark.integration


def fields(i: int, tenant: str = "acme", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{i}",
        "source": "//node/test/gpu-1",
        "time": datetime.now(UTC),
        "tenant_id": tenant,
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "input_tokens": 100 + i,
        "output_tokens": 10,
        **extra,
    }


def producer_settings(topic: str, spool: Path, **overrides: Any) -> ProducerSettings:
    return ProducerSettings(topic=topic, spool_dir=spool, **overrides)


def test_events_round_trip_to_equal_usage_events(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(partitions=4)
    registry = CollectorRegistry()
    sent: list[UsageEvent] = []
    with UsageProducer(
        kafka_settings, producer_settings(topic, tmp_path, batch_max_events=50), registry=registry
    ) as producer:
        for i in range(300):
            event = UsageEvent(**fields(i, tenant=f"tenant-{i % 3}", region="eu-west-1"))
            producer.send(event)
            sent.append(event)
        for i in range(300, 310):  # a mapping is validated by the SDK itself
            mapping = fields(i, attributes={"deployment": "blue"})
            producer.send(mapping)
            sent.append(UsageEvent(**mapping))
        many = [fields(i, tenant=f"tenant-{i % 3}") for i in range(310, 400)]
        assert producer.send_many(many) == 90  # datetime.now(UTC): sub-ms parts truncated
        sent += [UsageEvent(**f) for f in many]
        with pytest.raises(InvalidEventError) as info:
            producer.send(fields(999, tenant="bad|tenant"))
        assert info.value.field == "tenant_id"
        with pytest.raises(InvalidEventError) as info:
            producer.send_many([fields(1000), fields(1001, input_tokens=-1)])
        assert (info.value.field, info.value.index) == ("input_tokens", 1)
        assert producer.flush(30) == 0
    got = read_topic(kafka_settings, topic).events
    by_id = {e.id: e for e in got}
    assert len(got) == len(sent) == len(by_id)
    assert [by_id[event.id] for event in sent] == sent
    assert registry.get_sample_value("tokenops_producer_events_sent_total") == 400
    assert registry.get_sample_value("tokenops_producer_events_rejected_total") == 2
    assert registry.get_sample_value("tokenops_producer_queue_depth") == 0


def raw_records(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Every record of the topic (up to its end offsets now), as messages with headers."""
    consumer = Consumer(
        {**kafka.librdkafka(), "group.id": f"raw-{topic}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Any] = []
        while len(messages) < sum(ends.values()):
            messages += [m for m in consumer.consume(1000, timeout=1) if not m.error()]
        return messages
    finally:
        consumer.close()


def test_records_are_v2_columns_that_decode_to_the_events_sent(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(partitions=2)
    secret = "node-a-secret-0123456789"
    settings = producer_settings(
        topic, tmp_path, batch_max_events=25, signing_key_id="node-a", signing_key=secret
    )
    rich = {
        "operation": "embeddings",
        "cache_read_input_tokens": 40,
        "cache_creation_input_tokens": 9,
        "reasoning_output_tokens": 4,
        "project_id": "proj-1",
        "user_id": "u@example.com",
        "region": "eu-west-1",
    }
    sent = []
    with UsageProducer(kafka_settings, settings) as producer:
        for i in range(60):
            extra = {**rich, "attributes": {"deployment": "blue"}} if i % 5 == 0 else {}
            mapping = fields(i, tenant=f"tenant-{i % 2}", **extra)
            producer.send(mapping)
            sent.append(UsageEvent(**mapping))
        many = [fields(i, tenant=f"tenant-{i % 2}", **rich) for i in range(60, 110)]
        producer.send_many(many)
        sent += [UsageEvent(**f) for f in many]
        lone = fields(110, tenant="tenant-lone")
        producer.send(lone)
        sent.append(UsageEvent(**lone))
        assert producer.flush(30) == 0
    keyring = Keyring({"node-a": SigningKey(secret.encode(), ("*",))})
    got: dict[str, list[UsageEvent]] = {}
    kinds = set()
    for message in raw_records(kafka_settings, topic):
        headers = message.headers()
        events = decode_record(message.value(), headers, key=message.key())
        kind = dict(headers)[CONTENT_TYPE_HEADER].decode()
        assert kind == (COLUMNS_CONTENT_TYPE if len(events) > 1 else CLOUDEVENTS_CONTENT_TYPE)
        assert keyring.verify(events, headers) == "node-a"
        kinds.add(kind)
        got.setdefault(events[0].tenant_id, []).extend(events)
    expected: dict[str, list[UsageEvent]] = {}
    for event in sent:
        expected.setdefault(event.tenant_id, []).append(event)
    assert got == expected
    assert kinds == {COLUMNS_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE}


def test_asyncio_api(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(partitions=2)

    async def main() -> None:
        async with UsageProducer(kafka_settings, producer_settings(topic, tmp_path)) as producer:
            for i in range(100):
                await producer.asend(fields(i))
            assert await producer.aflush(30) == 0

    asyncio.run(main())
    assert len(read_topic(kafka_settings, topic).events) == 100


def test_spooled_events_survive_a_broker_outage(
    kafka_broker: KafkaBroker,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topic = new_topic(partitions=4)
    settings = producer_settings(
        topic, tmp_path / "spool", delivery_timeout_ms=3000, close_timeout_s=2.0
    )
    registry = CollectorRegistry()
    kafka_broker.stop()
    try:
        producer = UsageProducer(kafka_settings, settings, registry=registry)
        for i in range(10_000):
            producer.send(fields(i, tenant=f"tenant-{i % 7}"))
        producer.close()
    finally:
        kafka_broker.start()
    assert registry.get_sample_value("tokenops_producer_events_spooled_total") == 10_000
    assert list((tmp_path / "spool").glob("spool-*"))

    replay_registry = CollectorRegistry()
    with UsageProducer(kafka_settings, settings, registry=replay_registry) as producer:
        assert producer.flush(60) == 0
    assert replay_registry.get_sample_value("tokenops_producer_events_replayed_total") == 10_000
    assert not list((tmp_path / "spool").glob("spool-*"))
    ids = {e.id for e in read_topic(kafka_settings, topic).events}
    assert ids == {f"evt-{i}" for i in range(10_000)}


SIGTERM_SCRIPT = """
import sys, time
from datetime import UTC, datetime
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.settings import KafkaSettings

settings = ProducerSettings(topic=sys.argv[2], spool_dir=sys.argv[3], linger_ms=600_000)
producer = UsageProducer(KafkaSettings(bootstrap_servers=sys.argv[1]), settings)
producer.install_sigterm_handler()
for i in range(1000):
    producer.send({"id": f"evt-{i}", "source": "//node/sigterm", "time": datetime.now(UTC),
                   "tenant_id": f"t-{i % 3}", "model": "m", "provider": "p",
                   "input_tokens": 1, "output_tokens": 1})
print("sent", flush=True)
time.sleep(120)
"""


def test_sigterm_flushes_what_is_still_buffered(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(partitions=2)
    argv = [sys.executable, "-c", SIGTERM_SCRIPT, kafka_settings.bootstrap_servers, topic]
    process = subprocess.Popen([*argv, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "sent"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        process.kill()
    assert len({e.id for e in read_topic(kafka_settings, topic).events}) == 1000
