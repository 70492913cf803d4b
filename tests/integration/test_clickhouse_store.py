"""The billing store on a real embedded ClickHouse (chDB): schema, rollups, invoices."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import orjson
import pytest
import yaml

from tests.clickhouse_helpers import ms, window
from tests.processes import TOKENOPS
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.billing import invoice, live_invoice, usage
from tokenops.sinks.clickhouse.invoice_model import invoice_document
from tokenops.sinks.clickhouse.migrations import load_migrations, migrate
from tokenops.sinks.clickhouse.prices import load_prices, sync_prices
from tokenops.sinks.clickhouse.reconcile import reconcile
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.writer import ClickHouseWriter

REPO = Path(__file__).resolve().parents[2]
NOV = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def store(chdb_dsn: str, tmp_path: Path) -> Iterator[ClickHouseStore]:
    settings = ClickHouseSettings(url=chdb_dsn, http_port=0)
    with open_store(settings, tmp_path) as opened:
        prepare_store(opened, None)
        yield opened


def test_migrations_apply_once_and_report_what_they_did(chdb_dsn: str, tmp_path: Path) -> None:
    with open_store(ClickHouseSettings(url=chdb_dsn), tmp_path) as opened:
        first = migrate(opened.client, 30)
        assert first[:4] == [
            "migration 0001_window_totals",
            "migration 0002_raw_events",
            "migration 0003_rollups",
            "migration 0004_prices",
        ]
        assert first[-1] == "raw_events retention: 30 days"
        assert migrate(opened.client, 30) == []
        assert migrate(opened.client, 7) == ["raw_events retention: 7 days"]
        tables = {r[0] for r in opened.client.query("SHOW TABLES").result_rows}
    assert {"window_totals", "raw_events", "daily_usage", "invoice_lines"} <= tables


def test_latest_revision_wins_before_any_merge(store: ClickHouseStore) -> None:
    writer = ClickHouseWriter(store.client)
    start = ms(2026, 11, 3, 10, 0)
    # Out of order, replayed, and a same-revision re-close with more events.
    for w in (
        window("acme", "gpt-4o", start, revision=2, events=5),
        window("acme", "gpt-4o", start, revision=1, events=3),
        window("acme", "gpt-4o", start, revision=2, events=4),
        window("acme", "gpt-4o", start, revision=2, events=5),
    ):
        writer.write_windows([w])
    rows = store.client.query("SELECT revision, event_count FROM window_totals_latest").result_rows
    assert rows == [(2, 5)]
    assert store.client.query("SELECT count() FROM window_totals").result_rows[0][0] == 4


def test_a_correction_updates_every_rollup(store: ClickHouseStore) -> None:
    writer = ClickHouseWriter(store.client)
    start = ms(2026, 11, 3, 10, 0)
    writer.write_windows(
        [
            window("acme", "gpt-4o", start, events=3),
            window("acme", "gpt-4o", start + 60_000, events=2),
            window("acme", "gpt-4o", ms(2026, 11, 4, 9, 0), events=1),
        ]
    )
    writer.write_windows([window("acme", "gpt-4o", start, revision=2, events=7)])  # late events
    writer.write_windows([window("acme", "gpt-4o", start, revision=1, events=3)])  # stale replay
    query = store.client.query
    assert query(
        "SELECT event_count FROM hourly_usage WHERE hour = '2026-11-03 10:00:00'"
    ).result_rows == [(9,)]
    assert query("SELECT day, event_count FROM daily_usage ORDER BY day").result_rows == [
        (date(2026, 11, 3), 9),
        (date(2026, 11, 4), 1),
    ]
    assert query("SELECT event_count, input_tokens FROM monthly_usage").result_rows == [
        (10, 10_000)
    ]
    by_day = usage(store.client, "acme", *NOV, "day")
    assert [r["event_count"] for r in by_day.rows] == [9, 1]
    checks, differences = reconcile(store.client, *NOV, raw_events=False)
    assert len(checks) == 4 and differences == []
    assert checks[-1] == "closed invoices + adjustments vs ledger"


def test_reconcile_catches_a_closed_invoice_that_disagrees_with_the_ledger(
    store: ClickHouseStore,
) -> None:
    ClickHouseWriter(store.client).write_windows([window("acme", "o3", ms(2026, 11, 5, 1, 0))])
    document = invoice_document(live_invoice(store.client, "acme", date(2026, 11, 1)))
    document["lines"][0]["quantity"] += 1  # a frozen invoice that billed one token too many
    store.client.insert(
        "invoices",
        [["acme", date(2026, 11, 1), "UTC", "INV-1", "not-the-hash", orjson.dumps(document)]],
        column_names=["tenant_id", "month", "time_zone", "number", "content_hash", "document"],
    )
    _, differences = reconcile(store.client, *NOV, raw_events=False)
    found = {(d.column, d.expected - d.actual) for d in differences}
    assert found == {("content_hash", -1), (document["lines"][0]["token_type"], -1)}


def test_reconcile_reports_a_rollup_that_disagrees(store: ClickHouseStore) -> None:
    ClickHouseWriter(store.client).write_windows([window("acme", "o3", ms(2026, 11, 5, 1, 0))])
    store.client.command(
        "INSERT INTO usage_daily SELECT tenant_id, model, day, 1, 2, 3, 4, 5, 6, 7, now64(9) "
        "FROM usage_daily"
    )
    _, differences = reconcile(store.client, *NOV, raw_events=False)
    checks = {d.check for d in differences}
    assert checks == {"usage_hourly vs usage_daily", "usage_daily vs usage_monthly"}
    assert any(
        d.column == "input_tokens" and d.expected == 1000 and d.actual == 1 for d in differences
    )


def _hand_invoice(
    prices_yaml: Path, model: str, at: datetime, totals: dict[str, int]
) -> dict[str, Decimal]:
    """Amount per token type, computed from the YAML text and the OTel token semantics."""
    entries = yaml.safe_load(prices_yaml.read_text())["models"][model]
    entry = max(
        (e for e in entries if datetime.fromisoformat(e["effective_from"]) <= at),
        key=lambda e: datetime.fromisoformat(e["effective_from"]),
    )
    quantities = {
        "input_tokens": totals["input"] - totals["cache_read"] - totals["cache_creation"],
        "cache_read_input_tokens": totals["cache_read"],
        "cache_creation_input_tokens": totals["cache_creation"],
        "output_tokens": totals["output"] - totals["reasoning"],
        "reasoning_output_tokens": totals["reasoning"],
    }
    return {
        t: (Decimal(q) * Decimal(entry[t]) / Decimal(1_000_000)).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        )
        for t, q in quantities.items()
    }


def test_invoice_equals_a_hand_computation_from_prices_yaml(store: ClickHouseStore) -> None:
    writer = ClickHouseWriter(store.client)
    per_event = {
        "input_tokens": 123_457,
        "output_tokens": 45_679,
        "cache_read": 20_001,
        "cache_creation": 3_333,
        "reasoning": 9_999,
    }
    windows = [
        window("acme", "gpt-4o", ms(2026, 11, 1, 0, 0), events=40, **per_event),
        window("acme", "gpt-4o", ms(2026, 11, 30, 23, 59), events=60, **per_event),
        window("acme", "gpt-4o", ms(2026, 12, 1, 0, 0), events=999, **per_event),  # next month
        window("acme", "claude-sonnet-4-5", ms(2026, 11, 15, 12, 0), events=7, **per_event),
        window("other", "gpt-4o", ms(2026, 11, 15, 12, 0), events=5, **per_event),  # other tenant
    ]
    writer.write_windows(windows)
    bill = invoice(store.client, "acme", date(2026, 11, 1))
    assert bill.unpriced == []
    got = {(line.model, line.token_type): line.amount for line in bill.lines}
    expected = {}
    for model, events in (("gpt-4o", 100), ("claude-sonnet-4-5", 7)):
        totals = {
            "input": 123_457 * events,
            "output": 45_679 * events,
            "cache_read": 20_001 * events,
            "cache_creation": 3_333 * events,
            "reasoning": 9_999 * events,
        }
        hand = _hand_invoice(
            REPO / "deploy" / "prices.yaml", model, datetime(2026, 11, 15, tzinfo=UTC), totals
        )
        expected.update({(model, t): amount for t, amount in hand.items()})
    assert got == expected
    assert bill.totals == {"USD": sum(expected.values(), Decimal("0.00"))}
    assert all(isinstance(line.amount, Decimal) for line in bill.lines)


def test_a_price_change_inside_the_month_splits_the_line(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        """
currency: EUR
models:
  m1:
    - effective_from: "2026-11-01T00:00:00Z"
      input_tokens: "1.000000001"
      cache_read_input_tokens: "0"
      cache_creation_input_tokens: "0"
      output_tokens: "3"
      reasoning_output_tokens: "3"
    - effective_from: "2026-11-16T00:00:00Z"
      input_tokens: "0.5"
      cache_read_input_tokens: "0"
      cache_creation_input_tokens: "0"
      output_tokens: "3"
      reasoning_output_tokens: "3"
"""
    )
    assert sync_prices(store.client, load_prices(prices))
    assert not sync_prices(store.client, load_prices(prices))
    writer = ClickHouseWriter(store.client)
    flat = {"cache_read": 0, "cache_creation": 0, "reasoning": 0, "output_tokens": 0}
    writer.write_windows(
        [
            window("acme", "m1", ms(2026, 11, 15, 23, 0), input_tokens=1_000_000, events=3, **flat),
            window("acme", "m1", ms(2026, 11, 16, 0, 0), input_tokens=1_000_000, events=2, **flat),
            window("acme", "unpriced-model", ms(2026, 11, 16, 0, 0), events=1),
        ]
    )
    bill = invoice(store.client, "acme", date(2026, 11, 1))
    lines = [
        (x.token_type, x.quantity, x.unit_price_per_million, x.exact_amount, x.amount)
        for x in bill.lines
    ]
    assert lines == [
        ("input_tokens", 2_000_000, Decimal("0.5"), Decimal("1"), Decimal("1.00")),
        (
            "input_tokens",
            3_000_000,
            Decimal("1.000000001"),
            Decimal("3.000000003"),
            Decimal("3.00"),
        ),
    ]
    assert bill.totals == {"EUR": Decimal("4.00")}
    assert {u[0] for u in bill.unpriced} == {"unpriced-model"}


def test_a_second_process_on_the_embedded_store_gets_one_clear_line(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    assert store.path is not None
    env = {
        "TOKENOPS_CLICKHOUSE_URL": f"chdb://{store.path}",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    tokenops = Path(TOKENOPS)
    result = subprocess.run(
        [str(tokenops), "clickhouse", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(
        f"error: the embedded ClickHouse store {store.path} is in use by pid"
    )
    assert "Traceback" not in result.stderr
    assert lines[1].startswith("hint: chDB allows one process per store")


def _tables(variant: str) -> dict[str, list[str]]:
    """Table name -> column lines, and view names -> [], from the migrations as `variant`
    applies them; a later definition (CREATE OR REPLACE) replaces an earlier one."""
    found: dict[str, list[str]] = {}
    for migration in load_migrations(variant=variant):
        for statement in migration.statements():
            if re.match(r"(--[^\n]*\n)*ALTER TABLE ", statement):
                continue  # its result is the next CREATE OR REPLACE
            head = re.search(
                r"CREATE (?:OR REPLACE )?(TABLE|VIEW) (?:IF NOT EXISTS )?(\w+)", statement
            )
            assert head is not None, statement
            body = re.search(r"\n\(\n(.*?)\n\)\n", statement, re.S)
            columns = [c.strip() for c in body[1].splitlines()] if body else []
            found[head[2]] = [c for c in columns if c and not c.startswith("--")]
    return found


def test_the_derived_cluster_ddl_parses_and_mirrors_the_single_node_schema(
    store: ClickHouseStore,
) -> None:
    """chDB cannot run ON CLUSTER: every derived statement is parsed by ClickHouse's own
    parser, and its shape checked against the single-node schema."""
    single, cluster = _tables("single"), _tables("cluster")
    for name, columns in single.items():
        local = cluster.get(f"{name}_local", cluster.get(name))
        assert local == columns, f"cluster table for {name} differs"
        assert name in cluster, f"cluster lacks the name {name} that queries use"
    for migration in load_migrations(variant="cluster"):
        for statement in migration.statements():
            assert " ON CLUSTER tokenops" in statement.split("\n", 1)[0], statement
            engine = re.search(r"ENGINE = (\w+)", statement)
            assert engine is None or engine[1].startswith(("Replicated", "Distributed"))
            store.client.query("SELECT formatQuery({q:String})", parameters={"q": statement})


def test_the_cli_reads_a_store_no_process_holds(chdb_dsn: str, tmp_path: Path) -> None:
    settings = ClickHouseSettings(url=chdb_dsn, http_port=0)
    with open_store(settings, tmp_path) as opened:
        prepare_store(opened, None)
        ClickHouseWriter(opened.client).write_windows(
            [
                window("acme", "gpt-4o", ms(2026, 11, 3, 10, 0), events=2),
                window("acme", "gpt-4o", ms(2026, 11, 4, 10, 0), events=3),
            ]
        )
    env = {"TOKENOPS_CLICKHOUSE_URL": chdb_dsn, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    tokenops = TOKENOPS

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tokenops, *args], env=env, capture_output=True, text=True, timeout=60
        )

    by_day = run(
        "usage",
        "--tenant",
        "acme",
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-01",
        "--by",
        "day",
        "--format",
        "csv",
    )
    assert by_day.returncode == 0, by_day.stderr
    lines = by_day.stdout.splitlines()
    assert lines[0].startswith("bucket,model,input_tokens,")
    assert [line.split(",")[-1] for line in lines[1:]] == ["2", "3"]
    bill = run("invoice", "--tenant", "acme", "--month", "2026-11")
    assert bill.returncode == 0, bill.stderr
    assert "total USD" in bill.stdout and "final: false" in bill.stdout
    rows = run("invoice", "--tenant", "acme", "--month", "2026-11", "--format", "csv")
    assert rows.returncode == 0, rows.stderr
    assert "TOTAL" not in rows.stdout and "total_USD=" in rows.stderr  # rows only in the CSV
    assert all(line.startswith("line,") for line in rows.stdout.splitlines()[1:])
    clean = run("reconcile", "--from", "2026-11-01", "--to", "2026-12-01", "--format", "json")
    assert clean.returncode == 1  # raw events are on but none were written: a difference
    assert '"check": "raw_events vs window_totals"' in clean.stdout
