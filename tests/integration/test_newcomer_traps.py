"""The newcomer traps of issue #18 (CLI, stack settings, logs), each run as a real
`tokenops` process with the input that used to trip a new user.

Before: tracebacks for bad JSON and busy ports, a misspelled variable ignored, no
`--version`, `<bool>` beside flags, a test hook in `config show`, three log formats and
no JSON, sinks silent about progress and stop. The stack-wide traps (rollback, `stack
env`, scrape targets, the real store in `stack status`) run in test_local_stack.py, on
the stack that file starts anyway.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.worker_run import WorkerProcess, worker_env
from tests.processes import TokenopsProcess, run_tokenops
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no TOKENOPS_* of the shell that runs the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    return {**env, "HOME": str(tmp_path), "COLUMNS": "200", **extra}


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _one_line_error(code: int, output: str) -> list[str]:
    assert code != 0, output
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: "), output
    return lines


def test_bad_json_in_a_map_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = _env(tmp_path, TOKENOPS_KAFKA_CLIENT_CONFIG="{bad")
    lines = _one_line_error(*run_tokenops(["config", "show"], env))
    assert any(
        line.strip().startswith("TOKENOPS_KAFKA_CLIENT_CONFIG: not valid JSON") for line in lines
    )
    assert len(lines) == 3  # error:, the variable, hint: (was a 74-line traceback)


def test_an_invalid_log_format_is_one_line(tmp_path: Path) -> None:
    lines = _one_line_error(
        *run_tokenops(["config", "show"], _env(tmp_path, TOKENOPS_LOG_FORMAT="xml"))
    )
    assert any("TOKENOPS_LOG_FORMAT" in line for line in lines)


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["worker"], "TOKENOPS_WORKER_HTTP_PORT"),
        (["sink", "prometheus"], "TOKENOPS_PROMETHEUS_SINK_PORT"),
    ],
)
def test_a_busy_port_is_one_line_naming_its_setting(
    tmp_path: Path, held_port: int, args: list[str], setting: str
) -> None:
    env = _env(
        tmp_path,
        **{setting: str(held_port)},
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",  # never reached
    )
    lines = _one_line_error(*run_tokenops(args, env, timeout_s=60))
    assert f":{held_port}: the port is already in use" in lines[0]
    assert f"{setting}=<port>" in lines[-1]


def test_a_misspelled_variable_is_warned_about_with_the_right_name(tmp_path: Path) -> None:
    env = _env(tmp_path, TOKENOPS_KAFKA_BOOTSTRAP_SERVER="broker:9092")
    code, output = run_tokenops(["config", "show"], env)
    assert code == 0, output
    assert (
        "warning: TOKENOPS_KAFKA_BOOTSTRAP_SERVER is not a tokenops setting; "
        "did you mean TOKENOPS_KAFKA_BOOTSTRAP_SERVERS?"
    ) in output


def test_version_flags_and_config_show_help_a_newcomer(tmp_path: Path) -> None:
    env = _env(tmp_path)
    code, output = run_tokenops(["--version"], env)
    assert code == 0 and output.startswith("tokenops "), output
    for args in (["stack", "up", "--help"], ["demo", "--help"]):
        code, output = run_tokenops(args, env)
        assert code == 0 and "<bool>" not in output, output
    code, output = run_tokenops(["config", "show"], env)
    assert code == 0, output
    assert "TOKENOPS_CLICKHOUSE_FAULT_FILE" not in output  # a test hook
    kafka_row = next(line for line in output.splitlines() if "TOKENOPS_KAFKA_SASL_USERNAME" in line)
    assert "SASL user name." in kafka_row  # each setting says what it does


def _json_lines(text: str) -> list[dict[str, str]]:
    """Every line as a JSON object; fails on the first line that is not one."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}\n---\n{text[-3000:]}")
    return lines


def _run_then_sigterm(args: list[str], env: dict[str, str], log: Path, seconds: float) -> str:
    process = TokenopsProcess(args, env, log, grace_s=30)
    time.sleep(seconds)
    assert process.proc.poll() is None, process.output()
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(30) == 0, process.output()
    return process.output()


def test_prometheus_sink_logs_json_with_librdkafka_progress_and_stop(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        TOKENOPS_LOG_FORMAT="json",
        TOKENOPS_LOG_PROGRESS_EVERY_S="1",
        TOKENOPS_PROMETHEUS_SINK_PORT=str(free_port()),
        TOKENOPS_PROMETHEUS_SINK_HOST="127.0.0.1",
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",  # nothing listens
    )
    output = _run_then_sigterm(["sink", "prometheus"], env, tmp_path / "sink.log", 4)
    # the sink's one stdout line is its address; every log line is JSON
    records = _json_lines(
        "\n".join(
            line for line in output.splitlines() if not line.startswith("prometheus sink serving")
        )
    )
    loggers = {r["logger"] for r in records}
    assert "tokenops.librdkafka" in loggers, loggers  # "Connection refused", via Python logging
    assert any(r["message"].startswith("prometheus sink progress events=") for r in records)
    assert records[-1]["message"].startswith("prometheus sink stopped cleanly reason=SIGTERM")


def test_clickhouse_sink_logs_progress_and_a_clean_stop(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        TOKENOPS_LOG_PROGRESS_EVERY_S="1",
        TOKENOPS_CLICKHOUSE_URL=f"chdb://{tmp_path / 'store'}",
        TOKENOPS_CLICKHOUSE_HTTP_PORT=str(free_port()),
        TOKENOPS_CLICKHOUSE_HTTP_HOST="127.0.0.1",
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
    )
    output = _run_then_sigterm(["sink", "clickhouse"], env, tmp_path / "sink.log", 6)
    assert " INFO tokenops.progress_log clickhouse sink progress records=0 rows=0" in output
    assert "clickhouse sink stopped cleanly reason=SIGTERM" in output
    assert "%3|" not in output  # no raw librdkafka line


def test_worker_logs_faust_and_its_own_lines_as_json(
    kafka_settings: KafkaSettings,
    new_topic,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    topics = {
        name: new_topic(name) for name in ("usage", "aggregates", "dead_letter", "quota_alerts")
    }
    topics["quotas"] = new_topic("quotas", partitions=1)
    env = worker_env(kafka_settings, topics, f"json-{os.getpid()}", tmp_path)
    env.update(TOKENOPS_LOG_FORMAT="json", TOKENOPS_LOG_PROGRESS_EVERY_S="1", HOME=str(tmp_path))
    worker = WorkerProcess(env, tmp_path / "worker-state", tmp_path / "worker.log")
    try:
        worker.wait_ready()
        time.sleep(1.5)
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(60)
    records = _json_lines(worker.output())
    messages = [r["message"] for r in records]
    assert any(m.startswith("worker ") and "events" in m for m in messages), messages[-10:]
    assert messages[-1].startswith("worker stopped"), messages[-5:]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["usage", "--frm", "2026-01-01"], "No such option: --frm"),
        (["nosuch"], "No such command 'nosuch'"),
        (["invoice", "--tenant", "t", "--month", "2026-01", "--format", "pdf"], "pdf"),
    ],
)
def test_a_usage_mistake_is_one_line_with_the_help_to_read(
    tmp_path: Path, args: list[str], says: str
) -> None:
    """Was click's framed panel; now the same shape as every other error."""
    code, output = run_tokenops(args, _env(tmp_path))
    lines = _one_line_error(code, output)
    assert len(lines) == 2 and says in lines[0], output
    assert code == 2 and "--help" in lines[1]
