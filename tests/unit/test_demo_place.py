"""`tokenops demo` runs beside the user's stack: its own state directory, ports and store.

It used to run in the user's stack and stop it at the end, and wrote its 10-s windows
into the user's store."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tokenops.demo import DemoConfig, DemoRun
from tokenops.demo.place import demo_place
from tokenops.demo.services import pipeline_services
from tokenops.settings import StackSettings


def test_the_demo_has_its_own_state_dir_ports_and_store(tmp_path: Path) -> None:
    user = StackSettings(state_dir=tmp_path / "mine")
    run = DemoRun(DemoConfig(), user)
    demo = run.stack.settings
    assert demo.state_dir == tmp_path / "mine" / "demo-stack"
    user_ports = {user.kafka_port, user.kafka_controller_port, user.prometheus_port,
                  user.alertmanager_port}  # fmt: skip
    demo_ports = {demo.kafka_port, demo.kafka_controller_port, demo.prometheus_port,
                  demo.alertmanager_port}  # fmt: skip
    assert not user_ports & demo_ports
    assert run.stack.clickhouse_dsn == f"chdb://{demo.state_dir / 'clickhouse'}"
    for service in pipeline_services(run.place, window_s=10, lateness_s=5, idle_s=3):
        env = service.env
        assert env["TOKENOPS_STACK_STATE_DIR"] == str(demo.state_dir)
        assert env["TOKENOPS_KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{demo.kafka_port}"
        assert env["TOKENOPS_CLICKHOUSE_URL"] == f"chdb://{demo.state_dir / 'clickhouse'}"
        assert service.process.pid_file.is_relative_to(demo.state_dir)
        assert service.metrics_port not in (6066, 9464, 9466)  # the user's defaults


def test_a_demo_left_running_keeps_its_ports(tmp_path: Path) -> None:
    user = StackSettings(state_dir=tmp_path)
    first = demo_place(user)
    run_dir = first.stack.state_dir / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "kafka.pid").write_text(f"{os.getpid()}\n")  # a live pid: its Kafka runs
    assert demo_place(user) == first


def test_the_api_runs_on_the_demos_port_with_a_keys_file_in_its_state_dir(tmp_path: Path) -> None:
    place = demo_place(StackSettings(state_dir=tmp_path))
    api = {s.name: s for s in pipeline_services(place, window_s=10, lateness_s=5, idle_s=3)}["api"]
    assert api.args == ["api", "serve"] and api.metrics_port == place.api_port
    assert api.env["TOKENOPS_API_PORT"] == str(place.api_port)
    assert api.env["TOKENOPS_API_KEYS_FILE"] == str(place.stack.state_dir / "api-keys.json")


def test_ports_saved_by_an_older_demo_gain_the_missing_ones(tmp_path: Path) -> None:
    user = StackSettings(state_dir=tmp_path)
    first = demo_place(user)
    saved = first.stack.state_dir / "ports.json"
    ports = json.loads(saved.read_text())
    del ports["api_port"]  # a demo from before the API was one of its processes
    saved.write_text(json.dumps(ports))
    run_dir = first.stack.state_dir / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "kafka.pid").write_text(f"{os.getpid()}\n")
    again = demo_place(user)
    assert again.stack.kafka_port == first.stack.kafka_port and again.api_port > 0
