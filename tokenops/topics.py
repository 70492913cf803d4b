"""The topics tokenops owns, with the retention each one needs, created idempotently."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
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
    """Every topic of the pipeline: raw usage is kept for replay, results are compacted."""
    n, rf = topics.partitions, topics.replication_factor
    compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    return [
        TopicSpec(topics.usage, n, rf, {"retention.ms": str(7 * _DAY_MS)}),
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
