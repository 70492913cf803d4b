"""Pieces of the chaos scenario (test_chaos.py): the processes, the load, the ledger.

Everything runs as real processes on a broker of the scenario's own (it is restarted),
with its own Prometheus and Alertmanager, all on free ports under one temporary folder.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from tests.e2e.worker_run import worker_env
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.producers.spool import read_entries
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.wire import encode_event, encode_fields
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.simulate.ledger import ExpectedTotals, Key, Ledger
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.stack.alerting import PrometheusServer
from tokenops.stack.process import free_port
from tokenops.stack.services import PipelineService

QUOTA_THRESHOLDS = (50, 80, 100)


class FastPrometheus(PrometheusServer):
    """The checked-in config and rules, scraping and evaluating every second."""

    def render_config(self) -> Path:
        path = super().render_config()
        config = yaml.safe_load(path.read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


@dataclass
class Pipeline:
    """The worker and both sinks as `tokenops` processes (pid files under the stack dir)."""

    stack: StackSettings
    kafka: KafkaSettings
    topics: TopicSettings
    tmp: Path
    app_id: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:6]}")
    sink_group: str = field(default_factory=lambda: f"chaos-sink-{uuid.uuid4().hex[:6]}")
    fault_file: Path = field(init=False)
    services: dict[str, PipelineService] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fault_file = self.tmp / "clickhouse-down"
        t = self.topics
        names = {
            "usage": t.usage,
            "aggregates": t.aggregates,
            "dead_letter": t.dead_letter,
            "quota_alerts": t.quota_alerts,
            "quotas": t.quotas,
        }
        env = worker_env(self.kafka, names, self.app_id, self.tmp)
        # Kafka clients notice a killed peer after the session timeout (librdkafka: 45 s).
        env["TOKENOPS_KAFKA_CLIENT_CONFIG"] = '{"session.timeout.ms": "6000"}'
        ports = {name: free_port() for name in ("worker", "sink-clickhouse", "sink-prometheus")}
        self.env = {
            "worker": {
                **env,
                "TOKENOPS_WORKER_STATE_DIR": str(self.tmp / "worker-state"),
                "TOKENOPS_WORKER_HTTP_PORT": str(ports["worker"]),
            },
            "sink-clickhouse": {
                **env,
                "HOME": str(self.tmp),
                "TOKENOPS_CLICKHOUSE_URL": f"chdb://{self.tmp / 'store'}",
                "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(ports["sink-clickhouse"]),
                "TOKENOPS_CLICKHOUSE_HTTP_HOST": "127.0.0.1",
                "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": self.sink_group,
                "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "300",
                "TOKENOPS_CLICKHOUSE_RETRY_MAX_MS": "2000",
                "TOKENOPS_CLICKHOUSE_FAULT_FILE": str(self.fault_file),
            },
            "sink-prometheus": {
                **env,
                "TOKENOPS_PROMETHEUS_SINK_HOST": "127.0.0.1",
                "TOKENOPS_PROMETHEUS_SINK_PORT": str(ports["sink-prometheus"]),
                "TOKENOPS_PROMETHEUS_SINK_WORKER_GROUP": self.app_id,
                "TOKENOPS_PROMETHEUS_SINK_LAG_INTERVAL_S": "1",
            },
        }
        args = {"worker": ["worker"], "sink-clickhouse": ["sink", "clickhouse"]}
        args["sink-prometheus"] = ["sink", "prometheus"]
        for name, port in ports.items():
            self.services[name] = PipelineService(
                self.stack, name, args[name], self.env[name], port
            )

    def port(self, name: str) -> int:
        port = self.services[name].metrics_port
        assert port is not None
        return port

    def start(self, name: str) -> None:
        self.services[name].start()
        self.wait_serving(name)

    def wait_serving(self, name: str, timeout_s: float = 120) -> None:
        """Until the process answers /healthz (the worker: owns its recovered state)."""
        service = self.services[name]
        deadline = time.monotonic() + timeout_s
        path = "/metrics" if name == "sink-prometheus" else "/healthz"
        url = f"http://127.0.0.1:{self.port(name)}{path}"
        while time.monotonic() < deadline:
            assert service.running, f"{name} exited:\n{service.process.log_tail(40)}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{name} not serving:\n{service.process.log_tail(40)}")

    def kill(self, name: str) -> None:
        """kill -9 (the whole process group), as a crash would."""
        self.services[name].kill()

    def stop_all(self) -> None:
        for service in self.services.values():
            service.stop()


class DefaultsProducer:
    """A plain confluent-kafka producer with librdkafka's defaults, as kcat or a Go/C
    client sends: partitioner `consistent_random` (CRC32), so most tenants' records land
    outside their home partition (murmur2). One CloudEvent per record. It has the part of
    `UsageProducer` the simulator uses (`Simulator(config).run(DefaultsProducer(...))`)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic, self.producer = topic, Producer(kafka.librdkafka())

    def send_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        for fields in events:
            tenant, value = encode_fields(fields)
            self._produce(value, tenant.encode())

    def send_raw(
        self,
        value: bytes,
        key: bytes | None,
        content_type: str,
        on_delivered: Callable[[int, int], None] | None = None,
    ) -> None:
        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            if on_delivered is not None:
                on_delivered(msg.partition(), msg.offset())

        self._produce(value, key, [("content-type", content_type.encode())], delivered)

    def _produce(
        self, value: bytes, key: bytes | None, headers: Any = None, delivered: Any = None
    ) -> None:
        self.producer.produce(self.topic, value, key, headers=headers, on_delivery=delivered)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0, "the defaults producer did not deliver"


def far_future_record(tenant: str) -> bytes:
    """One event dated 2400 (a producer that skipped the SDK's clock-skew check)."""
    fields = {
        "id": "far-future",
        "source": "//node/clockless",
        "time": datetime(2400, 1, 1, tzinfo=UTC),
        "tenant_id": tenant,
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 10_000,
        "output_tokens": 1,
    }
    return encode_event(UsageEvent.model_validate(fields, context={"max_future_skew_s": 1e12}))


def tenant_tokens(config: SimulationConfig) -> Counter[str]:
    """Input + output tokens the simulator's unique valid events give each tenant."""
    used: Counter[str] = Counter()
    for e in Simulator(config).emissions():
        if e.fields is not None and not e.duplicate:
            used[e.fields["tenant_id"]] += e.fields["input_tokens"] + e.fields["output_tokens"]
    return used


def expected_crossings(used: Counter[str], limits: dict[str, Decimal]) -> Counter[tuple[str, int]]:
    """(tenant, threshold %) of every quota crossing the usage implies, once each."""
    return Counter(
        (tenant, pct)
        for tenant, limit in limits.items()
        for pct in QUOTA_THRESHOLDS
        if used[tenant] * 100 >= limit * pct
    )


def merge(ledgers: list[Ledger]) -> Ledger:
    """One ledger for several simulator runs (their event ids never collide)."""
    buckets: dict[Key, ExpectedTotals] = {}
    merged = Ledger()
    for ledger in ledgers:
        _ = ledger.unique_events  # settles its running sums into `buckets`
        for key, totals in ledger.buckets.items():
            old = buckets.get(key, ExpectedTotals())
            buckets[key] = ExpectedTotals(*(a + b for a, b in zip(old, totals, strict=True)))
        merged.duplicates += ledger.duplicates
        merged.late += ledger.late
        merged.malformed += ledger.malformed
        merged.records_sent += ledger.records_sent
    return Ledger(
        buckets=buckets,
        duplicates=merged.duplicates,
        late=merged.late,
        malformed=merged.malformed,
        records_sent=merged.records_sent,
    )


def spooled_events(directory: Path) -> int:
    """Events in the spool files left in `directory` (a producer's undelivered records)."""
    if not directory.is_dir():
        return 0
    return sum(r.events for path in directory.glob("spool-*") for r in read_entries(path))


def replay_spool(kafka: KafkaSettings, topic: str, directory: Path) -> None:
    """Start producers on `directory` until its spool is empty: each replays it first."""
    for _ in range(5):
        if not spooled_events(directory):
            return
        with UsageProducer(kafka, ProducerSettings(topic=topic, spool_dir=directory)):
            pass
    raise AssertionError(f"the spool in {directory} was not replayed")


def write_figures(path: Path, figures: dict[str, object]) -> None:
    path.write_text(json.dumps(figures, indent=2, default=str))
