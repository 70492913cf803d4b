"""The fleet simulator: usage traffic like a fleet of inference nodes, with its ledger.

    config = SimulationConfig(tenants=50, rate=20_000, duration_s=30, seed=7,
                              duplicate_share=0.01, late_share=0.01, late_by_s=120,
                              malformed_share=0.001)
    with UsageProducer(kafka, ProducerSettings(topic=topic)) as producer:
        ledger = Simulator(config).run(producer)      # paced to `rate`, events/s
    ledger.save("ledger.json")                        # see ledger.py for the ledger API

Tenants get traffic by a Zipf law (tenant-001 the busiest), models by `models` weights,
token counts are log-normal. Event time is a simulated clock, `start_ms + i / rate`, so a
seed and a start give the same events byte for byte; `start_ms` defaults to now. Faults:
`duplicate_share` re-sends an earlier event (same source + id), `late_share` stamps an
event `late_by_s` earlier than the clock, `malformed_share` sends a broken record (its
exact bytes go in the ledger). `run(producer, progress=..., stop=...)` calls `progress(n)`
as records go out and ends early when `stop()` is true (the ledger then says incomplete).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenops.producers.producer import UsageProducer
from tokenops.simulate.ledger import Ledger, MalformedRecord
from tokenops.simulate.malformed import MALFORMED_KINDS, malformed_record

DEFAULT_MODELS = (
    ("claude-sonnet-4-5", "anthropic", 0.35),
    ("claude-haiku-4-5", "anthropic", 0.20),
    ("gpt-4o", "openai", 0.25),
    ("gpt-4o-mini", "openai", 0.15),
    ("llama-3.1-70b-instruct", "meta", 0.05),
)
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOG_INPUT, _LOG_OUTPUT = math.log(1500), math.log(250)


@dataclass(frozen=True)
class SimulationConfig:
    tenants: int = 50
    zipf_s: float = 1.1
    models: tuple[tuple[str, str, float], ...] = DEFAULT_MODELS
    rate: float = 1000.0
    duration_s: float = 10.0
    seed: int = 0
    nodes: int = 16
    start_ms: int | None = None
    duplicate_share: float = 0.0
    late_share: float = 0.0
    late_by_s: float = 120.0
    malformed_share: float = 0.0
    # Names of this run's tenants are `<tenant_prefix>001`...; a run-scoped prefix keeps
    # repeated runs on one stack apart (the demo uses one per run).
    tenant_prefix: str = "tenant-"
    # The regions the fleet's nodes are in, round robin; one name for a regional fleet
    # (`tokenops simulate --region west` on that region's cluster).
    regions: tuple[str, ...] = REGIONS

    @property
    def total_records(self) -> int:
        return max(1, round(self.rate * self.duration_s))


@dataclass(frozen=True)
class Emission:
    """One record to send: a valid event (maybe a duplicate or late), or malformed bytes."""

    fields: dict[str, Any] | None = None
    duplicate: bool = False
    late_by_ms: int = 0
    malformed: MalformedRecord | None = None


class Simulator:
    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.start_ms = config.start_ms if config.start_ms is not None else _now_ms()
        self._rng = random.Random(config.seed)
        weights = [1 / (k**config.zipf_s) for k in range(1, config.tenants + 1)]
        self._tenant_weights = list(itertools.accumulate(weights))
        self._tenants = [f"{config.tenant_prefix}{k:03d}" for k in range(1, config.tenants + 1)]
        self._model_weights = list(itertools.accumulate(m[2] for m in config.models))
        self._projects = {t: [f"{t}-proj-{k}" for k in range(3)] for t in self._tenants}
        regions = config.regions
        self._nodes = [
            (
                f"//sim/{regions[n % len(regions)]}/node-{n:03d}",
                regions[n % len(regions)],
                f"node-{n:03d}",
            )
            for n in range(config.nodes)
        ]
        # Event ids are unique per (seed, start): two runs never share a `source` + `id`,
        # so the worker's deduplication cannot swallow a second run's traffic.
        self._run = f"{config.seed:x}-{self.start_ms:x}"
        self._drawn = self._draws(self._rng)

    def emissions(self) -> Iterator[Emission]:
        """The deterministic sequence of records (no I/O): a seed gives the same list."""
        cfg, rng = self.config, self._rng
        recent: list[dict[str, Any]] = []
        for i in range(cfg.total_records):
            clock_ms = self.start_ms + int(i * 1000 / cfg.rate)
            roll = rng.random()
            if roll < cfg.malformed_share:
                base = self._fields(i, clock_ms, rng)
                kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
                key, value = malformed_record(kind, base)
                yield Emission(malformed=MalformedRecord(kind, key, value))
            elif roll < cfg.malformed_share + cfg.duplicate_share and recent:
                yield Emission(fields=rng.choice(recent), duplicate=True)
            else:
                late_ms = 0
                if rng.random() < cfg.late_share:
                    late_ms = int(cfg.late_by_s * 1000)
                fields = self._fields(i, clock_ms - late_ms, rng)
                recent.append(fields)
                if len(recent) > 1000:
                    del recent[:500]
                yield Emission(fields=fields, late_by_ms=late_ms)

    def _draws(self, rng: random.Random) -> Iterator[tuple[str, tuple[str, str, float], int]]:
        """(tenant, model, node) drawn in chunks: `choices(k=...)` is far cheaper per draw."""
        cfg = self.config
        nodes = range(cfg.nodes)
        while True:
            tenants = rng.choices(self._tenants, cum_weights=self._tenant_weights, k=1024)
            models = rng.choices(cfg.models, cum_weights=self._model_weights, k=1024)
            yield from zip(tenants, models, rng.choices(nodes, k=1024), strict=True)

    def _fields(self, i: int, time_ms: int, rng: random.Random) -> dict[str, Any]:
        tenant, (model, provider, _), node = next(self._drawn)
        input_tokens = min(200_000, max(1, int(math.exp(rng.gauss(_LOG_INPUT, 1.0)))))
        output_tokens = min(32_000, max(1, int(math.exp(rng.gauss(_LOG_OUTPUT, 0.9)))))
        u = rng.random()
        cache_read = int(input_tokens * u / 0.4) if u < 0.4 else 0
        cache_creation = int(input_tokens * (u - 0.9) * 5) if u >= 0.9 else 0
        reasoning = int(output_tokens * u) if provider == "openai" else 0
        source, region, node_id = self._nodes[node]
        return {
            "id": f"{self._run}-{i:010d}",
            "source": source,
            "time": _EPOCH + timedelta(milliseconds=time_ms),
            "tenant_id": tenant,
            "project_id": self._projects[tenant][i % 3],
            "region": region,
            "node_id": node_id,
            "model": model,
            "provider": provider,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_creation,
            "reasoning_output_tokens": reasoning,
        }

    def run(
        self,
        producer: UsageProducer,
        *,
        progress: Callable[[int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Ledger:
        """Send every emission through `producer`, paced to `rate`; returns the ledger.

        Flushes the producer before returning, so the ledger describes acknowledged (or
        spooled) records. Valid events go through `producer.send_many` in chunks of 500
        (validated there, with the producer's allowed clock skew).
        """
        cfg = self.config
        ledger = Ledger(config={**asdict(cfg), "start_ms": self.start_ms}, topic=producer.topic)
        began, sent = time.monotonic(), 0
        chunk: list[dict[str, Any]] = []
        for emission in self.emissions():
            if emission.malformed is not None:
                self._send_malformed(producer, ledger, emission.malformed)
            else:
                fields = emission.fields
                assert fields is not None
                chunk.append(fields)
                if emission.duplicate:
                    ledger.duplicates.append((fields["source"], fields["id"]))
                else:
                    ledger.count_fields(fields)
                    if emission.late_by_ms:
                        ledger.late.append((fields["source"], fields["id"], emission.late_by_ms))
            sent += 1
            if sent % 500 == 0:
                producer.send_many(chunk)  # validated there, column-wise
                chunk = []
                if progress is not None:
                    progress(sent)
                if stop is not None and stop():
                    ledger.completed = False
                    break
                ahead = sent / cfg.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
        producer.send_many(chunk)
        ledger.records_sent = sent
        producer.flush()
        if progress is not None:
            progress(sent)
        return ledger

    @staticmethod
    def _send_malformed(producer: UsageProducer, ledger: Ledger, record: MalformedRecord) -> None:
        index = len(ledger.malformed)
        ledger.malformed.append(record)

        def delivered(partition: int, offset: int) -> None:
            ledger.malformed[index] = MalformedRecord(
                record.kind, record.key, record.value, partition, offset
            )

        producer.send_raw(record.value, record.key, "application/cloudevents+json", delivered)


def _now_ms() -> int:
    return int(time.time() * 1000)
