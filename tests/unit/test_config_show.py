"""`config show` describes every setting and hides test hooks; unknown `TOKENOPS_*`
variables get the closest valid name; one state directory moves every piece of state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenops.cli.config_cmd import _rows
from tokenops.config import (
    TEST_HOOKS,
    description,
    env_names,
    settings_sections,
    unknown_variables,
)
from tokenops.producers.settings import ProducerSettings
from tokenops.settings import KafkaSettings, StackSettings
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.streams.settings import WorkerSettings


def test_every_setting_has_a_one_line_description() -> None:
    missing = [
        name
        for section in settings_sections()
        for field, name in env_names(section)
        if name not in TEST_HOOKS
        and (not description(section, field) or "\n" in description(section, field))
    ]
    assert missing == []


def test_config_show_leaves_test_hooks_out() -> None:
    shown = {name for name, _, _ in _rows(ClickHouseSettings())}
    assert "TOKENOPS_CLICKHOUSE_URL" in shown
    assert "TOKENOPS_CLICKHOUSE_FAULT_FILE" not in shown


def test_unknown_variables_get_the_closest_valid_name() -> None:
    environ = {
        "TOKENOPS_KAFKA_BOOTSTRAP_SERVER": "x",  # the trap in the issue
        "TOKENOPS_WORKER_WINDOWS_S": "60",
        "TOKENOPS_NOTHING_LIKE_IT_AT_ALL": "1",
        "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": "ok",
        "TOKENOPS_DEPLOY_DIR": "/deploy",
        "TOKENOPS_BENCH_REPEATS": "3",
        "HOME": "/root",
    }
    assert unknown_variables(environ) == [
        ("TOKENOPS_KAFKA_BOOTSTRAP_SERVER", "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS"),
        ("TOKENOPS_NOTHING_LIKE_IT_AT_ALL", None),
        ("TOKENOPS_WORKER_WINDOWS_S", "TOKENOPS_WORKER_WINDOW_S"),
    ]


def test_the_stack_state_dir_and_kafka_port_move_every_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TOKENOPS_KAFKA_BOOTSTRAP_SERVERS", "TOKENOPS_WORKER_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TOKENOPS_PRODUCER_SPOOL_DIR", raising=False)
    monkeypatch.setenv("TOKENOPS_STACK_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TOKENOPS_STACK_KAFKA_PORT", "19092")
    assert StackSettings().state_dir == tmp_path
    assert WorkerSettings().state_dir == tmp_path / "worker"
    assert ProducerSettings().spool_dir == tmp_path / "producer-spool"
    assert ClickHouseSettings().embedded_path(StackSettings().state_dir) == tmp_path / "clickhouse"
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:19092"
    # set explicitly, a client setting wins over the stack's
    monkeypatch.setenv("TOKENOPS_KAFKA_BOOTSTRAP_SERVERS", "kafka.internal:9093")
    assert KafkaSettings().bootstrap_servers == "kafka.internal:9093"
