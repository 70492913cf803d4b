"""(c) the aiokafka floor: what the worker's own client allows, before tokenops does anything.

The worker must consume through faust-streaming, hence aiokafka, a pure-Python Kafka
client: every record becomes a `ConsumerRecord` in Python, where confluent-kafka (raw
(a)) hands out librdkafka's C messages. (c) reads the same topic with an
`AIOKafkaConsumer` tuned for throughput as aiokafka's docs advise (`getmany` with a large
`max_records`, `fetch_max_bytes` / `max_partition_fetch_bytes` sized for whole fetches,
auto-commit off) and does (a)'s work per record (`pipeline_baselines.sum_record`): no
validation, no dedup, no durability. CRCs are checked, as the worker checks them.

`python -m bench.aiokafka_floor [records]` prints the in-process per-record cost of
aiokafka's fetch path alone (`PartitionRecords`: a fetched lz4 record batch to
`ConsumerRecord`s), no broker needed.
"""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from bench.pipeline_baselines import TIMEOUT_S, Drained, Totals, sum_record
from tokenops.settings import KafkaSettings
from tokenops.streams.credentials import broker_credentials

AIOKAFKA = "aiokafka floor (c)"
MAX_RECORDS = 10_000  # per `getmany`, as (a)'s `consume(10000)`
FETCH_MAX_BYTES = 64 * 1024 * 1024
PARTITION_FETCH_BYTES = 16 * 1024 * 1024  # the worker's `consumer_max_fetch_size`


def aiokafka_consume(
    kafka: KafkaSettings, topic: str, events: int, timeout_s: float = TIMEOUT_S
) -> Drained:
    """(c) `getmany` + orjson + a sum per (tenant, model, minute), until `events` events
    or `timeout_s`, from its first event to its last."""
    return asyncio.run(_consume(kafka, topic, events, timeout_s))


async def _consume(kafka: KafkaSettings, topic: str, events: int, timeout_s: float) -> Drained:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"bench-aiokafka-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=MAX_RECORDS,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        **credentials_to_aiokafka_auth(broker_credentials(kafka)),
    )
    await consumer.start()
    totals: Totals = {}
    seen, start = 0, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < events and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
            for records in fetched.values():
                if not start:
                    start = time.monotonic()
                for r in records:
                    seen += sum_record(totals, r.value)
        return Drained(start, time.monotonic(), seen, events)
    finally:
        await consumer.stop()


def fetch_path_us(records: int = 20_000, value_bytes: int = 420) -> float:
    """Microseconds of CPU per record in aiokafka's fetch path alone: lz4 record batches
    of `records` records (as the bench loads write them) unpacked, CRC checked, into
    `ConsumerRecord`s, as its fetcher does for every fetched partition."""
    from aiokafka.consumer.fetcher import PartitionRecords
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.memory_records import MemoryRecords
    from aiokafka.structs import TopicPartition

    value = b"x" * value_bytes
    headers = [("content-type", b"application/cloudevents+json")]
    data = bytearray()
    offset = 0
    while offset < records:  # 1,000 records a batch: librdkafka's batches are of that order
        builder = DefaultRecordBatchBuilder(2, 3, 0, -1, -1, -1, 1 << 30)  # magic 2, lz4
        for i in range(1000):
            builder.append(i, int(time.time() * 1000), b"tenant-000001", value, headers)
        batch = builder.build()
        struct.pack_into(">q", batch, 0, offset)  # the base offset, which the broker sets
        data += batch
        offset += 1000

    def unpack() -> int:
        tp = TopicPartition("t", 0)
        parts: Any = PartitionRecords(tp, MemoryRecords(bytes(data)), [], 0, None, None, True, 0)
        n = sum(1 for _ in parts)
        assert n == offset, (n, offset)
        return n

    unpack()  # warm up
    cpu = time.process_time()
    n = unpack()
    return (time.process_time() - cpu) / n * 1e6


def main() -> None:
    import sys

    records = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"aiokafka fetch path: {fetch_path_us(records):.2f} us CPU per record")


if __name__ == "__main__":
    main()
