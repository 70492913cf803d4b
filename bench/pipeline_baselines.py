"""The baselines read the same topic as tokenops: (a) the raw confluent-kafka consumer
ceiling, (b) the Kafka Streams app in bench/baselines/kafka-streams/.

Every baseline has a time-out: a consumer that waits for exactly N events waits forever
when one is lost (a load retried out of order drops events past the window's grace), so
such a run ends with what it counted, flagged `timed_out`, and is reported, not averaged.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from tokenops.settings import KafkaSettings
from tokenops.simulate.ledger import Ledger
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


TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Drained:
    """One consumer's run over `wanted` events; times are `time.monotonic()` (one clock
    for every process on the host)."""

    first: float  # its first event
    last: float  # the event that completed the run, or the time-out
    events: int  # events it counted
    wanted: int

    @property
    def timed_out(self) -> bool:
        return self.events < self.wanted

    @property
    def rate(self) -> float:
        return self.events / (self.last - self.first) if self.last > self.first else 0.0


def raw_ceiling(kafka: KafkaSettings, topic: str, events: int) -> float:
    """(a) catch-up events/s of `raw_consume`; a run that timed out raises."""
    got = raw_consume(kafka, topic, events)
    if got.timed_out:
        raise RuntimeError(f"raw consumer: {got.events} of {events} events in {TIMEOUT_S} s")
    return got.rate


def raw_consume(
    kafka: KafkaSettings,
    topic: str,
    events: int,
    timeout_s: float = TIMEOUT_S,
    ready: Callable[[], None] | None = None,
) -> Drained:
    """(a) `consume(10000)` + orjson + a sum per (tenant, model, minute), until `events`
    events or `timeout_s`; `ready` is called once its partitions are assigned.

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
    consumer.subscribe([topic], on_assign=lambda c, p: ready() if ready else None)
    totals: Totals = {}
    seen, start = 0, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < events and time.monotonic() < deadline:
            for m in consumer.consume(10_000, timeout=1.0):
                if m.error():
                    continue
                if not start:
                    start = time.monotonic()
                seen += sum_record(totals, m.value())
        return Drained(start, time.monotonic(), seen, events)
    finally:
        consumer.close()


def sum_record(totals: Totals, value: bytes) -> int:
    """orjson and a sum per (tenant, model, minute) of one record's events, nothing
    checked; returns how many events it held. The baselines' whole per-record work."""
    body = orjson.loads(value)
    columns = body.get("columns")
    if columns is not None:  # a v2 batch: event i is item i of each column
        return _sum_columns(totals, body["tenant_id"], columns)
    n = 0
    for ce in body.get("events", (body,)):
        d = ce["data"]
        key = (d["tenant_id"], d["model"], ce["time"][:16])
        t = totals.get(key)
        if t is None:
            t = totals[key] = [0] * 6
        for i, name in enumerate(TOKENS):
            t[i] += d.get(name, 0)
        t[5] += 1
        n += 1
    return n


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
    kafka: KafkaSettings, topic: str, events: int, work: Path, threads: int | None = None
) -> float:
    """(b) catch-up events/s of the Kafka Streams app, from its first event to its
    `events`-th window update; a run that timed out raises."""
    with StreamsApp(kafka, topic, events, work, threads) as app:
        got = app.result()
    if got.timed_out:
        raise RuntimeError(f"Kafka Streams: {got.events} of {events} events in {TIMEOUT_S} s")
    return got.rate


@dataclass(frozen=True)
class StreamsResult(Drained):
    totals: list[list[Any]] | None = None  # its window store, when asked for


class StreamsApp:
    """The Kafka Streams reference running in its JVM; `threads` stream threads, one per
    core by default (its docs' advice), and a time-out of `timeout_s` after it started."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        events: int,
        work: Path,
        threads: int | None = None,
        timeout_s: float = TIMEOUT_S,
        totals: bool = False,
    ) -> None:
        build_streams()
        app_id = f"bench-streams-{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka, [TopicSpec(f"{app_id}.out", 1, 1)])
        classpath = f"{STREAMS_DIR / 'target' / 'classes'}:{STREAMS_DIR / 'target' / 'lib'}/*"
        argv = ["java", "-Xmx768m", "-cp", classpath, "dev.tokenops.bench.Main",
                kafka.bootstrap_servers, topic, f"{app_id}.out", app_id, str(events), "30",
                str(threads or os.cpu_count() or 1), str(work / app_id), str(round(timeout_s)),
                "totals" if totals else "-"]  # fmt: skip
        self.events, self.timeout_s, self.totals = events, timeout_s, totals
        self.log = work / f"{app_id}.log"
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self.log.open("ab"), text=True
        )
        self.lines: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put((time.monotonic(), json.loads(line)))

    def _next(self, key: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            if key in line:
                return at, line
        raise RuntimeError(f"Kafka Streams baseline: no {key!r}: {self.log.read_text()[-2000:]}")

    def wait_running(self, timeout_s: float = 120.0) -> None:
        """Until its partitions are assigned (state RUNNING)."""
        self._next("state", timeout_s)

    def result(self) -> StreamsResult:
        """Its result line; `last` is when the harness read it (the live runs' end)."""
        at, line = self._next("events", self.timeout_s + 120)
        totals = self._next("totals", 120)[1]["totals"] if self.totals else None
        seconds = float(line["seconds"])
        return StreamsResult(at - seconds, at, int(line["events"]), self.events, totals)

    def __enter__(self) -> StreamsApp:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def ledger_mismatches(ledger: Ledger, totals: list[list[Any]]) -> list[str]:
    """The windows where a baseline's totals (rows of tenant, model, window start ms, then
    the five token counts and the event count) differ from what the load sent."""
    expected = {k: list(v) for k, v in ledger.expected_windows(60).items()}
    got = {(r[0], r[1], int(r[2])): [int(x) for x in r[3:]] for r in totals}
    return [
        f"{key}: expected {expected.get(key)}, got {got.get(key)}"
        for key in sorted(expected.keys() | got.keys())
        if expected.get(key) != got.get(key)
    ]
