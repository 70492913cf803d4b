"""Where a demo runs: its own state directory and ports, beside the user's stack.

`tokenops demo` never touches a stack the user runs: its Kafka, Prometheus,
Alertmanager, worker, sinks and ClickHouse store live in `<state_dir>/demo-stack` on
free ports, and `stack down` at the end stops only those. A demo left running
(`--keep-running`) keeps its ports (saved in `ports.json`), so the next demo finds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tokenops.settings import StackSettings
from tokenops.stack.process import ManagedProcess, free_port

_PORTS = (
    "kafka_port",
    "kafka_controller_port",
    "prometheus_port",
    "alertmanager_port",
    "worker_port",
    "clickhouse_sink_port",
    "prometheus_sink_port",
    "api_port",
)


@dataclass(frozen=True)
class DemoPlace:
    stack: StackSettings
    worker_port: int
    clickhouse_sink_port: int
    prometheus_sink_port: int
    api_port: int

    @property
    def api_keys_file(self) -> Path:
        return self.stack.state_dir / "api-keys.json"

    @property
    def clickhouse_url(self) -> str:
        return f"chdb://{self.stack.state_dir / 'clickhouse'}"

    def service_env(self) -> dict[str, str]:
        """What every demo process runs with, over the user's environment: the demo's
        state directory, Kafka port and store win over whatever that shell set."""
        stack = self.stack
        return {
            "TOKENOPS_STACK_STATE_DIR": str(stack.state_dir),
            "TOKENOPS_STACK_KAFKA_PORT": str(stack.kafka_port),
            "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{stack.kafka_port}",
            "TOKENOPS_CLICKHOUSE_URL": self.clickhouse_url,
            "TOKENOPS_WORKER_STATE_DIR": str(stack.state_dir / "worker"),
            "TOKENOPS_WORKER_HTTP_PORT": str(self.worker_port),
            "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(self.clickhouse_sink_port),
            "TOKENOPS_PROMETHEUS_SINK_PORT": str(self.prometheus_sink_port),
            "TOKENOPS_API_PORT": str(self.api_port),
            "TOKENOPS_API_KEYS_FILE": str(self.api_keys_file),
        }


def demo_place(user: StackSettings) -> DemoPlace:
    """The demo's place under the user's state directory: the ports of a demo stack
    still running there, else free ports now."""
    state_dir = user.state_dir / "demo-stack"
    saved = state_dir / "ports.json"
    kafka = ManagedProcess("kafka", state_dir / "run" / "kafka.pid", state_dir / "kafka.log")
    ports = {}
    if saved.exists() and kafka.pid() is not None:
        ports = {name: int(port) for name, port in json.loads(saved.read_text()).items()}
    if set(_PORTS) - ports.keys():  # none saved, or saved by a demo with fewer processes
        ports = {name: ports.get(name) or free_port() for name in _PORTS}
        _save(saved, ports)
    stack = user.model_copy(update={"state_dir": state_dir, **{n: ports[n] for n in _PORTS[:4]}})
    return DemoPlace(stack, ports["worker_port"], ports["clickhouse_sink_port"],
                     ports["prometheus_sink_port"], ports["api_port"])  # fmt: skip


def _save(path: Path, ports: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ports, indent=2) + "\n")
