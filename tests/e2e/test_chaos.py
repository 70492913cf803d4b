"""Chaos under load: the whole pipeline keeps exact books through crashes and outages.

Its own Kafka broker, Prometheus and Alertmanager; `tokenops worker`, `tokenops sink
clickhouse` and `tokenops sink prometheus` as processes; the fleet simulator sending
sustained load with duplicates, late events and malformed records to tenants with daily
quotas sized to cross; beside it, a plain confluent-kafka producer with librdkafka's
defaults sends the same tenants' events outside their home partitions, and one record
dates its event in 2400. During the load: the worker is killed with SIGKILL twice, the
ClickHouse sink's store fails for 30 s, the Prometheus sink is killed with SIGKILL, the
broker is stopped and started again, and while it is down a second producer spools its
events, closes, and a new producer replays the spool once the broker is back.

At the end every tenant's usage and invoice in ClickHouse equals the simulators' ledger,
the quota crossings on the quota-alerts topic and the alerts in Alertmanager are exactly
the expected ones, the dead-letter topic holds exactly the malformed records, and
`tokenops reconcile` is clean. The figures go to stdout and docs/reliability.md.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from tests.e2e import test_clickhouse_pipeline
from tests.e2e.chaos_run import (
    DefaultsProducer,
    FastPrometheus,
    Pipeline,
    expected_crossings,
    far_future_record,
    merge,
    replay_spool,
    spooled_events,
    tenant_tokens,
    write_figures,
)
from tests.e2e.test_clickhouse_pipeline import cli, hand_invoices
from tests.e2e.worker_run import WINDOW_S, latest_totals
from tokenops.deadletters import DLQ_FIELD, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON
from tokenops.demo.alerts import Alert, expected_alerts, fired
from tokenops.demo.day import wait_for_one_day
from tokenops.demo.observe import alerts_firing, pipeline_lag
from tokenops.demo.results import read_billing
from tokenops.placement import home_partition
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.quotas.topic import publish_quotas
from tokenops.schemas.event import FUTURE
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.simulate.ledger import Ledger
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.stack import KafkaBroker
from tokenops.stack.alerting import AlertmanagerServer
from tokenops.stack.process import free_port
from tokenops.topics import ensure_topics, pipeline_topics, read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RATE, DURATION_S = 500, 75  # records/s of sustained load
PAGED = {"TokenopsQuotaWarning", "TokenopsQuotaExceeded"}


def test_no_event_lost_or_double_counted_through_crashes_and_outages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # Faust puts its `<app id>-data` folder in the cwd
    # hand_invoices reads prices.yaml per line; thousands of windows here: read it once each
    monkeypatch.setattr(test_clickhouse_pipeline, "price", cache(test_clickhouse_pipeline.price))
    began = time.monotonic()
    stack = StackSettings(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        kafka_heap_mb=512,
        start_timeout_s=120,
    )
    broker = KafkaBroker(stack)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    topics = TopicSettings()
    pipeline = Pipeline(stack, kafka, topics, tmp_path)
    prefix = f"cx{uuid.uuid4().hex[:4]}-"
    load = SimulationConfig(
        tenants=20,
        rate=RATE,
        duration_s=DURATION_S,
        seed=21,
        duplicate_share=0.02,
        late_share=0.01,
        late_by_s=4,  # past the worker's 1 s lateness: window corrections
        malformed_share=0.002,
        tenant_prefix=prefix,
    )
    spooled = SimulationConfig(
        tenants=20, rate=500, duration_s=1, seed=22, duplicate_share=0.02, tenant_prefix=prefix
    )
    misplaced = SimulationConfig(
        tenants=20, rate=100, duration_s=30, seed=23, duplicate_share=0.02, tenant_prefix=prefix
    )  # sent by a producer with librdkafka's defaults, done before the broker restart
    far_future = far_future_record(f"{prefix}001")
    used = tenant_tokens(load) + tenant_tokens(spooled) + tenant_tokens(misplaced)
    limits = {  # exceeded (and warned), warned only (90 %), nothing (40 %)
        f"{prefix}001": Decimal(used[f"{prefix}001"] * 6 // 10),
        f"{prefix}002": Decimal(used[f"{prefix}002"] * 10 // 9),
        f"{prefix}003": Decimal(used[f"{prefix}003"] * 10 // 4),
    }
    quotas = [
        QuotaDefinition(tenant_id=tenant, name="daily-tokens", period="day", limit=limit)
        for tenant, limit in limits.items()
    ]
    prometheus = FastPrometheus(
        stack, {"tokenops-prometheus-sink": f"127.0.0.1:{pipeline.port('sink-prometheus')}"}
    )
    alertmanager = AlertmanagerServer(stack)
    faults: list[str] = []
    ledgers: list[Ledger] = []
    failure: list[BaseException] = []
    spooled_count: list[int] = []
    write_failures: list[float] = []
    wait_for_one_day(before_s=60, after_s=DURATION_S + 900)  # the quotas are daily
    try:
        broker.start()
        ensure_topics(kafka, pipeline_topics(topics))
        alertmanager.start()
        prometheus.start()
        for name in pipeline.services:
            pipeline.start(name)
        publish_quotas(kafka, topics, quotas)
        time.sleep(2)  # the worker's quota watcher reads them
        started = datetime.now(UTC)

        def simulate() -> None:
            settings = ProducerSettings(
                topic=topics.usage, spool_dir=tmp_path / "spool", delivery_timeout_ms=180_000
            )
            try:
                with UsageProducer(kafka, settings) as producer:
                    ledgers.append(Simulator(load).run(producer))
            except BaseException as exc:  # surfaced in the main thread
                failure.append(exc)

        def simulate_misplaced() -> None:
            try:
                producer = DefaultsProducer(kafka, topics.usage)
                producer.producer.produce(topics.usage, far_future, f"{prefix}001".encode())
                ledgers.append(Simulator(misplaced).run(producer))  # type: ignore[arg-type]
            except BaseException as exc:
                failure.append(exc)

        def kill_worker() -> None:
            pipeline.kill("worker")
            pipeline.start("worker")

        def clickhouse_down() -> None:
            pipeline.fault_file.touch()

        def clickhouse_up() -> None:
            sink = pipeline.services["sink-clickhouse"].scrape()
            write_failures.append(sink.total("tokenops_clickhouse_sink_write_failures_total"))
            pipeline.fault_file.unlink()

        def kill_prometheus_sink() -> None:
            pipeline.kill("sink-prometheus")
            pipeline.start("sink-prometheus")

        def restart_broker_and_spool() -> None:
            broker.stop()
            spool = tmp_path / "spool-2"
            settings = ProducerSettings(
                topic=topics.usage, spool_dir=spool, delivery_timeout_ms=2000, close_timeout_s=1
            )
            with UsageProducer(kafka, settings) as producer:
                ledgers.append(Simulator(spooled).run(producer))
            spooled_count.append(spooled_events(spool))
            assert spooled_count[0] > 0, "the producer spooled nothing while Kafka was down"
            broker.start()
            replay_spool(kafka, topics.usage, spool)  # a new producer replays it first

        schedule: list[tuple[float, str, Callable[[], None]]] = [
            (8, "worker kill -9 #1", kill_worker),
            (15, "ClickHouse store fails (30 s)", clickhouse_down),
            (22, "Prometheus sink kill -9", kill_prometheus_sink),
            (30, "worker kill -9 #2", kill_worker),
            (45, "ClickHouse store back", clickhouse_up),
            (50, "Kafka restart; a producer spools, then replays", restart_broker_and_spool),
        ]  # fmt: skip
        thread = threading.Thread(target=simulate, name="simulator", daemon=True)
        beside = threading.Thread(target=simulate_misplaced, name="misplaced", daemon=True)
        load_began = time.monotonic()
        thread.start()
        beside.start()
        unplanned: list[str] = []
        while thread.is_alive() or schedule:
            elapsed = time.monotonic() - load_began
            while schedule and schedule[0][0] <= elapsed:
                _, label, action = schedule.pop(0)
                print(f"t={elapsed:5.1f}s {label}", flush=True)
                action()
                if "back" not in label:
                    faults.append(label)
            for name, service in pipeline.services.items():
                if not service.running:  # a crash nobody planned: record it, keep going
                    unplanned.append(f"{name} exited at t={elapsed:.0f}s")
                    print(service.process.log_tail(30))
                    pipeline.start(name)
            time.sleep(0.2)
        beside.join(60)
        if failure:
            raise failure[0]
        left = spooled_events(tmp_path / "spool")
        if left:  # the load's own producer spooled during the broker restart: replay it
            faults.append(f"load producer spooled {left} events, replayed")
            replay_spool(kafka, topics.usage, tmp_path / "spool")
        load_s = time.monotonic() - load_began
        ledger = merge(ledgers)
        want = {k: list(v) for k, v in ledger.expected_windows(WINDOW_S).items()}

        # Catch up: the worker's aggregates equal the ledger, the sink consumed them all.
        deadline = time.monotonic() + 150
        while latest_totals(kafka, topics.aggregates) != want:
            assert time.monotonic() < deadline, "aggregates never equalled the ledger"
            time.sleep(1)
        # the dead letters too: the billing view leaves out what the worker rejected
        sink_topics = [topics.aggregates, topics.usage, topics.dead_letter]
        while pipeline_lag(kafka, pipeline.sink_group, sink_topics) != 0:
            assert time.monotonic() < deadline, "the ClickHouse sink did not catch up"
            time.sleep(0.5)
        caught_up_s = time.monotonic() - load_began - load_s

        # Billing through the sink's endpoint (it holds the embedded store).
        store = pipeline.env["sink-clickhouse"]["TOKENOPS_CLICKHOUSE_URL"]
        report = read_billing(ledger, WINDOW_S, started, datetime.now(UTC), tmp_path, store)
        expected_events = ledger.expected_by_tenant()
        counted = report.tenant_totals()
        lost = sum(
            max(0, t.event_count - counted.get(tenant, {}).get("event_count", 0))
            for tenant, t in expected_events.items()
        )
        doubled = sum(
            max(0, c["event_count"] - getattr(expected_events.get(tenant), "event_count", 0))
            for tenant, c in counted.items()
        )
        invoices = hand_invoices(ledger.expected_windows(WINDOW_S))
        invoice_mismatches = []
        for (tenant, month), lines in invoices.items():
            bills = [b for b in report.invoices[tenant] if b.month.isoformat()[:7] == month]
            got: dict[str, Decimal] = defaultdict(Decimal)  # each model's regions added up
            for x in (x for b in bills for x in b.lines):
                got[f"{x.model}/{x.token_type}"] += x.amount
            if got != lines:
                invoice_mismatches.append((tenant, month, got, lines))

        starts = [start for _, _, start in want]
        first = datetime.fromtimestamp(min(starts) / 1000, UTC).replace(minute=0, second=0)
        last = datetime.fromtimestamp(max(starts) / 1000, UTC) + timedelta(hours=1)
        env = pipeline.env["sink-clickhouse"]
        check = cli(env, "reconcile", "--from", first.isoformat(), "--to", last.isoformat())

        # Quota crossings on the topic, once each; alerts in Alertmanager.
        crossings = Counter(
            (alert.tenant_id, alert.threshold_pct)
            for alert in (QuotaAlert.from_bytes(m.value()) for m in read_to_end(
                kafka, topics.quota_alerts))
        )  # fmt: skip
        want_crossings = expected_crossings(used, limits)
        want_alerts = expected_alerts(ledger, quotas)
        firing: set[Alert] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = alerts_firing(alertmanager.url, prefix)
            firing = fired([a for a in found if a["alertname"] in PAGED])
            if firing == want_alerts:
                break
            time.sleep(1)

        # Dead letters: each malformed record once (replays deduplicated by source offset).
        letters = {}
        reasons = []
        fields: dict[bytes | None, bytes] = {}
        for m in read_to_end(kafka, topics.dead_letter):
            headers = dict(m.headers() or [])
            letters[(headers[DLQ_PARTITION], headers[DLQ_OFFSET])] = m.value()
            reasons.append(headers.get(DLQ_REASON, b""))
            fields[m.value()] = headers[DLQ_FIELD]
        dead_letters = Counter(letters.values())
        malformed = Counter(ledger.malformed_values())
        partitions = topics.partitions
        misplaced_records = sum(  # keyed records outside their tenant's home partition
            1
            for m in read_to_end(kafka, topics.usage)
            if m.key()
            and home_partition((m.key() or b"").decode(errors="replace"), partitions)
            != m.partition()
        )

        figures = {
            "records produced": ledger.records_sent,
            "unique events": ledger.unique_events,
            "duplicates sent": len(ledger.duplicates),
            "late events sent": len(ledger.late),
            "malformed records sent": sum(malformed.values()),
            "events spooled while Kafka was down, then replayed": spooled_count,
            "ClickHouse write failures during the outage": write_failures,
            "faults injected": len(faults),
            "faults": faults,
            "unplanned restarts": unplanned,
            "events lost": lost,
            "events double-counted": doubled,
            "dead letters (distinct)": sum(dead_letters.values()),
            "records outside their home partition (forwarded)": misplaced_records,
            "quota crossings on the topic": sorted(crossings.elements()),
            "alerts in Alertmanager": sorted(firing),
            "load seconds": round(load_s, 1),
            "catch-up seconds after the load": round(caught_up_s, 1),
            "test seconds": round(time.monotonic() - began, 1),
        }
        print("\nchaos figures:")
        for name, value in figures.items():
            print(f"  {name}: {value}")
        write_figures(tmp_path / "chaos-figures.json", figures)

        assert not unplanned, unplanned
        assert write_failures and write_failures[0] > 0, "the store outage did not bite"
        assert report.differences == [], report.differences[:20]
        assert lost == 0 and doubled == 0
        assert invoice_mismatches == [], invoice_mismatches[:3]
        assert check.returncode == 0 and "clean" in check.stdout, check.stdout + check.stderr
        assert crossings == want_crossings, (crossings, want_crossings)
        assert firing == want_alerts, (firing, want_alerts)
        assert dead_letters == malformed + Counter([far_future])
        assert fields[far_future] == FUTURE.encode()
        assert misplaced_records > 0, "the defaults producer put no record outside its home"
        assert all(reasons)
        assert ledger.duplicates and ledger.late and ledger.malformed
    finally:
        if pipeline.fault_file.exists():
            pipeline.fault_file.unlink()
        pipeline.stop_all()
        prometheus.stop()
        alertmanager.stop()
        broker.stop()
