"""`tokenops demo` end to end on its own local stack: its printed results equal the ledger.

The demo checks itself against the simulator's ledger; this test checks the demo's own
report independently: per-tenant token totals against the ledger file, every invoice
against a hand computation from the ledger and deploy/prices.yaml, and the events of
each door (SDK, CloudEvents over HTTP, OTLP spans) sent against those counted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml

from tests.processes import TOKENOPS
from tokenops.demo.doors import door_of
from tokenops.schemas import TOKEN_TYPES
from tokenops.simulate.ledger import Ledger
from tokenops.stack.process import ManagedProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PRICES = Path(__file__).resolve().parents[2] / "deploy" / "prices.yaml"


def hand_invoice(ledger: Ledger, window_s: int) -> dict[str, Decimal]:
    """Tenant -> invoice total: per (month, model, token type) line, rounded half-up."""
    prices = yaml.safe_load(PRICES.read_text())["models"]
    lines: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for (tenant, model, start_ms), t in ledger.expected_windows(window_s).items():
        month = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m")
        quantities = (
            t.input_tokens - t.cache_read_input_tokens - t.cache_creation_input_tokens,
            t.output_tokens - t.reasoning_output_tokens,
            t.cache_read_input_tokens,
            t.cache_creation_input_tokens,
            t.reasoning_output_tokens,
        )
        for token_type, quantity in zip(TOKEN_TYPES, quantities, strict=True):
            lines[(tenant, month, model, token_type)] += quantity
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for (tenant, _, model, token_type), quantity in lines.items():
        if not quantity:
            continue
        price = Decimal(prices[model][-1][token_type])  # one price in effect in this run
        amount = Decimal(quantity) * price / Decimal(1_000_000)
        totals[tenant] += amount.quantize(Decimal("0.01"), ROUND_HALF_UP)
    return dict(totals)


def test_demo_prints_invoices_and_alerts_that_equal_the_ledger(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "TOKENOPS_STACK_STATE_DIR": str(state),
        "TOKENOPS_STACK_KAFKA_PORT": str(free_port()),
        "TOKENOPS_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
        "TOKENOPS_STACK_PROMETHEUS_PORT": str(free_port()),
        "TOKENOPS_STACK_ALERTMANAGER_PORT": str(free_port()),
        "TOKENOPS_WORKER_HTTP_PORT": str(free_port()),
        "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(free_port()),
        "TOKENOPS_PROMETHEUS_SINK_PORT": str(free_port()),
        "COLUMNS": "160",
    }
    # A component of the user's own stack, running: the demo must leave it alone (it
    # used to run in the user's stack and stop all of it at the end).
    users = ManagedProcess("prometheus", state / "run" / "prometheus.pid", tmp_path / "p.log")
    users_pid = users.start(["sleep", "600"])
    report_path = tmp_path / "report.json"
    cli = Path(TOKENOPS)
    args = ["demo", "--tenants", "20", "--rate", "1500", "--duration", "15"]
    done = subprocess.run(
        [str(cli), *args, "--report", str(report_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "usage and invoices from ClickHouse" in output
    assert "quota alerts from Alertmanager" in output
    assert "reconciled" in output

    report = json.loads(report_path.read_text())
    assert report["problems"] == []
    ledger = Ledger.load(report["ledger"])
    expected = ledger.expected_by_tenant()
    assert set(report["tenants"]) == set(expected)
    for tenant, totals in expected.items():
        printed = report["tenants"][tenant]
        for name in (*TOKEN_TYPES, "event_count"):
            assert printed[name] == getattr(totals, name), (tenant, name)

    # Each door's events, counted in ClickHouse, equal what it sent and the ledger
    # (the CloudEvents and OTLP doors write their own tenants, docs/api.md)
    by_door: dict[str, int] = defaultdict(int)
    for tenant, totals in expected.items():
        by_door[door_of(tenant, report["tenant_prefix"])] += totals.event_count
    doors = report["doors"]
    assert report["otlp_skipped"] == ""  # the dev extra is installed here
    assert {door: d["counted"] for door, d in doors.items()} == by_door
    assert doors["sdk"]["sent"] == by_door["sdk"] > 0
    assert doors["http"]["sent"] == by_door["http"] == round(1500 * 15 * 0.02)
    assert doors["otlp"]["sent"] == by_door["otlp"] == round(1500 * 15 * 0.005)
    assert "events per door" in output

    invoices = hand_invoice(ledger, window_s=10)
    for tenant, total in invoices.items():
        assert Decimal(report["tenants"][tenant]["invoice"]["USD"]) == total, tenant

    prefix = report["tenant_prefix"]
    # One alert per crossed threshold of the default thresholds_pct (50, 80, 100): the
    # first tenant ends near 167 % of its limit, the second near 87 %.
    assert sorted(map(tuple, report["alerts"])) == [
        ("TokenopsQuotaExceeded", f"{prefix}001", "100"),
        ("TokenopsQuotaWarning", f"{prefix}001", "50"),
        ("TokenopsQuotaWarning", f"{prefix}001", "80"),
        ("TokenopsQuotaWarning", f"{prefix}002", "50"),
        ("TokenopsQuotaWarning", f"{prefix}002", "80"),
    ]
    assert report["dead_lettered"] == len(ledger.malformed)
    assert not list((state / "demo-stack" / "run").glob("*.pid")), "the demo left processes running"
    assert users.pid() == users_pid, "the demo stopped a component of the user's stack"
    users.stop()
