"""Billing end to end: simulator -> `tokenops worker` -> `tokenops sink clickhouse` -> CLI.

Real broker, real processes, real embedded ClickHouse. The fleet simulator sends
duplicates, late events and malformed records; between its runs the worker and then the
sink are killed with SIGKILL. Every tenant's invoice must equal a hand computation from
the simulator's ledger and deploy/prices.yaml, and `tokenops reconcile` must be clean.
The CLI runs while the sink holds the embedded store, so it reads through the sink's
listener, with the run token of the store's owner file.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.worker_run import (
    WINDOW_S,
    WorkerProcess,
    clickhouse_sink_env,
    latest_totals,
    worker_env,
)
from tests.processes import TOKENOPS, TokenopsProcess
from tokenops.demo.observe import pipeline_lag
from tokenops.producers.producer import UsageProducer
from tokenops.producers.settings import ProducerSettings
from tokenops.settings import KafkaSettings
from tokenops.simulate.ledger import ExpectedTotals, Key
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.sinks.clickhouse.store import read_owner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PRICES_YAML = Path(__file__).resolve().parents[2] / "deploy" / "prices.yaml"


def price(model: str, token_type: str, at_ms: int) -> Decimal:
    """The price per million in effect, read straight from the YAML text."""
    entries = yaml.safe_load(PRICES_YAML.read_text())["models"][model]
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    dated = [(datetime.fromisoformat(str(e["effective_from"])), e) for e in entries]
    return Decimal(max((d, e) for d, e in dated if d <= at)[1][token_type])


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=4),
        "aggregates": new_topic("aggs", partitions=4),
        "dead_letter": new_topic("dlq", partitions=4),
        "quota_alerts": new_topic("alerts", partitions=4),
        "quotas": new_topic("quotas", partitions=1),
    }


class SinkProcess(TokenopsProcess):
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["TOKENOPS_CLICKHOUSE_HTTP_PORT"])
        self.store = Path(env["TOKENOPS_CLICKHOUSE_URL"].removeprefix("chdb://"))
        super().__init__(["sink", "clickhouse"], env, log)

    def get(self, path: str, params: dict[str, str]) -> Any:
        """GET a billing route of the sink's listener, with the run token the store's
        owner file holds (0600), as the CLI sends it."""
        token = read_owner(self.store)["token"]
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def health(self) -> str:
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def wait_ready(self, timeout_s: float = 60) -> None:
        self.wait_healthy(self.port, "sink", timeout_s)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENOPS, *args], env=env, capture_output=True, text=True, timeout=120)


def hand_invoices(windows: dict[Key, ExpectedTotals]) -> dict[tuple[str, str], dict[str, Decimal]]:
    """(tenant, month) -> {"model/token_type": amount}, from the ledger and prices.yaml.

    Input counts include cached tokens and output counts include reasoning tokens, so the
    input and output lines bill what remains; each line is rounded half-up to the cent.
    """
    exact: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for (tenant, model, start_ms), t in windows.items():
        month = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m")
        quantities = {
            "input_tokens": t.input_tokens
            - t.cache_read_input_tokens
            - t.cache_creation_input_tokens,
            "output_tokens": t.output_tokens - t.reasoning_output_tokens,
            "cache_read_input_tokens": t.cache_read_input_tokens,
            "cache_creation_input_tokens": t.cache_creation_input_tokens,
            "reasoning_output_tokens": t.reasoning_output_tokens,
        }
        for token_type, quantity in quantities.items():
            if quantity:
                amount = quantity * price(model, token_type, start_ms) / Decimal(1_000_000)
                exact[(tenant, month)][f"{model}/{token_type}"] += amount
    cent = Decimal("0.01")
    return {
        key: {line: amount.quantize(cent, ROUND_HALF_UP) for line, amount in lines.items()}
        for key, lines in exact.items()
    }


def assert_invoice(bill: dict[str, Any], lines: dict[str, Decimal], tenant: str) -> None:
    got = {f"{x['model']}/{x['token_type']}": Decimal(x["amount"]) for x in bill["lines"]}
    assert got == lines, tenant
    assert bill["unpriced"] == []
    assert Decimal(bill["totals"]["USD"]) == sum(lines.values(), Decimal("0.00"))


def test_invoices_equal_the_ledger_after_worker_and_sink_crashes(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> None:
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    # A killed sink's partitions move after the session timeout (librdkafka: 45 s).
    session = {"TOKENOPS_KAFKA_CLIENT_CONFIG": '{"session.timeout.ms": "6000"}'}
    sink_env = clickhouse_sink_env(env, tmp_path, tmp_path / "store", group, **session)
    logs = [tmp_path / "worker.log", tmp_path / "sink.log"]
    worker = WorkerProcess(env, tmp_path / "state", logs[0])
    sink = SinkProcess(sink_env, logs[1])
    ledgers = []
    producer = UsageProducer(
        kafka_settings,
        ProducerSettings(topic=topics["usage"], batch_max_events=50, spool_dir=tmp_path / "spool"),
    )
    try:
        worker.wait_ready()
        sink.wait_ready()
        for seed in (1, 2, 3):
            config = SimulationConfig(
                tenants=12,
                rate=1500,
                duration_s=2,
                seed=seed,
                duplicate_share=0.03,
                late_share=0.03,
                late_by_s=30,
                malformed_share=0.005,
            )
            ledgers.append(Simulator(config).run(producer))
            if seed == 1:  # the worker crashes
                worker.kill()
                worker = WorkerProcess(env, tmp_path / "state", logs[0])
                worker.wait_ready()
            if seed == 2:  # the sink crashes
                sink.kill()
                sink = SinkProcess(sink_env, logs[1])
                sink.wait_ready()
        expected: dict[Key, ExpectedTotals] = {}
        for ledger in ledgers:
            for key, totals in ledger.expected_windows(WINDOW_S).items():
                old = expected.get(key, ExpectedTotals())
                expected[key] = ExpectedTotals(*(a + b for a, b in zip(old, totals, strict=True)))
        want = {key: list(totals) for key, totals in expected.items()}
        deadline = time.monotonic() + 90
        while latest_totals(kafka_settings, topics["aggregates"]) != want:
            assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
            time.sleep(1.0)
        sink_inputs = [topics["aggregates"], topics["usage"], topics["dead_letter"]]
        while pipeline_lag(kafka_settings, group, sink_inputs) != 0:
            assert time.monotonic() < deadline, logs[1].read_text()[-3000:]
            time.sleep(0.5)

        busy = cli(sink_env, "clickhouse", "migrate")
        assert busy.returncode == 1 and "is in use by pid" in busy.stderr
        assert "Traceback" not in busy.stderr

        invoices = hand_invoices(expected)
        for (tenant, month), lines in invoices.items():  # through the sink's listener
            assert_invoice(sink.get(f"/v1/invoices/{tenant}", {"month": month}), lines, tenant)
        (tenant, month), lines = sorted(invoices.items())[0]  # and once through the CLI
        result = cli(sink_env, "invoice", "--tenant", tenant, "--month", month, "--format", "json")
        assert result.returncode == 0, result.stderr
        assert_invoice(json.loads(result.stdout), lines, tenant)
        starts = [start for _, _, start in expected]
        assert any(ledger.late for ledger in ledgers) and any(
            ledger.duplicates for ledger in ledgers
        )
        first = datetime.fromtimestamp(min(starts) / 1000, UTC).replace(
            minute=0, second=0, microsecond=0
        )
        last = datetime.fromtimestamp(max(starts) / 1000, UTC) + timedelta(hours=1)
        check = cli(sink_env, "reconcile", "--from", first.isoformat(), "--to", last.isoformat())
        assert check.returncode == 0, check.stdout + check.stderr
        assert "clean" in check.stdout
    finally:
        producer.close()
        worker.stop()
        sink.stop()
