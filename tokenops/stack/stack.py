"""`tokenops stack up | down | status`: the whole local stack as one unit."""

from __future__ import annotations

import logging
import re
import urllib.request
from dataclasses import dataclass

from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.stack.alerting import AlertmanagerServer, PrometheusServer
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import ManagedProcess
from tokenops.stack.regions import RegionalStack
from tokenops.topics import ensure_topics, pipeline_topics

logger = logging.getLogger(__name__)


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

    def __init__(
        self,
        settings: StackSettings,
        topics: TopicSettings | None = None,
        clickhouse: ClickHouseSettings | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics or TopicSettings()
        self.clickhouse = clickhouse or ClickHouseSettings()
        self.kafka = KafkaBroker(settings)
        self.prometheus = PrometheusServer(settings)
        self.alertmanager = AlertmanagerServer(settings)

    @property
    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.kafka.bootstrap_servers)

    @property
    def clickhouse_dsn(self) -> str:
        """The store every tokenops command on this stack uses: `TOKENOPS_CLICKHOUSE_URL`
        (credentials masked) when set, else the embedded store in the state directory."""
        url = self.clickhouse.url
        if url is None:
            return f"chdb://{self.settings.state_dir / 'clickhouse'}"
        return re.sub(r"//[^/@]*@", "//***@", url)

    def running(self) -> list[str]:
        daemons = (self.kafka, self.prometheus, self.alertmanager)
        return [d.name for d in daemons if d.running_pid() is not None]

    def regional(self, regions: list[str]) -> RegionalStack:
        """The clusters and MirrorMaker of `regions` (central last, this stack's Kafka)."""
        return RegionalStack(self.settings, regions, self.kafka.bootstrap_servers, self.topics)

    def up(self, *, force: bool = False, regions: list[str] | None = None) -> None:
        """Start what is not running yet (in dependency order) and create the topics;
        with `regions`, also each source region's cluster and MirrorMaker into this one.

        When a part fails, what this call started is stopped again (what was already
        running stays): a failed `up` leaves the machine as it found it."""
        started: list[KafkaBroker | AlertmanagerServer | PrometheusServer | RegionalStack] = []
        try:
            if self.kafka.running_pid() is None:
                self.kafka.start(force=force)
                started.append(self.kafka)
            ensure_topics(self.kafka_settings, pipeline_topics(self.topics))
            for server in (self.alertmanager, self.prometheus):
                if server.running_pid() is None:
                    server.start()
                    started.append(server)
            if regions:
                regional = self.regional(regions)
                started.append(regional)
                regional.up(force=force)
        except BaseException:
            for daemon in reversed(started):
                logger.warning("stack up failed: stopping %s again", daemon.name)
                daemon.stop()
            raise

    def env(self) -> dict[str, str]:
        """The variables that point a second shell's tokenops at this stack."""
        names = ("state_dir", "kafka_port", "kafka_controller_port", "prometheus_port",
                 "alertmanager_port")  # fmt: skip
        exports = {self.settings.env_name(n): str(getattr(self.settings, n)) for n in names}
        exports["TOKENOPS_KAFKA_BOOTSTRAP_SERVERS"] = self.kafka.bootstrap_servers
        return exports

    def down(self) -> list[str]:
        """Stop pipeline processes, then Prometheus, Alertmanager and Kafka.

        Returns the names of what was running.
        """
        stopped = []
        daemons = {"kafka", "prometheus", "alertmanager"}
        # MirrorMaker and its exporter before the regional clusters they read.
        first = ("replication-lag", "mirrormaker")
        pid_files = (self.settings.state_dir / "run").glob("*.pid")
        for pid_file in sorted(pid_files, key=lambda f: (f.stem not in first, f.stem)):
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
        store = (
            _chdb_state()
            if self.clickhouse.url is None or self.clickhouse.url.startswith("chdb://")
            else _server_state(self.clickhouse.url)
        )
        rows.append(ComponentStatus("clickhouse", self.clickhouse_dsn, None, *store))
        # Started by `up --regions`: regional clusters, MirrorMaker, the lag exporter.
        for pid_file in sorted((self.settings.state_dir / "run").glob("*.pid")):
            name = pid_file.stem
            if name.startswith("kafka-") or name in ("mirrormaker", "replication-lag"):
                pid = ManagedProcess(name, pid_file, pid_file).pid()
                rows.append(_daemon_status(name, "", pid, ""))
        return rows


def _daemon_status(name: str, address: str, pid: int | None, version: str) -> ComponentStatus:
    return ComponentStatus(name, address, pid, version, "up" if pid is not None else "down")


def _chdb_state() -> tuple[str, str]:
    """The embedded engine is 'up' wherever chDB imports: each process opens the store."""
    try:
        import chdb
    except ImportError:
        return "chdb not installed", "down"
    return f"chdb {chdb.__version__}", "embedded"


def _server_state(url: str) -> tuple[str, str]:
    """A ClickHouse server answers `GET /ping` with `Ok.` (no credentials needed)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=2) as response:
            return "server", "up" if response.status == 200 else "down"
    except (OSError, ValueError):
        return "server", "down"
