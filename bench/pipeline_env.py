"""The benchmarks' stack: one broker on free ports (or the one TOKENOPS_KAFKA_BOOTSTRAP_SERVERS
names), unique topics, and the real `tokenops worker` / `tokenops sink clickhouse` processes
with their /metrics."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from tokenops.settings import KafkaSettings, StackSettings
from tokenops.stack.errors import StackError
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import free_port
from tokenops.stack.services import tokenops_executable
from tokenops.topics import TopicSpec, ensure_topics

TOKENOPS = tokenops_executable()


def start_broker(state_dir: Path, attempts: int = 3) -> KafkaBroker:
    """A broker on free ports; another process may take a port between the pick and the
    bind (the machine is shared), so a failed start is retried on new ports."""
    for attempt in range(attempts):
        broker = KafkaBroker(
            StackSettings(
                state_dir=state_dir / str(attempt),
                kafka_port=free_port(),
                kafka_controller_port=free_port(),
                kafka_heap_mb=768,
            )
        )
        try:
            broker.start()
            return broker
        except StackError:
            broker.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextmanager
def bench_kafka(state_dir: Path) -> Iterator[KafkaSettings]:
    """The broker TOKENOPS_KAFKA_BOOTSTRAP_SERVERS names, or a new one under `state_dir`,
    stopped afterwards."""
    if "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        yield KafkaSettings()
        return
    broker = start_broker(state_dir)
    try:
        yield KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    finally:
        broker.stop()


@dataclass(frozen=True)
class Topics:
    usage: str
    aggregates: str
    dead_letter: str
    quota_alerts: str
    quotas: str

    def env(self) -> dict[str, str]:
        return {f"TOKENOPS_TOPIC_{k.upper()}": v for k, v in self.__dict__.items()}


def new_topics(kafka: KafkaSettings, partitions: int = 4) -> Topics:
    run = uuid.uuid4().hex[:8]
    compact = {"cleanup.policy": "compact"}
    topics = Topics(*(f"bench.{n}.{run}" for n in ("usage", "aggs", "dlq", "alerts", "quotas")))
    ensure_topics(
        kafka,
        [
            TopicSpec(topics.usage, partitions, 1),
            TopicSpec(topics.aggregates, partitions, 1, compact),
            TopicSpec(topics.dead_letter, partitions, 1),
            TopicSpec(topics.quota_alerts, partitions, 1),
            TopicSpec(topics.quotas, 1, 1, compact),
        ],
    )
    wait_for_leaders(kafka, topics.usage)
    return topics


def wait_for_leaders(kafka: KafkaSettings, topic: str, timeout_s: float = 30.0) -> None:
    """Until every partition of `topic` has a leader. A load produced before that has its
    first records retried, and without idempotence reordered: events past a window's grace
    that a baseline never counts (issue 15)."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": f"bench-{uuid.uuid4().hex}"})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            parts = meta.partitions.values() if meta is not None and meta.error is None else []
            if parts and all(p.leader >= 0 and p.error is None for p in parts):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: partitions without a leader after {timeout_s} s")
            time.sleep(0.2)
    finally:
        consumer.close()


def base_env(kafka: KafkaSettings, topics: Topics) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(topics.env(), TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers)
    env["TOKENOPS_LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    return env


class Service:
    """A real tokenops process (`tokenops worker` or `tokenops sink clickhouse`)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.store: Path | None = None  # a sink's embedded store (its owner file: the token)
        self.proc = subprocess.Popen(
            argv, env=env, cwd=log.parent, stdout=log.open("ab"), stderr=subprocess.STDOUT
        )

    @classmethod
    def worker(
        cls, env: dict[str, str], work: Path, app_id: str, profile: Path | None = None, **extra: str
    ) -> Service:
        port = free_port()
        env = {
            **env,
            "TOKENOPS_WORKER_APP_ID": app_id,
            "TOKENOPS_WORKER_STATE_DIR": str(work / f"{app_id}-state"),
            "TOKENOPS_WORKER_HTTP_PORT": str(port),
        }
        env.update({f"TOKENOPS_WORKER_{k.upper()}": v for k, v in extra.items()})
        argv = [TOKENOPS, "worker"]
        if profile is not None:
            argv = [sys.executable, "-m", "cProfile", "-o", str(profile), *argv]
        return cls(argv, env, port, work / f"{app_id}.log")

    @classmethod
    def sink(cls, env: dict[str, str], work: Path, name: str, **extra: str) -> Service:
        port, store = free_port(), work / f"{name}-store"
        env = {
            **env,
            "HOME": str(work),
            "TOKENOPS_CLICKHOUSE_URL": f"chdb://{store}",
            "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(port),
            "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": name,
        }
        env.update({f"TOKENOPS_CLICKHOUSE_{k.upper()}": v for k, v in extra.items()})
        service = cls([TOKENOPS, "sink", "clickhouse"], env, port, work / f"{name}.log")
        service.store = store
        return service

    def metric(self, sample: str) -> float:
        return metric(self.port, sample)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"not ready in {timeout_s} s: {self.log.read_text()[-2000:]}")

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.log.name} exited: {self.log.read_text()[-2000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the process, MiB."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: cProfile writes its file on a clean exit
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


WORKER_COUNTED = 'tokenops_worker_events_total{outcome="counted"}'
SINK_RAW_ROWS = 'tokenops_clickhouse_sink_rows_total{table="raw_events"}'
SINK_AGG_RECORDS = 'tokenops_clickhouse_sink_records_total{role="aggregates"}'


def end_offsets(kafka: KafkaSettings, topic: str) -> int:
    """The sum of the topic's high watermarks: how many records it holds."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def machine() -> dict[str, str]:
    """Core count, load and versions: printed beside every figure."""
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "tokenops": version("tokenops"),
        "faust-streaming": version("faust-streaming"),
        "confluent-kafka": version("confluent-kafka"),
        "chdb": version("chdb"),
        "kafka": "4.1.1 (broker and Kafka Streams)",
        "java": java.splitlines()[0] if java else "?",
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def metric(port: int, sample: str) -> float:
    """One sample of a local /metrics, e.g. 'name{label="x"}'; 0 when absent or not yet up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(sample + " "):
                    return float(line.split()[-1])
    except OSError:
        pass
    return 0.0
