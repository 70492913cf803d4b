"""Where a tenant's events are counted: its home partition of the usage topic.

Deduplication, windows and quotas are kept per input partition, so a tenant's events
must all be counted in one partition. That partition is the one the Java client, Faust
(aiokafka) and confluent-kafka with `partitioner=murmur2_random` pick for the key
`tenant_id`: `(murmur2(key) & 0x7fffffff) % partitions`. A record that lands anywhere
else (librdkafka's default `consistent_random` partitioner, an explicit partition, no
key) is not counted where it landed; the worker forwards it home.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65_536)
def home_partition(tenant_id: str, partitions: int) -> int:
    """The usage-topic partition in which `tenant_id`'s events are counted."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return int((murmur2(tenant_id.encode()) & 0x7FFFFFFF) % partitions)


def key_home(key: bytes | None, partitions: int) -> int | None:
    """The home partition of a record's Kafka key read as a tenant id; None for no key,
    an empty one or one that is not UTF-8. A valid record's key is its tenant, so a keyed
    record away from its key's home is forwarded there undecoded (the worker,
    `streams/routing.py`) and only its home copy is counted, stored or dead-lettered."""
    if not key:
        return None
    try:
        tenant_id = key.decode()
    except UnicodeDecodeError:
        return None
    return home_partition(tenant_id, partitions)
