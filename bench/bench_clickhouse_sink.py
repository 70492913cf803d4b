"""Rows/s written by one `tokenops sink clickhouse` into the embedded store, with baselines.

`python -m bench.bench_clickhouse_sink [events] [events_per_record]` starts a Kafka broker
(or uses TOKENOPS_KAFKA_BOOTSTRAP_SERVERS), fills a 4-partition usage topic with batch
records, then measures in the same run, on the same rows:

1. bare `client.insert` of the same raw-event rows into a fresh embedded store, in chunks
   of the sink's batch size, column-oriented, already in memory: the storage ceiling;
2. raw confluent-kafka consume + `decode_record` + column building (the sink's own
   `decode_chunk`), no storage: the decode ceiling;
3. one sink process, from its first consumed record until every row is written
   (read from its /metrics), with its peak RSS.

Target: the sink keeps up with the raw events of a 100,000 events/s stream.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import Consumer

from bench.bench_worker import _peak_rss_mb, fill
from tokenops.settings import KafkaSettings, StackSettings
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.decoding import decode_chunk
from tokenops.sinks.clickhouse.migrations import migrate
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import free_port
from tokenops.topics import TopicSpec, ensure_topics

TOKENOPS = str(Path(sys.executable).parent / "tokenops")
BATCH_ROWS = ClickHouseSettings().batch_max_rows


class Rate(NamedTuple):
    wall: float  # rows per second of elapsed time
    cpu: float  # rows per second of CPU time (all threads and child processes)

    def __str__(self) -> str:
        return f"{self.wall:>10,.0f} rows/s  {self.cpu:>10,.0f} rows/CPU-s"


def decode_columns(
    kafka: KafkaSettings, topic: str, events: int
) -> tuple[list[list[object]], Rate]:
    """Every event of the topic as raw_events columns (the sink's own decoding code), and
    the rate of consume + decode (events/s)."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    columns: list[list[object]] = [[] for _ in EVENT_COLUMNS]
    start = None
    cpu = 0.0
    while len(columns[0]) < events:
        messages = [m for m in consumer.consume(10_000, timeout=1.0) if not m.error()]
        if not messages:
            continue
        start = start or time.perf_counter()
        chunk = [(m.value(), m.headers(), m.partition() or 0, m.offset() or 0) for m in messages]
        before = time.process_time()
        decoded, _ = decode_chunk(chunk)
        cpu += time.process_time() - before
        for mine, theirs in zip(columns, decoded, strict=True):
            mine.extend(theirs)
    elapsed = time.perf_counter() - (start or time.perf_counter())
    consumer.close()
    return columns, Rate(events / elapsed, events / cpu)


def bare_insert(columns: list[list[object]], store_dir: Path) -> Rate:
    settings = ClickHouseSettings(url=f"chdb://{store_dir}")
    with open_store(settings, store_dir) as store:
        migrate(store.client, 0)
        rows = len(columns[0])
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, rows, BATCH_ROWS):
            chunk = [column[i : i + BATCH_ROWS] for column in columns]
            store.client.insert(
                "raw_events", chunk, column_names=EVENT_COLUMNS, column_oriented=True
            )
        return Rate(rows / (time.perf_counter() - start), rows / (time.process_time() - cpu))


def run_sink(
    kafka: KafkaSettings, topic: str, events: int, tmp: Path, decode_processes: int
) -> tuple[Rate, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(
        HOME=str(tmp),
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        TOKENOPS_TOPIC_USAGE=topic,
        TOKENOPS_TOPIC_AGGREGATES=f"{topic}.aggregates",
        TOKENOPS_CLICKHOUSE_URL=f"chdb://{tmp / f'sink-store-{decode_processes}'}",
        TOKENOPS_CLICKHOUSE_DECODE_PROCESSES=str(decode_processes),
        TOKENOPS_CLICKHOUSE_HTTP_PORT=str(port),
        TOKENOPS_CLICKHOUSE_CONSUMER_GROUP=f"bench-{uuid.uuid4().hex[:8]}",
        TOKENOPS_LOG_LEVEL=os.environ.get("TOKENOPS_LOG_LEVEL", "WARNING"),
    )
    for name in ("BATCH_MAX_ROWS", "BATCH_MAX_MS"):
        if f"TOKENOPS_CLICKHOUSE_{name}" in os.environ:
            env[f"TOKENOPS_CLICKHOUSE_{name}"] = os.environ[f"TOKENOPS_CLICKHOUSE_{name}"]
    command = [TOKENOPS, "sink", "clickhouse"]
    profile = os.environ.get("TOKENOPS_BENCH_PROFILE")
    if profile and decode_processes == 0:
        command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
    ensure_topics(kafka, [TopicSpec(f"{topic}.aggregates", 4, 1)])
    proc = subprocess.Popen(command, env=env)
    try:
        start = None
        written = 0.0
        while written < events:
            time.sleep(0.02)
            assert proc.poll() is None, "sink exited"
            if start is None and _metric(port, "tokenops_clickhouse_sink_records_total") > 0:
                start = time.perf_counter()  # the first record is consumed
                cpu = _cpu_seconds(proc.pid)
            written = _metric(port, 'tokenops_clickhouse_sink_rows_total{table="raw_events"}')
        elapsed = time.perf_counter() - (start or 0)
        used = _cpu_seconds(proc.pid) - cpu
        return Rate(events / elapsed, events / used), _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live child processes (decoders)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _metric(port: int, name: str) -> float:
    """The sum of the samples of `name` (a name, or a name with labels) on /metrics."""
    total = 0.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                prefixes = (name,) if "{" in name else (name + " ", name + "{")
                if line.startswith(prefixes):
                    total += float(line.split()[-1])
    except OSError:
        pass
    return total


def main(events: int = 500_000, per_record: int = 100) -> None:
    with tempfile.TemporaryDirectory(prefix="tokenops-bench-") as tmp_name:
        tmp = Path(tmp_name)
        broker = None
        if "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            kafka = KafkaSettings()
        else:
            broker = KafkaBroker(
                StackSettings(
                    state_dir=tmp / "kafka",
                    kafka_port=free_port(),
                    kafka_controller_port=free_port(),
                    kafka_heap_mb=768,
                )
            )
            broker.start()
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        try:
            topic = f"bench.usage.{uuid.uuid4().hex[:8]}"
            ensure_topics(kafka, [TopicSpec(topic, 4, 1)])
            t = time.perf_counter()
            fill(kafka, topic, events, per_record, tenants=1000)
            took = time.perf_counter() - t
            print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            print(f"filled {events} events in {events // per_record} records ({took:.1f}s)")
            columns, decoded = decode_columns(kafka, topic, events)
            bare = bare_insert(columns, tmp / "bare-store")
            del columns
            label = f"bare client.insert, {BATCH_ROWS}-row column chunks:"
            print(f"{label:<48}{bare}")
            label = "consume + decode_record + columns, no storage:"
            print(f"{label:<48}{decoded}")
            for processes in (0, 2):
                rate, rss = run_sink(kafka, topic, events, tmp, processes)
                label = f"tokenops sink clickhouse, decode_processes={processes}:"
                print(f"{label:<48}{rate}  peak RSS {rss:.0f} MiB")
                print(
                    f"  sink / bare insert = {rate.wall / bare.wall:.2f}; target 100,000 rows/s: "
                    + ("met" if rate.wall >= 100_000 else "NOT met")
                )
            print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            if broker is not None:
                broker.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
