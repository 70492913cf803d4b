"""A single-node Apache Kafka 4 broker in KRaft combined mode, from Maven Central's jars.

The jars are resolved once by `mvn dependency:copy-dependencies` on the checked-in
`deploy/local/kafka/pom.xml` into the cache directory. Storage is formatted on first start;
a data directory formatted by someone else is refused unless the caller forces a wipe.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka.admin import AdminClient

from tokenops.paths import deploy_dir
from tokenops.settings import StackSettings
from tokenops.stack.errors import ForeignStateError, StackError
from tokenops.stack.process import ManagedProcess, require_free_port
from tokenops.stack.tools import java_major_version, require_maven

logger = logging.getLogger(__name__)


def log4j2_properties(log_file: str, quiet: tuple[str, ...]) -> str:
    """A log4j2 configuration for a Kafka JVM (broker or MirrorMaker): INFO to `log_file`
    (a log4j2 expression such as `${sys:kafka.logs.dir}/server.log`), WARN for the chatty
    `quiet` loggers. A `.properties` file needs no Jackson YAML on the classpath."""
    lines = [
        "status = error",
        "appender.file.type = File",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log_file}",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
    ]
    for name in quiet:
        short = name.rsplit(".", 1)[-1]
        lines += [f"logger.{short}.name = {name}", f"logger.{short}.level = WARN"]
    return "\n".join(lines) + "\n"


_LOG4J2 = log4j2_properties(
    "${sys:kafka.logs.dir}/server.log", ("org.apache.kafka.controller", "org.apache.kafka.raft")
)


def kafka_version(pom: Path | None = None) -> str:
    text = (pom or deploy_dir() / "local" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if match is None:
        raise StackError("deploy/local/kafka/pom.xml has no <kafka.version> property")
    return match.group(1)


def resolve_jars(pom: Path, jars_dir: Path, what: str) -> Path:
    """`mvn dependency:copy-dependencies` of `pom` into `jars_dir`, once: a finished
    directory holds a `.complete` marker, a half-resolved one is never used."""
    marker = jars_dir / ".complete"
    if marker.exists():
        return jars_dir
    java_major_version()
    mvn = require_maven()
    staging = jars_dir.with_name(f"libs.{uuid.uuid4().hex[:8]}.partial")
    logger.info("fetching %s jars from Maven Central into %s", what, staging)
    done = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={staging}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(
            f"mvn could not resolve {what}: {done.stdout[-800:]}",
            hint="check that Maven Central is reachable (mvn -X shows the requests)",
        )
    (staging / ".complete").touch()
    shutil.rmtree(jars_dir, ignore_errors=True)
    staging.rename(jars_dir)
    return jars_dir


class KafkaBroker:
    """The local broker: `start()` formats storage if needed, launches it, waits until it serves."""

    def __init__(
        self,
        settings: StackSettings,
        *,
        extra_properties: dict[str, str] | None = None,
        format_args: Sequence[str] = (),
        name: str = "kafka",
        ports: tuple[int, int] | None = None,
    ):
        """`extra_properties` override or add server.properties entries (listeners, TLS);
        `format_args` go to `StorageTool format` on first start, for example
        `("--add-scram", "SCRAM-SHA-512=[name=alice,password=...]")` to create users.
        `name` and `ports` (broker, controller) set up another cluster beside the stack's
        own, a region's (`stack/regions.py`): its data under `<state_dir>/<name>`."""
        self.settings = settings
        self.name = name
        self.port, self.controller_port = ports or (
            settings.kafka_port,
            settings.kafka_controller_port,
        )
        self.version = kafka_version()
        self.home = settings.state_dir / name
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.jars_dir = settings.cache_dir / f"kafka-{self.version}" / "libs"
        self.extra_properties = extra_properties or {}
        self.format_args = tuple(format_args)
        self.process = ManagedProcess(
            name, settings.state_dir / "run" / f"{name}.pid", self.logs_dir / "stdout.log"
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- set-up ---------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Resolve the broker's classpath from Maven Central once; later calls are free."""
        pom = deploy_dir() / "local" / "kafka" / "pom.xml"
        return resolve_jars(pom, self.jars_dir, f"Kafka {self.version}")

    def write_config(self) -> Path:
        port, controller = self.port, self.controller_port
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Compacted topics (aggregates, quotas, changelogs) are cleaned promptly.
            "log.cleaner.backoff.ms": "5000",
            **self.extra_properties,
        }
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        return config

    def _classpath(self) -> str:
        return f"{self.jars_dir}/*"

    def ensure_formatted(self, config: Path, *, force: bool = False) -> None:
        """Format storage once; refuse a data directory this stack did not format."""
        meta = self.data_dir / "meta.properties"
        ours = self.home / "cluster-id"
        if meta.exists():
            found = re.search(r"cluster\.id=(\S+)", meta.read_text())
            expected = ours.read_text().strip() if ours.exists() else None
            if found is not None and found.group(1) == expected:
                return
            if not force:
                raise ForeignStateError(
                    f"{self.data_dir} holds another Kafka cluster's data "
                    f"(cluster.id={found.group(1) if found else '?'}); refusing to touch it",
                    hint="point TOKENOPS_STACK_STATE_DIR elsewhere, or rerun with --force "
                    "to delete that data",
                )
            logger.warning("deleting foreign Kafka data in %s (--force)", self.data_dir)
            shutil.rmtree(self.data_dir)
        elif self.data_dir.exists() and any(self.data_dir.iterdir()):
            if not force:
                raise ForeignStateError(
                    f"{self.data_dir} is not empty but was never formatted by tokenops",
                    hint="point TOKENOPS_STACK_STATE_DIR elsewhere, or rerun with --force",
                )
            shutil.rmtree(self.data_dir)
        cluster_id = self._java_tool("kafka.tools.StorageTool", "random-uuid").strip()
        self._java_tool(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
            *self.format_args,
        )  # fmt: skip
        ours.write_text(cluster_id + "\n")

    def _java_tool(self, main: str, *args: str) -> str:
        done = subprocess.run(
            ["java", "-cp", self._classpath(), main, *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            # only the sub-command: the arguments may carry SCRAM passwords
            raise StackError(f"{main} {args[0]} failed: {done.stdout}{done.stderr}")
        # StorageTool prints its answer last; SLF4J notices may come first.
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    # -- lifecycle ------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        return self.process.pid()

    def start(self, *, force: bool = False) -> int:
        if (pid := self.running_pid()) is not None:
            return pid
        require_free_port("Kafka", self.port, self.settings.env_name("kafka_port"))
        require_free_port(
            "Kafka's controller",
            self.controller_port,
            self.settings.env_name("kafka_controller_port"),
        )
        self.ensure_jars()
        config = self.write_config()
        self.ensure_formatted(config, force=force)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        heap = f"-Xmx{self.settings.kafka_heap_mb}m"
        argv = [
            "java", heap, "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp", self._classpath(), "kafka.Kafka", str(config),
        ]  # fmt: skip
        pid = self.process.start(argv, cwd=self.home)
        self.wait_ready()
        return pid

    def wait_ready(self) -> None:
        """Block until a metadata request succeeds, or fail with the broker's last log lines."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while time.monotonic() < deadline:
            if self.process.exited_early():
                raise StackError(
                    f"the Kafka broker exited during start-up:\n{self._last_log_lines()}"
                )
            try:
                admin.list_topics(timeout=1.0)
                return
            except Exception:  # any failure here means "not ready yet"
                time.sleep(0.3)
        raise StackError(
            f"the Kafka broker did not answer within {self.settings.start_timeout_s:.0f} s:\n"
            f"{self._last_log_lines()}",
            hint="raise TOKENOPS_STACK_START_TIMEOUT_S on a slow machine",
        )

    def _last_log_lines(self) -> str:
        server_log = self.logs_dir / "server.log"
        lines = (
            server_log.read_text(errors="replace").splitlines()[-15:] if server_log.exists() else []
        )
        return "\n".join(lines) or self.process.log_tail()

    def stop(self) -> bool:
        return self.process.stop(timeout_s=60)

    def kill(self) -> None:
        self.process.kill()
