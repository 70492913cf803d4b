"""How far MirrorMaker 2 is behind each source region, from what it committed.

Dedicated-mode MirrorMaker commits, per source partition, the offset of the last record
it replicated to the target cluster's `mm2-offsets.<source>.internal` topic (key
`["MirrorSourceConnector", {"cluster", "topic", "partition"}]`, value `{"offset": n}`),
every `offset.flush.interval.ms`. Records of the source past that offset are either not
replicated yet or would be replayed after a crash: that is the lag measured here, in
records (source end offset minus committed position) and in seconds (the age of the
oldest such record, by its source timestamp). A MirrorMaker that is down commits
nothing, so both grow with the source's traffic.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from tokenops.settings import KafkaSettings
from tokenops.stack.mirror import offsets_topic
from tokenops.topics import read_to_end


@dataclass(frozen=True)
class RegionLag:
    source: str
    records: int
    seconds: float


def committed_positions(central: KafkaSettings, source: str, topic: str) -> dict[int, int]:
    """Partition -> next source offset MirrorMaker will replicate (its last committed
    offset + 1); partitions it never committed are missing."""
    positions: dict[int, int] = {}
    wanted = offsets_topic(source)
    for message in read_to_end(central, wanted, timeout_s=30):
        key, value = message.key(), message.value()
        try:
            name, where = json.loads(key or b"null")
            offset = json.loads(value)["offset"] if value else None
        except (ValueError, TypeError, KeyError):
            continue  # another connector's record (heartbeats), or a tombstone
        if name != "MirrorSourceConnector" or where.get("topic") != topic:
            continue
        if where.get("cluster") == source and offset is not None:
            positions[int(where["partition"])] = int(offset) + 1
    return positions


def region_lag(
    central: KafkaSettings, source: str, source_kafka: KafkaSettings, topic: str
) -> RegionLag:
    """The lag of `topic` replicated from `source` into `central` now."""
    positions = committed_positions(central, source, topic)
    consumer = Consumer(
        {
            **source_kafka.librdkafka(),
            "group.id": f"tokenops-replication-lag-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        records, oldest_ms = 0, None
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            position = max(positions.get(partition, low), low)
            if high <= position:
                continue
            records += high - position
            stamp = _timestamp_ms(consumer, TopicPartition(topic, partition, position))
            if stamp is not None:
                oldest_ms = stamp if oldest_ms is None else min(oldest_ms, stamp)
        seconds = 0.0 if oldest_ms is None else max(0.0, time.time() - oldest_ms / 1000)
        return RegionLag(source, records, seconds)
    finally:
        consumer.close()


def _timestamp_ms(consumer: Consumer, where: TopicPartition) -> int | None:
    """The timestamp of the record at `where` (None when it cannot be read in time)."""
    consumer.assign([where])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            return int(message.timestamp()[1])
    return None
