"""The worker's own topic: the state changelog, one partition per usage partition; and the
record size limit of the topics the worker writes to."""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # not re-exported for mypy

from tokenops.errors import TokenopsError
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.streams.settings import WorkerSettings
from tokenops.topics import TopicSpec, ensure_topics, pipeline_topics


def ensure_worker_topics(
    settings: WorkerSettings, kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """Create missing pipeline topics and the changelog, partitioned like the usage topic."""
    ensure_topics(kafka, pipeline_topics(topics))
    metadata = AdminClient(kafka.librdkafka()).list_topics(topics.usage, timeout=30)
    usage = metadata.topics.get(topics.usage)
    if usage is None or usage.error is not None or not usage.partitions:
        raise TokenopsError(f"cannot read the partitions of topic {topics.usage}")
    partitions = len(usage.partitions)
    ensure_topics(
        kafka,
        [
            TopicSpec(
                settings.changelog,
                partitions,
                topics.replication_factor,
                {
                    "cleanup.policy": "delete",
                    # no raised max.message.bytes: a large delta is written in parts
                    # sized below the topic's limit (`max_message_bytes`, delta.py)
                    "retention.ms": str(settings.changelog_retention_s * 1000),
                },
            )
        ],
    )
    admin = AdminClient(kafka.librdkafka())
    found = 0
    for _ in range(50):  # a topic created a moment ago may not list its partitions yet
        listed = admin.list_topics(settings.changelog, timeout=30).topics[settings.changelog]
        found = len(listed.partitions) if listed.error is None else 0
        if found:
            break
        time.sleep(0.2)
    if found != partitions:
        raise TokenopsError(
            f"changelog {settings.changelog} has {found} partitions, "
            f"{topics.usage} has {partitions}",
            hint="the changelog must be partitioned like the usage topic; use a new app id",
        )


def max_message_bytes(kafka: KafkaSettings, names: list[str], *, timeout_s: float = 30.0) -> int:
    """The smallest `max.message.bytes` of the topics `names`: no record the worker writes
    to them may be larger (the broker refuses it with MSG_SIZE_TOO_LARGE)."""
    admin = AdminClient(kafka.librdkafka())
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in dict.fromkeys(names)]
    limits = []
    for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
        try:
            entry = future.result().get("max.message.bytes")
        except KafkaException as exc:
            raise TokenopsError(
                f"cannot read max.message.bytes of topic {resource.name}: {exc.args[0].str()}",
                hint="the worker needs DescribeConfigs on the topics it writes to",
            ) from exc
        if entry is None or entry.value is None:
            raise TokenopsError(f"topic {resource.name} reports no max.message.bytes")
        limits.append(int(entry.value))
    return min(limits)
