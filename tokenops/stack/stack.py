"""`tokenops stack up | down | status`: the whole local stack as one unit."""

from __future__ import annotations

from dataclasses import dataclass

from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.stack.alerting import AlertmanagerServer, PrometheusServer
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import ManagedProcess
from tokenops.topics import ensure_topics, pipeline_topics


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    version: str
    state: str  # "up", "down", or "embedded" for the in-process ClickHouse engine

    @property
    def up(self) -> bool:
        return self.state in ("up", "embedded")


class LocalStack:
    """Kafka, Prometheus and Alertmanager under one state directory, plus the ClickHouse store.

    ClickHouse is the embedded chDB engine: it runs inside whichever tokenops process
    opens the store, so the stack only reports where the store lives.
    """

    def __init__(self, settings: StackSettings, topics: TopicSettings | None = None) -> None:
        self.settings = settings
        self.topics = topics or TopicSettings()
        self.kafka = KafkaBroker(settings)
        self.prometheus = PrometheusServer(settings, scrape_targets=pipeline_scrape_targets())
        self.alertmanager = AlertmanagerServer(settings)

    @property
    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.kafka.bootstrap_servers)

    @property
    def clickhouse_dsn(self) -> str:
        return f"chdb://{self.settings.state_dir / 'clickhouse'}"

    def running(self) -> list[str]:
        daemons = (self.kafka, self.prometheus, self.alertmanager)
        return [d.name for d in daemons if d.running_pid() is not None]

    def up(self, *, force: bool = False) -> None:
        """Start what is not running yet (in dependency order) and create the topics."""
        self.kafka.start(force=force)
        ensure_topics(self.kafka_settings, pipeline_topics(self.topics))
        self.alertmanager.start()
        self.prometheus.start()

    def down(self) -> list[str]:
        """Stop pipeline processes, then Prometheus, Alertmanager and Kafka.

        Returns the names of what was running.
        """
        stopped = []
        daemons = {"kafka", "prometheus", "alertmanager"}
        for pid_file in sorted((self.settings.state_dir / "run").glob("*.pid")):
            if pid_file.stem not in daemons:
                service = ManagedProcess(pid_file.stem, pid_file, pid_file.with_suffix(".log"))
                if service.stop():
                    stopped.append(pid_file.stem)
        for daemon in (self.prometheus, self.alertmanager, self.kafka):
            if daemon.stop():
                stopped.append(daemon.name)
        return stopped

    def status(self) -> list[ComponentStatus]:
        rows = [
            _daemon_status("kafka", self.kafka.bootstrap_servers, self.kafka.running_pid(),
                           self.kafka.version),
            _daemon_status("prometheus", self.prometheus.url, self.prometheus.running_pid(),
                           self.prometheus.version()),
            _daemon_status("alertmanager", self.alertmanager.url,
                           self.alertmanager.running_pid(), self.alertmanager.version()),
        ]  # fmt: skip
        rows.append(ComponentStatus("clickhouse", self.clickhouse_dsn, None, *_chdb_state()))
        return rows


def pipeline_scrape_targets() -> dict[str, str]:
    """The pipeline's own /metrics endpoints at their default local ports."""
    from tokenops.sinks.clickhouse.settings import ClickHouseSettings
    from tokenops.sinks.prometheus_settings import PrometheusSinkSettings
    from tokenops.streams.settings import WorkerSettings

    return {
        "tokenops-worker": f"127.0.0.1:{WorkerSettings().http_port}",
        "tokenops-prometheus-sink": f"127.0.0.1:{PrometheusSinkSettings().port}",
        "tokenops-clickhouse-sink": f"127.0.0.1:{ClickHouseSettings().http_port}",
    }


def _daemon_status(name: str, address: str, pid: int | None, version: str) -> ComponentStatus:
    return ComponentStatus(name, address, pid, version, "up" if pid is not None else "down")


def _chdb_state() -> tuple[str, str]:
    """The embedded engine is 'up' wherever chDB imports: each process opens the store."""
    try:
        import chdb
    except ImportError:
        return "chdb not installed", "down"
    return f"chdb {chdb.__version__}", "embedded"
