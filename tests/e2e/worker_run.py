"""Helpers of the worker's end-to-end tests: a traffic generator with its own ledger,
worker processes, and readers of the aggregates and dead-letter topics."""

from __future__ import annotations

import os
import random
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tests.processes import TokenopsProcess
from tokenops.deadletters import DLQ_OFFSET, DLQ_PARTITION
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import encode_batch, encode_event
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port
from tokenops.topics import read_to_end

WINDOW_S = 2
Key = tuple[str, str, int]


@dataclass
class Ledger:
    """Ground truth: totals per (tenant, model, window start) of unique events."""

    totals: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 6))
    malformed: dict[tuple[int, int], bytes] = field(default_factory=dict)
    sent: list[UsageEvent] = field(default_factory=list)

    def count(self, e: UsageEvent) -> None:
        start = e.time_ms - e.time_ms % (WINDOW_S * 1000)
        t = self.totals[(e.tenant_id, e.model, start)]
        for i, v in enumerate(e.tokens().values()):
            t[i] += v
        t[5] += 1


class Traffic:
    """Usage traffic with duplicates, late events and malformed records, as it happens."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, seed: int, *, with_default_producer: bool = False
    ) -> None:
        """`with_default_producer`: about half the records (retries included) go through a
        second producer with librdkafka's default settings (partitioner consistent_random,
        CRC32), so most tenants have records in two partitions, one of them not home."""
        self.topic, self.rng, self.ledger = topic, random.Random(seed), Ledger()
        self.producer = Producer(
            {**kafka.librdkafka(), "partitioner": "murmur2_random", "linger.ms": 5}
        )
        self.producers, self.pick = [self.producer], random.Random(seed)  # `rng` unchanged
        if with_default_producer:
            self.producers.append(Producer({**kafka.librdkafka(), "linger.ms": 5}))
        self.n = 0

    def _event(self, tenant: str, t_ms: int) -> UsageEvent:
        self.n += 1
        rng = self.rng
        inp = rng.randint(1, 5000)
        out = rng.randint(1, 2000)
        return UsageEvent(
            id=f"ev-{self.n}",
            source=f"//node/{rng.randint(1, 5)}",
            time=datetime.fromtimestamp(t_ms / 1000, UTC),
            tenant_id=tenant,
            model=rng.choice(["gpt-x", "claude-y"]),
            provider="acme-ai",
            input_tokens=inp,
            output_tokens=out,
            cache_read_input_tokens=rng.randint(0, inp),
            reasoning_output_tokens=rng.randint(0, out),
        )

    def round(self, events: int, *, batch_size: int = 20) -> None:
        """Send about `events` events now: 5% duplicates, some late, 1% malformed."""
        rng, now = self.rng, int(time.time() * 1000)
        sent = 0
        while sent < events:
            tenant = f"tenant-{rng.randint(0, 30)}"
            batch = []
            for _ in range(rng.randint(1, batch_size)):
                roll = rng.random()
                if roll < 0.05:
                    lag = rng.randint(1_200, 6_000)  # beyond the 1 s lateness
                elif roll < 0.15:
                    lag = rng.randint(0, 900)  # inside it
                else:
                    lag = rng.randint(0, 200)
                e = self._event(tenant, now - lag)
                self.ledger.count(e)
                self.ledger.sent.append(e)
                batch.append(e)
            if rng.random() < 0.3 and len(self.ledger.sent) > 10:
                dup = rng.choice(self.ledger.sent[-500:])  # a retry: same source + id
                self._send(dup.tenant_id, encode_event(dup))
            value = encode_batch(batch) if len(batch) > 1 else encode_event(batch[0])
            self._send(tenant, value)
            sent += len(batch)
            if rng.random() < 0.02:
                bad = rng.choice([b"{not json", b'{"type": "ai.tokenops.usage.batch"}', b"[]"])
                self._send(tenant, bad, malformed=True)
        for producer in self.producers:
            producer.flush(30)

    def _send(self, tenant: str, value: bytes, *, malformed: bool = False) -> None:
        def remember(err: Any, msg: Any) -> None:
            assert err is None, err
            if malformed:
                self.ledger.malformed[(msg.partition(), msg.offset())] = value

        producer = self.pick.choice(self.producers)
        producer.produce(self.topic, value, tenant.encode(), on_delivery=remember)
        producer.poll(0)


def worker_env(
    kafka: KafkaSettings, topics: dict[str, str], app_id: str, tmp: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        TOKENOPS_TOPIC_USAGE=topics["usage"],
        TOKENOPS_TOPIC_AGGREGATES=topics["aggregates"],
        TOKENOPS_TOPIC_DEAD_LETTER=topics["dead_letter"],
        TOKENOPS_TOPIC_QUOTA_ALERTS=topics["quota_alerts"],
        TOKENOPS_TOPIC_QUOTAS=topics["quotas"],
        TOKENOPS_WORKER_APP_ID=app_id,
        TOKENOPS_WORKER_WINDOW_S=str(WINDOW_S),
        TOKENOPS_WORKER_ALLOWED_LATENESS_S="1",
        TOKENOPS_WORKER_IDLE_TIMEOUT_S="2",
        TOKENOPS_WORKER_DEDUP_HORIZON_S="120",
        TOKENOPS_WORKER_CHANGELOG_RETENTION_S="3600",
        TOKENOPS_WORKER_SESSION_TIMEOUT_S="6",
        TOKENOPS_WORKER_HEARTBEAT_INTERVAL_S="1",
        TOKENOPS_WORKER_BATCH_WITHIN_S="0.1",
        TOKENOPS_LOG_PROGRESS_EVERY_S="2",
        TOKENOPS_LOG_LEVEL="INFO",
    )
    return env


class WorkerProcess(TokenopsProcess):
    def __init__(self, env: dict[str, str], state_dir: Path, log: Path) -> None:
        self.port = free_port()
        env = {
            **env,
            "TOKENOPS_WORKER_STATE_DIR": str(state_dir),
            "TOKENOPS_WORKER_HTTP_PORT": str(self.port),
        }
        super().__init__(["worker"], env, log, grace_s=5.0)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until /healthz says the worker owns its recovered partitions."""
        self.wait_healthy(self.port, "worker", timeout_s)

    def metric(self, sample: str) -> float:
        """One sample of the worker's /metrics, e.g. 'name{label="x"}' (0 if absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(sample + " "):
                    return float(line.split()[-1])
        return 0.0


def latest_totals(kafka: KafkaSettings, topic: str) -> dict[Key, list[int]]:
    """Per window the record with the highest revision (ties: the highest event count),
    summed over regions by (tenant, model, window start)."""
    best: dict[str, WindowTotals] = {}
    for m in read_to_end(kafka, topic):
        w = WindowTotals.from_bytes(m.value())
        old = best.get(w.key)
        if old is None or (w.revision, w.event_count) > (old.revision, old.event_count):
            best[w.key] = w
    totals: dict[Key, list[int]] = {}
    for w in best.values():
        k = (w.tenant_id, w.model, w.window_start_ms)
        new = [*w.tokens().values(), w.event_count]
        totals[k] = [a + b for a, b in zip(totals.get(k, [0] * 6), new, strict=True)]
    return totals


def dead_letters(kafka: KafkaSettings, topic: str) -> dict[tuple[int, int], bytes]:
    found = {}
    for m in read_to_end(kafka, topic):
        h = dict(m.headers() or [])
        found[(int(h[DLQ_PARTITION]), int(h[DLQ_OFFSET]))] = m.value()
    return found


def wait_exact(
    kafka: KafkaSettings, topics: dict[str, str], expected: dict[Key, list[int]], timeout_s: float
) -> dict[Key, list[int]]:
    """Read the aggregates until they equal `expected` or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    got: dict[Key, list[int]] = {}
    while time.monotonic() < deadline:
        got = latest_totals(kafka, topics["aggregates"])
        if got == expected:
            break
        time.sleep(1.0)
    return got


def clickhouse_sink_env(
    worker: dict[str, str], tmp: Path, store: Path, group: str, **extra: str
) -> dict[str, str]:
    """A ClickHouse sink's environment beside a worker's: its chDB store, a free
    endpoint port, its own consumer group and short batches; `extra` adds or overrides."""
    return {
        **worker,
        "HOME": str(tmp),
        "TOKENOPS_CLICKHOUSE_URL": f"chdb://{store}",
        "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(free_port()),
        "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": group,
        "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "300",
        **extra,
    }
