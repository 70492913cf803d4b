"""Billing end to end: traffic -> `tokenops worker` -> `tokenops sink clickhouse` -> CLI.

Real broker, real processes, real embedded ClickHouse. Traffic has duplicates, late
events and malformed records; the worker and the sink are each killed with SIGKILL once.
Every tenant's invoice must equal a hand computation from the traffic's ledger and the
prices file, and `tokenops reconcile` must be clean. The CLI runs while the sink holds the
embedded store, so it reads through the sink's endpoint.
"""

from __future__ import annotations

import json
import signal
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
from confluent_kafka import Consumer, TopicPartition
from tokenops.schemas import TOKEN_TYPES

from tests.e2e.worker_run import TOKENOPS, Traffic, WorkerProcess, wait_exact, worker_env
from tokenops.settings import KafkaSettings
from tokenops.stack.process import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PRICES = {  # per million tokens, by token type in TOKEN_TYPES order
    "gpt-x": ("2.50", "10.00", "1.25", "3.75", "12.00"),
    "claude-y": ("3.00", "15.00", "0.30", "3.75", "15.00"),
}


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "usage": new_topic("usage", partitions=4),
        "aggregates": new_topic("aggs", partitions=4),
        "dead_letter": new_topic("dlq", partitions=4),
        "quota_alerts": new_topic("alerts", partitions=4),
        "quotas": new_topic("quotas", partitions=1),
    }


def write_prices(path: Path) -> Path:
    lines = ["currency: USD", "models:"]
    for model, prices in PRICES.items():
        lines += [f"  {model}:", '    - effective_from: "2026-01-01T00:00:00Z"']
        lines += [f'      {t}: "{p}"' for t, p in zip(TOKEN_TYPES, prices, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


class SinkProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = int(env["TOKENOPS_CLICKHOUSE_HTTP_PORT"])
        self.proc = subprocess.Popen(
            [TOKENOPS, "sink", "clickhouse"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                self.metrics()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("sink not ready: " + self.log.read_text()[-3000:])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def caught_up(kafka: KafkaSettings, group: str, topics: list[str]) -> bool:
    consumer = Consumer({**kafka.librdkafka(), "group.id": group})
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(4)]
        try:
            committed = consumer.committed(parts, timeout=10)
        except Exception:
            return False
        for tp in committed:
            high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10
            )[1]
            if max(tp.offset, 0) < high:
                return False
        return True
    finally:
        consumer.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TOKENOPS, *args], env=env, capture_output=True, text=True, timeout=120)


def hand_invoices(
    totals: dict[tuple[str, str, int], list[int]],
) -> dict[tuple[str, str], dict[str, Decimal]]:
    """(tenant, month) -> {"model/token_type": amount}, from the ledger and PRICES."""
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0] * 6)
    for (tenant, model, start_ms), counts in totals.items():
        month = datetime.fromtimestamp(start_ms / 1000, UTC).strftime("%Y-%m")
        acc = sums[(tenant, month, model)]
        for i, v in enumerate(counts):
            acc[i] += v
    out: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    for (tenant, month, model), (inp, outp, read, created, reasoning, _) in sums.items():
        quantities = (inp - read - created, outp - reasoning, read, created, reasoning)
        for token_type, quantity, price in zip(TOKEN_TYPES, quantities, PRICES[model], strict=True):
            if quantity:
                amount = Decimal(quantity) * Decimal(price) / Decimal(1_000_000)
                out[(tenant, month)][f"{model}/{token_type}"] = amount.quantize(
                    Decimal("0.01"), ROUND_HALF_UP
                )
    return out


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
    sink_env = {
        **env,
        "HOME": str(tmp_path),
        "TOKENOPS_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(free_port()),
        "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": group,
        "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "300",
        "TOKENOPS_CLICKHOUSE_PRICES_FILE": str(write_prices(tmp_path / "prices.yaml")),
        # A killed sink's partitions move after the session timeout (librdkafka: 45 s).
        "TOKENOPS_KAFKA_CLIENT_CONFIG": '{"session.timeout.ms": "6000"}',
    }
    logs = [tmp_path / "worker.log", tmp_path / "sink.log"]
    worker = WorkerProcess(env, tmp_path / "state", logs[0])
    sink = SinkProcess(sink_env, logs[1])
    traffic = Traffic(kafka_settings, topics["usage"], seed=7)
    try:
        worker.wait_ready()
        sink.wait_ready()
        for round_no in range(6):
            traffic.round(600)
            time.sleep(0.4)
            if round_no == 2:
                worker.kill()
                worker = WorkerProcess(env, tmp_path / "state", logs[0])
                worker.wait_ready()
            if round_no == 4:
                sink.kill()
                sink = SinkProcess(sink_env, logs[1])
                sink.wait_ready()
        expected = dict(traffic.ledger.totals)
        assert wait_exact(kafka_settings, topics, traffic.ledger, timeout_s=60) == expected
        deadline = time.monotonic() + 60
        while not caught_up(kafka_settings, group, [topics["aggregates"], topics["usage"]]):
            assert time.monotonic() < deadline, logs[1].read_text()[-3000:]
            time.sleep(0.5)

        busy = cli(sink_env, "clickhouse", "migrate")
        assert busy.returncode == 1 and "is in use by pid" in busy.stderr
        assert "Traceback" not in busy.stderr

        invoices = hand_invoices(expected)
        for (tenant, month), lines in invoices.items():  # through the sink's endpoint
            query = urllib.parse.urlencode({"tenant": tenant, "month": month})
            url = f"http://127.0.0.1:{sink.port}/v1/invoice?{query}"
            with urllib.request.urlopen(url, timeout=30) as response:
                assert_invoice(json.loads(response.read()), lines, tenant)
        (tenant, month), lines = sorted(invoices.items())[0]  # and once through the CLI
        result = cli(sink_env, "invoice", "--tenant", tenant, "--month", month, "--format", "json")
        assert result.returncode == 0, result.stderr
        assert_invoice(json.loads(result.stdout), lines, tenant)
        starts = [start for _, _, start in expected]
        first = datetime.fromtimestamp(min(starts) / 1000, UTC).replace(
            minute=0, second=0, microsecond=0
        )
        last = datetime.fromtimestamp(max(starts) / 1000, UTC) + timedelta(hours=1)
        check = cli(sink_env, "reconcile", "--from", first.isoformat(), "--to", last.isoformat())
        assert check.returncode == 0, check.stdout + check.stderr
        assert "clean" in check.stdout
    finally:
        worker.stop()
        sink.stop()
