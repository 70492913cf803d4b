"""MirrorMaker 2 in dedicated mode, from Maven Central's `connect-mirror` jars.

It replicates each regional cluster's usage topic into the central cluster's usage topic
(`deploy/mm2/mm2.properties`, identity replication policy). The checked-in file is the
production one; the local stack renders a copy with the local clusters' addresses and
replication factor 1 appended, since in a properties file the last value of a key wins.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from pathlib import Path

from tokenops.paths import deploy_dir
from tokenops.settings import KafkaSettings, StackSettings
from tokenops.stack.errors import StackError
from tokenops.stack.kafka import kafka_version, log4j2_properties, resolve_jars
from tokenops.stack.process import ManagedProcess
from tokenops.topics import read_to_end

_LOG4J2 = log4j2_properties("${sys:mm2.logs.dir}/mirrormaker.log", ("org.apache.kafka.clients",))

# One replication task per flow (tasks.max 1, the default): its status record's key.
_SOURCE_TASK_STATUS = b"status-task-MirrorSourceConnector-0"

_REPLICATION_FACTORS = (
    "replication.factor",
    "offset-syncs.topic.replication.factor",
    "heartbeats.topic.replication.factor",
    "checkpoints.topic.replication.factor",
    "offset.storage.replication.factor",
    "status.storage.replication.factor",
    "config.storage.replication.factor",
)


def offsets_topic(source: str) -> str:
    """Where dedicated-mode MirrorMaker commits the source offsets it replicated from
    `source`: a compacted topic in the target cluster."""
    return f"mm2-offsets.{source}.internal"


def status_topic(source: str) -> str:
    """Where MirrorMaker's workers of the `source` flow report connector and task states."""
    return f"mm2-status.{source}.internal"


def mirror_properties(
    clusters: Mapping[str, str], central: str, topic: str, base: str | None = None
) -> str:
    """The checked-in mm2.properties plus overrides for `clusters` (alias -> bootstrap
    servers), every other alias replicating `topic` into `central`, replication factor 1."""
    text = base if base is not None else (deploy_dir() / "mm2" / "mm2.properties").read_text()
    overrides = {"clusters": ", ".join(clusters)}
    for alias, servers in clusters.items():
        overrides[f"{alias}.bootstrap.servers"] = servers
        if alias != central:
            overrides[f"{alias}->{central}.enabled"] = "true"
            overrides[f"{central}->{alias}.enabled"] = "false"
            overrides[f"{alias}->{central}.topics"] = re.escape(topic).replace("\\", "\\\\")
    # The checked-in flow's aliases may not be this stack's: switch that flow off, and
    # give the checked-in target's worker settings (flush interval) to `central`.
    for flow in re.findall(r"^(\w+->\w+)\.enabled\s*=", text, re.MULTILINE):
        overrides.setdefault(f"{flow}.enabled", "false")
    for target, key, value in re.findall(r"^(\w+)\.(offset\.flush\.\S+)\s*=\s*(.*)$", text, re.M):
        if target != central:
            overrides[f"{central}.{key}"] = value
    overrides.update(dict.fromkeys(_REPLICATION_FACTORS, "1"))
    local = "".join(f"{key} = {value}\n" for key, value in overrides.items())
    return f"{text}\n# -- local stack overrides (tokenops stack up --regions) --\n{local}"


class MirrorMaker:
    """One dedicated MirrorMaker 2 process: `start()` renders its config and launches it."""

    name = "mirrormaker"

    def __init__(
        self, settings: StackSettings, clusters: Mapping[str, str], central: str, topic: str
    ) -> None:
        self.settings = settings
        self.clusters = dict(clusters)
        self.central = central
        self.topic = topic
        self.version = kafka_version()
        self.home = settings.state_dir / self.name
        self.logs_dir = self.home / "logs"
        self.jars_dir = settings.cache_dir / f"mirrormaker-{self.version}" / "libs"
        self.process = ManagedProcess(
            self.name, settings.state_dir / "run" / f"{self.name}.pid", self.logs_dir / "stdout.log"
        )

    def ensure_jars(self) -> Path:
        pom = deploy_dir() / "local" / "mirrormaker" / "pom.xml"
        return resolve_jars(pom, self.jars_dir, f"MirrorMaker {self.version}")

    def write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "mm2.properties"
        config.write_text(mirror_properties(self.clusters, self.central, self.topic))
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        return config

    def running_pid(self) -> int | None:
        return self.process.pid()

    def start(self) -> int:
        if (pid := self.running_pid()) is not None:
            return pid
        jars = self.ensure_jars()
        config = self.write_config()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "java", "-Xmx384m", "-Xms128m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dmm2.logs.dir={self.logs_dir}",
            "-cp", f"{jars}/*", "org.apache.kafka.connect.mirror.MirrorMaker", str(config),
        ]  # fmt: skip
        since_ms = int(time.time() * 1000)
        pid = self.process.start(argv, cwd=self.home)
        self.wait_ready(since_ms)
        return pid

    def wait_ready(self, since_ms: int) -> None:
        """Until each source's replication task reports RUNNING, written after `since_ms`
        (MirrorMaker's status topic in central; its internal topics exist well before
        the task replicates). Fail with MirrorMaker's log when it exits or times out."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.exited_early():
                raise StackError(f"MirrorMaker exited during start-up:\n{self.log_tail()}")
            try:
                if all(self._replicating(alias, since_ms) for alias in self.sources):
                    return
            except Exception:  # topics not created or led yet: not ready
                pass
            time.sleep(0.5)
        raise StackError(
            f"MirrorMaker was not ready within {self.settings.start_timeout_s:.0f} s:\n"
            f"{self.log_tail()}",
            hint="raise TOKENOPS_STACK_START_TIMEOUT_S on a slow machine",
        )

    @property
    def sources(self) -> list[str]:
        return [alias for alias in self.clusters if alias != self.central]

    def _replicating(self, source: str, since_ms: int) -> bool:
        central = KafkaSettings(bootstrap_servers=self.clusters[self.central])
        latest = None
        for message in read_to_end(central, status_topic(source), timeout_s=5):
            if message.key() == _SOURCE_TASK_STATUS:
                latest = message
        if latest is None or latest.timestamp()[1] < since_ms:
            return False
        return bool(json.loads(latest.value() or b"{}").get("state") == "RUNNING")

    def log_tail(self, lines: int = 15) -> str:
        log = self.logs_dir / "mirrormaker.log"
        if not log.exists():
            return self.process.log_tail(lines)
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> bool:
        return self.process.stop(timeout_s=30)

    def kill(self) -> None:
        """SIGKILL, as a crash would: replication resumes from the last committed offsets."""
        self.process.kill()
