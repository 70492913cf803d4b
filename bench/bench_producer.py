"""Validated, serialized and acknowledged events/s of one UsageProducer, next to raw.

`python -m bench.bench_producer [events] [runs] [tenants]` starts a Kafka broker (or
uses TOKENOPS_KAFKA_BOOTSTRAP_SERVERS) and measures, in the same run, alternating:

1. UsageProducer: `send(mapping)` per event (validated by the SDK, batched per tenant,
   encoded) until `flush()` reports every event acknowledged (acks=all, idempotent);
2. raw confluent-kafka producing the SAME record bytes, pre-serialized before the clock
   starts (the SDK's batch records), with the same producer configuration: the ceiling;
3. raw confluent-kafka producing one pre-serialized CloudEvent per record, for context.

Each figure is the median of `runs`. `--write` rewrites the "Producer" section of
docs/benchmarks.md with the figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.producers.batcher import TenantBatches, batch_record
from tokenops.producers.simulator import SimulationConfig, Simulator
from tokenops.schemas import BATCH_HEADERS, EVENT_HEADERS
from tokenops.schemas.codec import encode_fields
from tokenops.settings import KafkaSettings, StackSettings
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import free_port
from tokenops.topics import TopicSpec, ensure_topics

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def workload(events: int, tenants: int) -> list[dict[str, Any]]:
    config = SimulationConfig(tenants=tenants, rate=1e9, duration_s=events / 1e9, seed=1)
    return [e.fields for e in Simulator(config).emissions() if e.fields is not None]


def sdk_rate(
    kafka: KafkaSettings, topic: str, fields: list[dict[str, Any]], spool: Path, bulk: int = 0
) -> tuple[float, float]:
    """(events/s of wall time, events per second of this process's CPU time)."""
    registry = CollectorRegistry()
    producer = UsageProducer(
        kafka, ProducerSettings(topic=topic, spool_dir=spool), registry=registry
    )
    try:
        began, cpu = time.perf_counter(), time.process_time()
        if bulk:
            for start in range(0, len(fields), bulk):
                producer.send_many(fields[start : start + bulk])
        else:
            for item in fields:
                producer.send(item)
        left = producer.flush(120)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    finally:
        producer.close()
    sent = registry.get_sample_value("tokenops_producer_events_sent_total")
    assert left == 0 and sent == len(fields), (left, sent)
    return len(fields) / elapsed, len(fields) / cpu


def sdk_records(fields: list[dict[str, Any]], batch: int) -> list[tuple[bytes, bytes, int]]:
    """The (key, value, events) records the SDK sends for these events, pre-serialized."""
    batches = TenantBatches(batch, linger_s=1e9)
    done = []
    for item in fields:
        full = batches.add(*encode_fields(item, max_future_skew_s=1e9))
        if full is not None:
            done.append(full)
    done += batches.drain()
    return [(tenant.encode(), batch_record(tenant, enc)[1], len(enc)) for tenant, enc in done]


def raw_rate(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes, int]], headers: Any
) -> float:
    producer = Producer({**kafka.librdkafka(), **ProducerSettings().librdkafka()})
    events = sum(n for _, _, n in records)
    acked = [0]

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            acked[0] += 1

    began = time.perf_counter()
    for key, value, _ in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0 and acked[0] == len(records)
    return events / (time.perf_counter() - began)


def main(events: int = 200_000, runs: int = 5, tenants: int = 50, write: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="tokenops-bench-") as tmp:
        broker = None
        if "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            kafka = KafkaSettings()
        else:
            broker = KafkaBroker(
                StackSettings(
                    state_dir=Path(tmp),
                    kafka_port=free_port(),
                    kafka_controller_port=free_port(),
                    kafka_heap_mb=768,
                )
            )
            broker.start()
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        try:
            topic = f"bench.producer.{uuid.uuid4().hex[:8]}"
            ensure_topics(kafka, [TopicSpec(topic, 4, 1)])
            fields = workload(events, tenants)
            batch = ProducerSettings().batch_max_events
            batched = sdk_records(fields, batch)
            singles = [
                (item["tenant_id"].encode(), encode_fields(item, max_future_skew_s=1e9)[1], 1)
                for item in fields
            ]
            sdk, sdk_cpu, many, many_cpu, raw, raw_single = [], [], [], [], [], []
            for run in range(runs):
                wall, per_cpu = sdk_rate(kafka, topic, fields, Path(tmp) / f"spool-{run}")
                sdk.append(wall)
                sdk_cpu.append(per_cpu)
                wall, per_cpu = sdk_rate(kafka, topic, fields, Path(tmp) / f"m-{run}", 1000)
                many.append(wall)
                many_cpu.append(per_cpu)
                raw.append(raw_rate(kafka, topic, batched, BATCH_HEADERS))
                raw_single.append(raw_rate(kafka, topic, singles, EVENT_HEADERS))
                print(
                    f"run {run + 1}: sdk {sdk[-1]:,.0f}  send_many {many[-1]:,.0f}  "
                    f"raw batched {raw[-1]:,.0f}  "
                    f"raw single {raw_single[-1]:,.0f} events/s",
                    flush=True,
                )
            figures = {
                "sdk": statistics.median(sdk),
                "sdk_cpu": statistics.median(sdk_cpu),
                "many": statistics.median(many),
                "many_cpu": statistics.median(many_cpu),
                "raw": statistics.median(raw),
                "raw_single": statistics.median(raw_single),
            }
            report = render(figures, events, runs, tenants, len(batched), os.getloadavg()[0])
            print(report)
            if write:
                write_section(report)
        finally:
            if broker is not None:
                broker.stop()


def render(
    figures: dict[str, float], events: int, runs: int, tenants: int, records: int, load: float
) -> str:
    sdk, raw, single = figures["sdk"], figures["raw"], figures["raw_single"]
    cpu, many, many_cpu = figures["sdk_cpu"], figures["many"], figures["many_cpu"]
    return "\n".join(
        [
            "## Producer",
            "",
            f"`python -m bench.bench_producer {events} {runs} {tenants}`: {events:,} simulator "
            f"events ({tenants} Zipf tenants, ~{events // records} events per batch record), "
            f"one process, local single-node Kafka 4.1 broker, acks=all, idempotent, lz4; "
            f"median of {runs} runs. Figures taken on the shared 2-core machine while other "
            f"engineers worked (load average {load:.1f}).",
            "",
            "| producer | events/s | vs raw |",
            "| --- | ---: | ---: |",
            f"| UsageProducer.send(mapping): validated, batched, serialized, acknowledged "
            f"| {sdk:,.0f} | {sdk / raw:.2f} |",
            f"| UsageProducer.send_many(1,000 mappings): the same, validated column-wise "
            f"| {many:,.0f} | {many / raw:.2f} |",
            f"| raw confluent-kafka, the same batch records pre-serialized (baseline) "
            f"| {raw:,.0f} | 1.00 |",
            f"| raw confluent-kafka, one pre-serialized CloudEvent per record "
            f"| {single:,.0f} | {single / raw:.2f} |",
            "",
            f"CPU per event (all threads of the process): `send` {1e6 / cpu:.1f} µs "
            f"({cpu:,.0f} events per CPU-second), `send_many` {1e6 / many_cpu:.1f} µs "
            f"({many_cpu:,.0f} events per CPU-second): the rates one uncontended core would "
            "sustain. The SDK is CPU-bound (validation and encoding in Python); the raw "
            "client does no per-event work, so it measures the broker path.",
            "",
        ]
    )


def write_section(section: str) -> None:
    """Replace (or append) this section of docs/benchmarks.md, leaving the others alone."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Producer"), None)
    if start is None:
        DOC.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    DOC.write_text("".join(lines[:start]) + section + "\n" + "".join(lines[end:]))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--write"]
    events, runs, tenants = (numbers + [200_000, 5, 50][len(numbers) :])[:3]
    main(events, runs, tenants, write="--write" in sys.argv)
