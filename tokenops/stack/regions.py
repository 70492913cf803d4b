"""`tokenops stack up --regions west,central`: regional clusters mirrored into the stack's.

The last region is central: the stack's own Kafka, where the worker and sinks run. Every
other region gets its own single-node KRaft cluster under `<state_dir>/kafka-<region>`
(ports: the stack's Kafka ports + 100 x its position) holding the usage topic, as its
inference fleet writes it; one MirrorMaker 2 (`stack/mirror.py`) replicates each into
central's usage topic, and `tokenops replication lag` serves the replication lag.
"""

from __future__ import annotations

import json

from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.stack.errors import StackError
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.mirror import MirrorMaker
from tokenops.stack.process import free_port
from tokenops.stack.services import PipelineService
from tokenops.topics import ensure_topics, pipeline_topics

PORT_STEP = 100


def parse_regions(text: str) -> list[str]:
    """`west,central` -> ["west", "central"]; at least two distinct names of [a-z0-9-]."""
    regions = [r.strip() for r in text.split(",") if r.strip()]
    if len(regions) < 2 or len(set(regions)) != len(regions):
        raise StackError(
            f"--regions {text!r}: name two or more distinct regions, central last",
            hint="for example --regions west,central",
        )
    for region in regions:
        if not region.replace("-", "").isalnum() or region != region.lower():
            raise StackError(f"--regions: {region!r} is not a lower-case name of a-z, 0-9, -")
    return regions


class RegionalStack:
    """The source regions' clusters, MirrorMaker and the lag exporter of one stack."""

    name = "regions"

    def __init__(
        self,
        settings: StackSettings,
        regions: list[str],
        central_bootstrap: str,
        topics: TopicSettings,
    ) -> None:
        self.settings, self.topics = settings, topics
        self.central = regions[-1]
        self.clusters = {
            region: KafkaBroker(
                settings,
                name=f"kafka-{region}",
                ports=(
                    settings.kafka_port + PORT_STEP * position,
                    settings.kafka_controller_port + PORT_STEP * position,
                ),
            )
            for position, region in enumerate(regions[:-1], start=1)
        }
        bootstraps = {r: broker.bootstrap_servers for r, broker in self.clusters.items()}
        self.mirror = MirrorMaker(
            settings, {**bootstraps, self.central: central_bootstrap}, self.central, topics.usage
        )
        self.lag_exporter = PipelineService(
            settings,
            "replication-lag",
            ["replication", "lag"],
            {
                "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": central_bootstrap,
                "TOKENOPS_TOPIC_USAGE": topics.usage,
                "TOKENOPS_REPLICATION_SOURCES": json.dumps(bootstraps),
                "TOKENOPS_REPLICATION_TARGET_REGION": self.central,
                "TOKENOPS_REPLICATION_HTTP_PORT": str(free_port()),
                "TOKENOPS_STACK_STATE_DIR": str(settings.state_dir),
            },
        )

    def kafka_settings(self, region: str) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.clusters[region].bootstrap_servers)

    def up(self, *, force: bool = False) -> None:
        """Start each region's cluster with its usage topic (the central topic's spec:
        same partitions, so MirrorMaker keeps every record's partition), then
        MirrorMaker and the lag exporter. Central must be up already."""
        usage = next(s for s in pipeline_topics(self.topics) if s.name == self.topics.usage)
        for region, broker in self.clusters.items():
            broker.start(force=force)
            ensure_topics(self.kafka_settings(region), [usage])
        self.mirror.start()
        self.lag_exporter.start()

    def stop(self) -> bool:
        return bool(self.down())

    def down(self) -> list[str]:
        """Stop the exporter and MirrorMaker first (nothing left to replicate from), then
        the regional clusters."""
        stopped = []
        if self.lag_exporter.stop():
            stopped.append(self.lag_exporter.name)
        if self.mirror.stop():
            stopped.append(self.mirror.name)
        for broker in self.clusters.values():
            if broker.stop():
                stopped.append(broker.name)
        return stopped
