"""`tokenops stack up | status | env | down` on free ports: every component up, a second
shell that follows the stack, then nothing left; a failed `up` leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.processes import TOKENOPS, TokenopsProcess
from tokenops.stack.process import free_port, is_alive, port_is_free

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

        _second_shell_follows_the_stack(env, tmp_path)
        _status_shows_the_real_store(env)
    finally:
        stopped = _tokenops(env, "stack", "down")
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids:
        assert not is_alive(pid), f"pid {pid} survived stack down"
    after = _tokenops(env, "stack", "status")
    assert after.returncode == 1
    assert _states(after.stdout) == ["down", "down", "down", "embedded"]


def _second_shell_follows_the_stack(env: dict[str, str], tmp_path: Path) -> None:
    """`eval "$(tokenops stack env)"` in a clean shell, then a sink on a port the stack
    never heard of: it reaches the stack's Kafka, and Prometheus scrapes it there."""
    exports = _tokenops(env, "stack", "env")
    assert exports.returncode == 0, exports.stderr
    shell = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    for line in exports.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        shell[name] = shlex.split(value)[0]
    kafka = f"127.0.0.1:{env['TOKENOPS_STACK_KAFKA_PORT']}"
    assert shell["TOKENOPS_KAFKA_BOOTSTRAP_SERVERS"] == kafka
    assert shell["TOKENOPS_STACK_STATE_DIR"] == env["TOKENOPS_STACK_STATE_DIR"]
    port = free_port()
    shell.update(TOKENOPS_PROMETHEUS_SINK_PORT=str(port), TOKENOPS_PROMETHEUS_SINK_HOST="127.0.0.1")
    sink = TokenopsProcess(["sink", "prometheus"], shell, tmp_path / "sink.log")
    prometheus = f"http://127.0.0.1:{env['TOKENOPS_STACK_PROMETHEUS_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while _target_health(prometheus, port) != "up":
            assert time.monotonic() < deadline, (_targets(prometheus), sink.output()[-2000:])
            assert sink.proc.poll() is None, sink.output()
            time.sleep(0.5)
        ready = _query(prometheus, 'tokenops_prometheus_sink_ready{job="tokenops-prometheus-sink"}')
        deadline = time.monotonic() + 30
        while ready != ["1"]:  # it reached the stack's Kafka through the exported port
            assert time.monotonic() < deadline, sink.output()[-2000:]
            time.sleep(1)
            ready = _query(prometheus, "tokenops_prometheus_sink_ready")
    finally:
        sink.stop()
    state_dir = Path(env["TOKENOPS_STACK_STATE_DIR"])
    assert not list((state_dir / "prometheus" / "targets").glob("*.json")), "target left behind"


def _targets(prometheus: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=5) as response:
        return list(json.load(response)["data"]["activeTargets"])


def _target_health(prometheus: str, port: int) -> str | None:
    for target in _targets(prometheus):
        if target["labels"].get("instance") == f"127.0.0.1:{port}":
            assert target["labels"]["job"] == "tokenops-prometheus-sink"
            return str(target["health"])
    return None


def _query(prometheus: str, expr: str) -> list[str]:
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return [r["value"][1] for r in json.load(response)["data"]["result"]]


def _status_shows_the_real_store(env: dict[str, str]) -> None:
    elsewhere = f"http://127.0.0.1:{free_port()}"
    status = _tokenops({**env, "TOKENOPS_CLICKHOUSE_URL": elsewhere}, "stack", "status")
    assert elsewhere in status.stdout, status.stdout
    assert _states(status.stdout) == ["up", "up", "up", "down"]  # nothing answers there
    assert status.returncode == 1


def test_a_failed_stack_up_stops_what_it_started(tmp_path: Path) -> None:
    """Prometheus' port is taken: Kafka and Alertmanager started first are stopped again."""
    import socket

    state_dir = tmp_path / "state"
    env = _env(state_dir)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["TOKENOPS_STACK_PROMETHEUS_PORT"])))
        holder.listen()
        result = _tokenops(env, "stack", "up")
    assert result.returncode == 1
    port = env["TOKENOPS_STACK_PROMETHEUS_PORT"]
    assert f"127.0.0.1:{port}" in result.stderr
    assert "TOKENOPS_STACK_PROMETHEUS_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert _pids(state_dir) == [], "a failed stack up left components running"
    for name in ("TOKENOPS_STACK_KAFKA_PORT", "TOKENOPS_STACK_ALERTMANAGER_PORT"):
        assert port_is_free(int(env[name])), f"{name} still held after the failed stack up"
