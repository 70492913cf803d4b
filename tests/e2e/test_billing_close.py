"""A month closes, then late corrections arrive: real Kafka, worker, sink and chDB.

Tenant `acme` is billed in Asia/Shanghai. Its events in the last minutes of the
previous local month are counted; once every partition's watermark passed the month's
end the sink freezes the invoice (number, content hash, `final: true`). Late events for
that month then arrive: the worker corrects the windows, the sink turns the corrections
into adjustment lines on the current month's invoice, naming the closed invoice, the
window and the events, the closed invoice stays byte for byte the same, and
`tokenops reconcile` proves closed invoice + adjustments = ledger. Then, with the sink
still holding the embedded store, every SQL block of docs/bi.md runs through
`tokenops sql` (forwarded to the sink) and a write is refused.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from tests.clickhouse_helpers import event
from tests.e2e.test_clickhouse_pipeline import SinkProcess, cli, topics  # noqa: F401
from tests.e2e.worker_run import WorkerProcess, latest_totals, worker_env
from tokenops.schemas.wire import encode_event
from tokenops.settings import KafkaSettings
from tokenops.sinks.clickhouse.time_zones import local_date, month_range
from tokenops.stack.process import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
ZONE = "Asia/Shanghai"
BI_DOC = Path(__file__).resolve().parents[2] / "docs" / "bi.md"


def _send(kafka: KafkaSettings, topic: str, times: list[datetime], first_id: int) -> None:
    producer = Producer({**kafka.librdkafka(), "partitioner": "murmur2_random"})
    for n, moment in enumerate(times, start=first_id):
        value = encode_event(event("acme", "gpt-4o", int(moment.timestamp() * 1000), n))
        producer.produce(topic, value, b"acme")
    assert producer.flush(30) == 0


def _until(check: Callable[[], Any], what: str, log: Path, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: " + log.read_text()[-3000:])


def test_late_corrections_after_a_close_become_adjustments(
    kafka_settings: KafkaSettings,
    topics: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    # events of the previous month must stay correctable, not `too_late`
    env |= {
        "TOKENOPS_WORKER_DEDUP_HORIZON_S": str(40 * 86_400),
        "TOKENOPS_WORKER_CHANGELOG_RETENTION_S": str(40 * 86_400),
        "TOKENOPS_CLICKHOUSE_TIME_ZONES": json.dumps({"acme": ZONE}),
        "HOME": str(tmp_path),
        "TOKENOPS_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(free_port()),
        "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": f"sink-{uuid.uuid4().hex[:8]}",
        "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "300",
    }
    logs = [tmp_path / "worker.log", tmp_path / "sink.log"]
    worker = WorkerProcess(env, tmp_path / "state", logs[0])
    sink: SinkProcess | None = None
    this_month = local_date(datetime.now(UTC), ZONE).replace(day=1)
    closed_month = (this_month - timedelta(days=1)).replace(day=1)
    _, month_end = month_range(closed_month, ZONE)
    label = f"{closed_month:%Y-%m}"

    def invoice(month: str) -> dict[str, Any]:
        done = cli(env, "invoice", "--tenant", "acme", "--month", month, "--format", "json")
        if "unknown tenant 'acme'" in done.stderr:  # the sink has not stored any yet
            return {"final": False, "adjustments": []}
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    try:
        worker.wait_ready()
        # 10 events in the closed month's last minutes (local), 2 just after it
        before = [month_end - timedelta(minutes=10, seconds=s * 7) for s in range(10)]
        _send(kafka_settings, topics["usage"], before + [month_end + timedelta(minutes=5)] * 2, 0)
        # The sink starts once the worker counted them all. A sink already running would
        # have advanced its idle partitions' watermarks to now (as the worker does), so
        # the month could close between the first and the last of these events, and the
        # rest would rightly be adjustments: correct, but not what this test pins down.
        _until(
            lambda: (
                sum(t[5] for t in latest_totals(kafka_settings, topics["aggregates"]).values())
                == 12
            ),
            "the worker did not count the events",
            logs[0],
        )
        sink = SinkProcess(env, logs[1])
        sink.wait_ready()

        closed = _until(lambda: (b := invoice(label))["final"] and b, "month never closed", logs[1])
        assert closed["number"].startswith(f"INV-{closed_month:%Y%m}-")
        assert closed["time_zone"] == ZONE and closed["as_of"] and closed["open_windows"] == 0
        quantities = {line["token_type"]: line["quantity"] for line in closed["lines"]}
        assert quantities["cache_read_input_tokens"] == 10 * 100  # 10 events, local month only

        # late events for two windows of the closed month
        late = [month_end - timedelta(minutes=10), month_end - timedelta(minutes=3)] * 2
        _send(kafka_settings, topics["usage"], late, 100)

        def adjusted() -> dict[str, Any] | None:
            bill = invoice(f"{this_month:%Y-%m}")
            events = sum(
                a["event_count"] for a in bill["adjustments"] if a["token_type"] == "input_tokens"
            )
            return bill if events == 4 else None

        current = _until(adjusted, "no adjustments", logs[1])
        assert current["final"] is False
        adjustments = current["adjustments"]
        assert {a["original_invoice"] for a in adjustments} == {closed["number"]}
        assert {a["original_month"] for a in adjustments} == {label}
        assert len({a["window_start"] for a in adjustments}) == 2
        reads = [a for a in adjustments if a["token_type"] == "cache_read_input_tokens"]
        assert sum(a["quantity"] for a in reads) == 4 * 100
        assert sum(float(a["amount"]) for a in adjustments) > 0

        page = cli(env, "invoice", "--tenant", "acme", "--format", "html").stdout
        assert "Adjustments to closed invoices" in page and closed["number"] in page
        final_page = cli(env, "invoice", "--tenant", "acme", "--month", label, "--format", "html")
        assert f"FINAL · {closed['number']}" in final_page.stdout

        again = invoice(label)  # the closed invoice did not change
        assert (again["content_hash"], again["lines"]) == (closed["content_hash"], closed["lines"])
        start, _ = month_range(closed_month, "UTC")
        check = cli(
            env,
            "reconcile",
            "--from",
            start.isoformat(),
            "--to",
            (month_end + timedelta(days=1)).isoformat(),
        )
        assert check.returncode == 0, check.stdout + check.stderr
        said = " ".join(check.stdout.split())
        assert "closed invoices + adjustments vs ledger: clean" in said

        # BI while the sink holds the store: every SQL block of docs/bi.md, through the sink
        blocks = re.findall(r"```sql\n(.*?)```", BI_DOC.read_text(), re.DOTALL)
        assert len(blocks) >= 8
        month_param = f"month={this_month.isoformat()}"
        for block in blocks:
            done = cli(env, "sql", block, "--param", "tenant=acme", "--param", month_param)
            assert done.returncode == 0, block + done.stderr
        found = cli(env, "sql", blocks[-3], "--format", "json")  # the closed-invoice query
        assert json.loads(found.stdout)[0]["number"] == closed["number"]
        refused = cli(env, "sql", "DROP TABLE invoices")
        assert refused.returncode != 0 and "readonly" in refused.stderr.lower()
        assert "Traceback" not in refused.stderr
    finally:
        worker.stop()
        if sink is not None:
            sink.stop()
