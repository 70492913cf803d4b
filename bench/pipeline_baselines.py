"""The baselines read the same topic as tokenops: (a) the raw confluent-kafka consumer
ceiling, (b) the Kafka Streams app in bench/baselines/kafka-streams/."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from tokenops.settings import KafkaSettings
from tokenops.topics import TopicSpec, ensure_topics

STREAMS_DIR = Path(__file__).resolve().parent / "baselines" / "kafka-streams"
Totals = dict[tuple[str, str, str], list[int]]
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)


def raw_ceiling(kafka: KafkaSettings, topic: str, events: int) -> float:
    """(a) events/s of `consume(10000)` + orjson + a sum per (tenant, model, minute).

    No validation, no dedup, no durability: what the client and the decoder allow. The
    window key is the minute prefix of the event's RFC 3339 time (UTC), a 1-minute
    tumbling window without parsing the time.
    """
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    totals: Totals = {}
    seen, start = 0, 0.0
    try:
        while seen < events:
            for m in consumer.consume(10_000, timeout=1.0):
                if m.error():
                    continue
                if not start:
                    start = time.perf_counter()
                body = orjson.loads(m.value())
                columns = body.get("columns")
                if columns is not None:  # a v2 batch: event i is item i of each column
                    seen += _sum_columns(totals, body["tenant_id"], columns)
                    continue
                for ce in body.get("events", (body,)):
                    d = ce["data"]
                    key = (d["tenant_id"], d["model"], ce["time"][:16])
                    t = totals.get(key)
                    if t is None:
                        t = totals[key] = [0] * 6
                    for i, name in enumerate(TOKENS):
                        t[i] += d.get(name, 0)
                    t[5] += 1
                    seen += 1
        return events / (time.perf_counter() - start)
    finally:
        consumer.close()


def _sum_columns(totals: Totals, tenant: str, columns: dict[str, Any]) -> int:
    n = len(columns["model"])
    tokens = [columns.get(name) or [0] * n for name in TOKENS]
    for j, (model, when) in enumerate(zip(columns["model"], columns["time"], strict=True)):
        key = (tenant, model, when[:16])
        t = totals.get(key)
        if t is None:
            t = totals[key] = [0] * 6
        for i in range(len(TOKENS)):
            t[i] += tokens[i][j]
        t[5] += 1
    return n


def build_streams() -> None:
    """`mvn -q clean package` when the app or its pom changed since the last build: kafka-streams
    and Jackson from Maven Central into target/lib (kept out of git)."""
    built = STREAMS_DIR / "target" / "classes" / "dev" / "tokenops" / "bench" / "Main.class"
    sources = [STREAMS_DIR / "pom.xml", *STREAMS_DIR.glob("src/**/*.java")]
    if built.exists() and all(s.stat().st_mtime <= built.stat().st_mtime for s in sources):
        return
    build = subprocess.run(
        ["mvn", "-B", "-q", "clean", "package"], cwd=STREAMS_DIR, capture_output=True, text=True
    )
    if build.returncode != 0:
        raise RuntimeError(f"mvn package failed: {(build.stdout + build.stderr)[-3000:]}")


def kafka_streams(
    kafka: KafkaSettings, topic: str, events: int, work: Path, threads: int = 1
) -> float:
    """(b) events/s of the Kafka Streams app from its first event to its `events`-th
    window update (1 stream thread by default: one worker process, one core)."""
    build_streams()
    app_id = f"bench-streams-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [TopicSpec(f"{app_id}.out", 1, 1)])
    classpath = f"{STREAMS_DIR / 'target' / 'classes'}:{STREAMS_DIR / 'target' / 'lib'}/*"
    argv = [
        "java",
        "-Xmx512m",
        "-cp",
        classpath,
        "dev.tokenops.bench.Main",
        kafka.bootstrap_servers,
        topic,
        f"{app_id}.out",
        app_id,
        str(events),
        "30",
        str(threads),
        str(work / app_id),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            return float(result["events"]) / float(result["seconds"])
    raise RuntimeError(f"Kafka Streams baseline failed: {done.stderr[-2000:]}")
