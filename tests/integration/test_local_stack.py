"""`tokenops stack up | status | down` on free ports: every component up, then nothing left."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.processes import TOKENOPS
from tokenops.stack.process import free_port, is_alive

pytestmark = pytest.mark.integration


def _env(state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TOKENOPS_STACK_STATE_DIR": str(state_dir),
        "TOKENOPS_STACK_KAFKA_PORT": str(free_port()),
        "TOKENOPS_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
        "TOKENOPS_STACK_PROMETHEUS_PORT": str(free_port()),
        "TOKENOPS_STACK_ALERTMANAGER_PORT": str(free_port()),
        "COLUMNS": "200",
    }


def _tokenops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cli = Path(TOKENOPS)
    return subprocess.run(
        [str(cli), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _states(table: str) -> list[str]:
    """The state column of `stack status`."""
    return re.findall(r"│ (?:kafka|prometheus|alertmanager|clickhouse)\s+│ (\w+)", table)


def _pids(state_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in (state_dir / "run").glob("*.pid")]


def test_stack_up_status_down(tmp_path: Path) -> None:
    env = _env(tmp_path / "state")
    try:
        started = _tokenops(env, "stack", "up")
        assert started.returncode == 0, started.stderr
        status = _tokenops(env, "stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        for component in ("kafka", "prometheus", "alertmanager", "clickhouse"):
            assert component in status.stdout
        assert _states(status.stdout) == ["up", "up", "up", "embedded"]
        pids = _pids(tmp_path / "state")
        assert len(pids) == 3

        again = _tokenops(env, "stack", "up")
        assert again.returncode == 0
        assert "already running" in again.stdout
    finally:
        stopped = _tokenops(env, "stack", "down")
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids:
        assert not is_alive(pid), f"pid {pid} survived stack down"
    after = _tokenops(env, "stack", "status")
    assert after.returncode == 1
    assert _states(after.stdout) == ["down", "down", "down", "embedded"]


def test_port_in_use_names_the_port_and_its_setting(tmp_path: Path) -> None:
    import socket

    env = _env(tmp_path / "state")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["TOKENOPS_STACK_KAFKA_PORT"])))
        holder.listen()
        result = _tokenops(env, "stack", "up")
    assert result.returncode == 1
    port = env["TOKENOPS_STACK_KAFKA_PORT"]
    assert f"127.0.0.1:{port}" in result.stderr
    assert "TOKENOPS_STACK_KAFKA_PORT" in result.stderr
    assert "Traceback" not in result.stderr
