"""Prometheus and Alertmanager from Debian's packages, run with the project's configs.

The checked-in configs under `deploy/prometheus/` and `deploy/alertmanager/` are the
production ones; the local stack renders a copy into the state directory with local
addresses (ports from `StackSettings`) and the same rule files.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tokenops.paths import deploy_dir
from tokenops.settings import StackSettings
from tokenops.stack.errors import StackError
from tokenops.stack.process import ManagedProcess, require_free_port
from tokenops.stack.targets import PIPELINE_JOBS, target_files, targets_dir
from tokenops.stack.tools import ensure_debian_package, first_line_version


class _HttpDaemon:
    """A server from a Debian package that is ready once `GET /-/ready` answers 200."""

    name: str
    binary: str
    package: str
    port_field: str
    storage_flag: str  # where it keeps its data
    extra_flags: tuple[str, ...] = ()

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name
        self.process = ManagedProcess(
            self.name, settings.state_dir / "run" / f"{self.name}.pid", self.home / "server.log"
        )

    @property
    def port(self) -> int:
        port: int = getattr(self.settings, self.port_field)
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def version(self) -> str:
        return first_line_version([self.binary, "--version"])

    def running_pid(self) -> int | None:
        return self.process.pid()

    def argv(self, executable: str) -> list[str]:
        """Both servers take the same config, data and address flags, and one more each."""
        return [
            executable,
            f"--config.file={self.config_path()}",
            f"--{self.storage_flag}={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.extra_flags,
        ]

    def config_path(self) -> Path:
        """The config file to start with (rendered when needed)."""
        raise NotImplementedError

    def start(self) -> int:
        if (pid := self.running_pid()) is not None:
            return pid
        require_free_port(self.name, self.port, self.settings.env_name(self.port_field))
        executable = ensure_debian_package(self.binary, self.package)
        self.home.mkdir(parents=True, exist_ok=True)
        pid = self.process.start(self.argv(executable), cwd=self.home)
        self.wait_ready()
        return pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.exited_early():
                raise StackError(f"{self.name} exited during start-up:\n{self.process.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise StackError(f"{self.name} was not ready within {self.settings.start_timeout_s:.0f} s")

    def stop(self) -> bool:
        return self.process.stop()


class AlertmanagerServer(_HttpDaemon):
    name = "alertmanager"
    binary = "prometheus-alertmanager"
    package = "prometheus-alertmanager"
    port_field = "alertmanager_port"
    storage_flag = "storage.path"
    extra_flags = ("--cluster.listen-address=",)  # one local instance: no gossip port to collide

    def config_path(self) -> Path:
        return deploy_dir() / "alertmanager" / "alertmanager.yml"


class PrometheusServer(_HttpDaemon):
    name = "prometheus"
    binary = "prometheus"
    package = "prometheus"
    port_field = "prometheus_port"
    storage_flag = "storage.tsdb.path"
    extra_flags = ("--web.enable-lifecycle",)  # lets tests and `stack` reload rules in place

    def __init__(self, settings: StackSettings, scrape_targets: dict[str, str] | None = None):
        super().__init__(settings)
        # job name -> host:port, for a service that does not announce itself (an
        # in-process sink in a test); every other pipeline job is discovered from files.
        self.scrape_targets = scrape_targets or {}

    def render_config(self) -> Path:
        """The checked-in prometheus.yml with local addresses, absolute rule paths, and the
        pipeline's jobs discovered from the files its services write."""
        source = deploy_dir() / "prometheus"
        config: dict[str, Any] = yaml.safe_load((source / "prometheus.yml").read_text())
        config["rule_files"] = [str(source / rule) for rule in config.get("rule_files", [])]
        alertmanager = f"127.0.0.1:{self.settings.alertmanager_port}"
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        jobs = [{"job_name": "prometheus", "static_configs": [{"targets": [self.url[7:]]}]}]
        jobs += [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in self.scrape_targets.items()
        ]
        # The pipeline's services announce their own ports (`stack/targets.py`).
        jobs += [
            {
                "job_name": job,
                "file_sd_configs": [
                    {
                        "files": [target_files(self.settings.state_dir, job)],
                        "refresh_interval": "5s",
                    }
                ],
            }
            for job in PIPELINE_JOBS
            if job not in self.scrape_targets
        ]
        config["scrape_configs"] = jobs
        self.home.mkdir(parents=True, exist_ok=True)
        targets_dir(self.settings.state_dir).mkdir(parents=True, exist_ok=True)
        rendered = self.home / "prometheus.yml"
        rendered.write_text(yaml.safe_dump(config, sort_keys=False))
        return rendered

    def config_path(self) -> Path:
        return self.render_config()
