"""Scrape targets of the local Prometheus, written by the pipeline processes themselves.

Each service (worker, sinks) writes `<state_dir>/prometheus/targets/<job>-<port>.json`
with the port it really serves /metrics on, once it serves, and removes it when it
stops cleanly. The local Prometheus reads these files (file-based service discovery), so
its targets follow the services' real ports, whichever shell and settings started them.
A crashed service leaves its file behind and shows as down, as it should, until the next
start of that job removes files nothing listens behind.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

# Prometheus job names; alert rules and dashboards select on `job=~"tokenops.*"`.
PIPELINE_JOBS = (
    "tokenops-worker",
    "tokenops-prometheus-sink",
    "tokenops-clickhouse-sink",
    "tokenops-replication-lag",
)


def targets_dir(state_dir: Path) -> Path:
    return state_dir / "prometheus" / "targets"


def target_files(state_dir: Path, job: str) -> str:
    """The glob Prometheus watches for `job`."""
    return str(targets_dir(state_dir) / f"{job}-*.json")


def advertise(state_dir: Path, job: str, port: int) -> Path | None:
    """Tell the local Prometheus that `job` serves on `port`; None (nothing written)
    when no local stack was ever set up in `state_dir`, so a service run elsewhere
    leaves no files behind."""
    folder = targets_dir(state_dir)
    if not folder.is_dir():
        return None
    for stale in folder.glob(f"{job}-*.json"):  # left by a crashed predecessor
        if not _serving(stale):
            stale.unlink(missing_ok=True)
    path = folder / f"{job}-{port}.json"
    staging = path.with_suffix(f".{os.getpid()}.tmp")  # Prometheus never reads half a file
    staging.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))
    staging.replace(path)
    return path


def withdraw(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _serving(target_file: Path) -> bool:
    """Whether something still listens where `target_file` points."""
    try:
        host, port = json.loads(target_file.read_text())[0]["targets"][0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError, LookupError):
        return False
