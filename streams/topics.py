"""The worker's own topic: the state changelog, one partition per usage partition."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

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
                    "retention.ms": str(settings.changelog_retention_s * 1000),
                    "max.message.bytes": "16000000",
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
