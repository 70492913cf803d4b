"""Pipeline processes (worker, sinks) run beside the local stack, for the demo and tests.

Each is a `tokenops ...` command started detached with a pid file under the stack's
state directory, so `tokenops stack down` stops them too, and with a metrics port that
`scrape()` reads, so progress comes from the running pipeline itself.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tokenops.settings import StackSettings
from tokenops.stack.process import ManagedProcess


def tokenops_executable() -> str:
    """The `tokenops` script beside the running interpreter (the same virtualenv)."""
    beside = Path(sys.executable).with_name("tokenops")
    return str(beside) if beside.exists() else "tokenops"


class PipelineService:
    """One `tokenops <args>` process with its own environment and metrics port."""

    def __init__(
        self,
        settings: StackSettings,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        metrics_port: int | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.metrics_port = metrics_port
        self.process = ManagedProcess(
            name,
            settings.state_dir / "run" / f"{name}.pid",
            settings.state_dir / "logs" / f"{name}.log",
        )

    def start(self) -> int:
        if (pid := self.process.pid()) is not None:
            return pid
        environment = {**os.environ, **self.env}
        return self.process.start_with_env([tokenops_executable(), *self.args], environment)

    def stop(self) -> bool:
        return self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    @property
    def running(self) -> bool:
        return self.process.pid() is not None

    def scrape(self, timeout_s: float = 2.0) -> Samples:
        """The service's /metrics now; empty when it does not answer."""
        if self.metrics_port is None:
            return Samples([])
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                text = response.read().decode()
        except OSError:
            return Samples([])
        return Samples(
            [
                (sample.name, sample.labels, sample.value)
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            ]
        )


class Samples:
    """Samples of one scrape; `total(name, outcome="counted")` sums the matching ones."""

    def __init__(self, samples: list[tuple[str, dict[str, str], float]]) -> None:
        self.samples = samples

    def __bool__(self) -> bool:
        return bool(self.samples)

    def total(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )
