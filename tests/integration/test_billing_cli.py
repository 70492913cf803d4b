"""The billing commands as a newcomer pastes them: defaults, one-line errors, no traps."""

from __future__ import annotations

import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry

from tests.clickhouse_helpers import ms, window
from tests.processes import TOKENOPS
from tokenops.api.sink_listener import SinkListener
from tokenops.sinks.clickhouse import ClickHouseSettings, open_store
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENOPS, *args], env=env, capture_output=True, text=True, timeout=60)


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {"TOKENOPS_CLICKHOUSE_URL": url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}


def test_the_runbook_command_works_as_pasted_and_says_how_final(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'store'}"
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with open_store(ClickHouseSettings(url=url, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        ClickHouseWriter(opened.client).write_windows(
            [window("acme", "gpt-4o", now_ms - now_ms % 60_000, events=2)]
        )
    env = _env(tmp_path, url)
    done = _run(env, "usage", "--tenant", "acme")  # today, in the tenant's zone
    assert done.returncode == 0, done.stderr
    assert "gpt-4o" in done.stdout and "final: false" in done.stdout, done.stdout
    data = orjson.loads(_run(env, "usage", "--tenant", "acme", "--format", "json").stdout)
    assert data["final"] is False and data["as_of"] is None and data["open_windows"] is None
    assert data["rows"][0]["event_count"] == 2
    bill = orjson.loads(_run(env, "invoice", "--tenant", "acme", "--format", "json").stdout)
    assert bill["final"] is False and bill["number"] is None and bill["lines"]

    backwards = _run(env, "usage", "--tenant", "acme", "--from", "2026-11-05", "--to", "2026-11-01")
    assert backwards.returncode != 0 and "is not before" in backwards.stderr
    unknown = _run(env, "usage", "--tenant", "acme2")
    assert unknown.returncode != 0 and "unknown tenant 'acme2'" in unknown.stderr
    assert "known tenants include acme" in unknown.stderr
    for failed in (backwards, unknown):
        assert "Traceback" not in failed.stderr


def test_usage_against_a_missing_store_does_not_create_it(tmp_path: Path) -> None:
    store = tmp_path / "nothing-here"
    done = _run(_env(tmp_path, f"chdb://{store}"), "usage", "--tenant", "acme")
    assert done.returncode != 0 and "there is no billing store" in done.stderr
    assert "Traceback" not in done.stderr
    assert not store.exists() and not list(tmp_path.glob("nothing-here*"))


def test_the_cli_reads_through_the_sink_that_holds_the_store(tmp_path: Path) -> None:
    """While a sink holds the embedded store, the CLI finds its listener and run token
    in the owner file: no setting besides the store's URL, and the answers and errors
    are those of a direct read."""
    url = f"chdb://{tmp_path / 'store'}"
    env = _env(tmp_path, url)
    # The sink writes no raw events here, so its reconcile skips that check.
    sink_settings = ClickHouseSettings(url=url, http_port=0, raw_events=False)
    with open_store(sink_settings, tmp_path) as held:
        prepare_store(held, None)
        ClickHouseWriter(held.client).write_windows(
            [window("acme", "gpt-4o", ms(2026, 10, 5, 1, 0), events=3)]
        )
        listener = SinkListener(held, threading.Lock(), CollectorRegistry(), None)
        listener.start()
        held.advertise(listener.url, listener.token)
        try:
            month = ("--from", "2026-10-01", "--to", "2026-11-01")
            done = _run(
                env, "usage", "--tenant", "acme", *month, "--by", "month", "--format", "json"
            )
            assert done.returncode == 0, done.stderr
            assert orjson.loads(done.stdout)["rows"][0]["event_count"] == 3
            bill = _run(
                env, "invoice", "--tenant", "acme", "--month", "2026-10", "--format", "json"
            )
            assert bill.returncode == 0 and orjson.loads(bill.stdout)["lines"], bill.stderr
            check = _run(env, "reconcile", *month)
            assert check.returncode == 0 and "clean" in check.stdout, check.stdout + check.stderr
            rows = _run(env, "sql", "SELECT count() AS n FROM window_totals", "--format", "json")
            assert rows.returncode == 0, rows.stderr
            unknown = _run(env, "usage", "--tenant", "acme2", *month)
            assert unknown.returncode != 0 and "unknown tenant 'acme2'" in unknown.stderr
            assert "known tenants include acme" in unknown.stderr  # the hint crosses too
            busy = _run(env, "clickhouse", "migrate")  # names the holder, not its token
            assert busy.returncode != 0 and "is in use by pid" in busy.stderr
            shown = _run(env, "config", "show")
            assert shown.returncode == 0, shown.stderr
            for answer in (done, bill, check, rows, unknown, busy, shown):
                assert listener.token not in answer.stdout + answer.stderr
                assert "Traceback" not in answer.stderr
        finally:
            listener.stop()
