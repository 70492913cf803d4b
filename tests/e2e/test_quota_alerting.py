"""Quota alerting end to end: events -> worker -> quota-alerts -> sink -> Prometheus ->
Alertmanager -> a webhook, with real processes on free ports and a kill -9 in between.

One tenant is driven past 50, 80 and 100 % of its daily quota (the default
thresholds_pct), with duplicates and a late event injected and the worker killed and
restarted between the 80 % and the 100 % crossing. The webhook must get one notification
per crossed threshold (warnings at 50 and 80 %, exceeded at 100 %), each once, within 60 s
of the event that crossed; the quota-alerts topic must hold exactly one record per
crossing.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from tests.e2e.worker_run import WorkerProcess, worker_env
from tests.harness.alerting import AlertWebhook, WebhookAlertmanager
from tokenops.demo.day import wait_for_one_day
from tokenops.quotas.topic import publish_quotas
from tokenops.schemas.event import UsageEvent
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.schemas.wire import encode_event
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.sinks.prometheus.sink import PrometheusSink
from tokenops.stack.alerting import PrometheusServer
from tokenops.stack.process import free_port
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
TENANT, LIMIT = "acme-e2e", 10_000


class Webhook(AlertWebhook):
    """The webhook, with this test's tenant by default and a wait for an alert."""

    def firing(self, alertname: str, tenant: str = TENANT, threshold: int = 0) -> list[float]:
        return super().firing(alertname, tenant, threshold)

    def wait_for(
        self, alertname: str, timeout_s: float, tenant: str = TENANT, threshold: int = 0
    ) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if arrivals := self.firing(alertname, tenant, threshold):
                return arrivals[0]
            time.sleep(0.1)
        raise AssertionError(
            f"{alertname} {threshold or ''} not received within {timeout_s} s: {self.received}"
        )


class FastPrometheus(PrometheusServer):
    def render_config(self) -> Path:
        path = super().render_config()
        config = yaml.safe_load(path.read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    compacted = {"cleanup.policy": "compact"}
    return {
        "usage": new_topic("usage", partitions=4),
        "aggregates": new_topic("aggs", partitions=4, config=compacted),
        "dead_letter": new_topic("dlq", partitions=4),
        "quota_alerts": new_topic("alerts", partitions=4),
        "quotas": new_topic("quotas", partitions=1, config=compacted),
    }


@pytest.fixture
def stack(
    kafka_settings: KafkaSettings, topics: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Webhook, str]]:
    wait_for_one_day(before_s=120, after_s=600)  # the quota is daily
    app_id = f"quota-e2e-{uuid.uuid4().hex[:8]}"
    topic_settings = TopicSettings(**topics)
    publish_quotas(
        kafka_settings,
        topic_settings,
        [QuotaDefinition(tenant_id=TENANT, name="daily", period="day", limit=LIMIT)],
    )
    webhook = Webhook()
    sink = PrometheusSink(
        kafka_settings,
        topic_settings,
        PrometheusSinkSettings(host="127.0.0.1", port=0, worker_group=app_id, lag_interval_s=1),
    )
    sink.start()
    settings = StackSettings(
        state_dir=tmp_path / "stack", prometheus_port=free_port(), alertmanager_port=free_port()
    )
    settings.state_dir.mkdir()
    # a 1 s group wait instead of the checked-in 5 s: the test waits less
    alertmanager = WebhookAlertmanager(
        settings, webhook.url, {"group_wait": "1s", "group_interval": "2s"}
    )
    prometheus = FastPrometheus(settings, {"tokenops-prometheus-sink": f"127.0.0.1:{sink.port}"})
    try:
        alertmanager.start()
        prometheus.start()
        yield webhook, app_id
    finally:
        prometheus.stop()
        alertmanager.stop()
        sink.stop()
        webhook.close()


class Usage:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic, self.n = topic, 0
        self.producer = Producer({**kafka.librdkafka(), "partitioner": "murmur2_random"})
        self.sent: list[UsageEvent] = []

    def send(self, tokens: int, *, late_s: float = 0, again: UsageEvent | None = None) -> float:
        """Produce one event of `tokens` (or a duplicate of `again`); returns when it is acked."""
        if again is None:
            self.n += 1
            again = UsageEvent(
                id=f"e{self.n}",
                source="//node/e2e",
                time=datetime.fromtimestamp(time.time() - late_s, UTC),
                tenant_id=TENANT,
                model="m1",
                provider="p",
                input_tokens=tokens * 4 // 5,
                output_tokens=tokens - tokens * 4 // 5,
            )
            self.sent.append(again)
        self.producer.produce(self.topic, encode_event(again), key=TENANT.encode())
        assert self.producer.flush(10) == 0
        return time.time()


def wait_healthy(worker: WorkerProcess, timeout_s: float = 90) -> None:
    """Until the worker owns its partitions' state (its /healthz answers 200)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{worker.port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"worker not ready within {timeout_s} s: {worker.log.read_text()[-3000:]}")


def wait_for_record(kafka: KafkaSettings, topic: str, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(read_to_end(kafka, topic)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} records on {topic}"
        time.sleep(0.5)


def test_every_threshold_notifies_once_within_60_s(
    kafka_settings: KafkaSettings,
    topics: dict[str, str],
    stack: tuple[Webhook, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # Faust puts its `<app id>-data` folder in the cwd
    webhook, app_id = stack
    env = worker_env(kafka_settings, topics, app_id, tmp_path)
    logs = tmp_path / "worker.log"
    worker = WorkerProcess(env, tmp_path / "worker-state", logs)
    usage = Usage(kafka_settings, topics["usage"])
    try:
        wait_healthy(worker)
        for _ in range(4):
            usage.send(1000)
        crossed_half = usage.send(1000)  # 50 %
        for _ in range(2):  # 70 %
            usage.send(1000)
        usage.send(0, again=usage.sent[0])  # a duplicate counts nothing
        half = webhook.wait_for("TokenopsQuotaWarning", 60, threshold=50)
        wait_for_record(kafka_settings, topics["quota_alerts"], count=1)
        crossed_warning = usage.send(1000)  # 80 %
        warned = webhook.wait_for("TokenopsQuotaWarning", 60, threshold=80)

        worker.kill()  # kill -9 and restart from the durable state
        worker = WorkerProcess(env, tmp_path / "worker-state", logs)
        wait_healthy(worker)
        for event in usage.sent[:3]:
            usage.send(0, again=event)  # duplicates again, after the restart
        # 60 s late: past the worker's lateness (a window correction), within its 120 s
        # dedup horizon, and on the same UTC day (the fixture waited for one).
        usage.send(1000, late_s=60)  # 90 %
        usage.send(500)  # 95 %
        crossed_exceeded = usage.send(500)  # 100 %
        exceeded = webhook.wait_for("TokenopsQuotaExceeded", 60, threshold=100)
        time.sleep(6)  # any repeated notification would arrive by now (group_interval 2 s)
    finally:
        worker.stop()

    for threshold in (50, 80):
        assert len(webhook.firing("TokenopsQuotaWarning", threshold=threshold)) == 1, (
            webhook.received
        )
    assert len(webhook.firing("TokenopsQuotaExceeded")) == 1, webhook.received
    delays = half - crossed_half, warned - crossed_warning, exceeded - crossed_exceeded
    print("quota alert delay (s) at 50, 80, 100 %:", ", ".join(f"{d:.1f}" for d in delays))
    assert all(0 < delay < 60 for delay in delays)

    alerts = [
        QuotaAlert.from_bytes(m.value())
        for m in read_to_end(kafka_settings, topics["quota_alerts"])
    ]
    keys = sorted(alert.key for alert in alerts)
    start = alerts[0].period_start_ms
    assert keys == sorted(f"{TENANT}|daily|{start}|{pct}" for pct in (50, 80, 100)), keys
    emitted = {alert.threshold_pct: alert.emitted_at_ms / 1000 for alert in alerts}
    warn_worker, exceed_worker = emitted[80] - crossed_warning, emitted[100] - crossed_exceeded
    print(
        f"  of which worker (event acked -> alert record): {warn_worker:.1f} s, "
        f"{exceed_worker:.1f} s"
    )
    assert {alert.threshold_pct: int(alert.usage) for alert in alerts} == {
        50: 5000,
        80: 8000,
        100: 10_000,
    }


def test_the_fleet_simulator_drives_a_tenant_past_its_daily_quota(
    kafka_settings: KafkaSettings,
    topics: dict[str, str],
    stack: tuple[Webhook, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two simulator runs (Zipf tenants, duplicates, late and malformed records): the first
    takes its biggest tenant to 90 % of the quota, the second past 100 %.

    Two runs, because a warning and an exceeded alert less than a group wait apart are one
    page: Alertmanager's inhibition keeps the warning back (docs/operations.md).
    """
    from tokenops.producers.producer import UsageProducer
    from tokenops.producers.settings import ProducerSettings
    from tokenops.simulate.simulator import SimulationConfig, Simulator

    monkeypatch.chdir(tmp_path)
    webhook, app_id = stack
    tenant = f"{TENANT}-001"

    def run_config(seed: int) -> SimulationConfig:
        return SimulationConfig(
            tenants=5,
            rate=400,
            duration_s=4,
            seed=seed,
            start_ms=int(time.time() * 1000) + 500,
            duplicate_share=0.05,
            late_share=0.05,
            late_by_s=3,
            malformed_share=0.01,
            tenant_prefix=f"{TENANT}-",
        )

    def tenant_tokens(config: SimulationConfig) -> int:
        """What a run will count for the tenant: its unique events' input + output."""
        return sum(
            e.fields["input_tokens"] + e.fields["output_tokens"]
            for e in Simulator(config).emissions()
            if e.fields is not None and not e.duplicate and e.fields["tenant_id"] == tenant
        )

    def simulate(config: SimulationConfig) -> None:
        while time.time() * 1000 < (config.start_ms or 0):  # event times follow the pace
            time.sleep(0.05)
        settings = ProducerSettings(topic=topics["usage"], spool_dir=tmp_path / "spool")
        with UsageProducer(kafka_settings, settings) as producer:
            ledger = Simulator(config).run(producer)
        assert ledger.duplicates and ledger.late and ledger.malformed

    env = worker_env(kafka_settings, topics, app_id, tmp_path)
    worker = WorkerProcess(env, tmp_path / "w", tmp_path / "worker.log")
    try:
        worker.wait_ready()
        first = run_config(seed=3)
        limit = tenant_tokens(first) * 10 // 9  # the first run ends at 90 %
        quota = QuotaDefinition(tenant_id=tenant, name="daily", period="day", limit=limit)
        publish_quotas(kafka_settings, TopicSettings(**topics), [quota])
        time.sleep(1)  # the worker's quota watcher picks the quota up
        simulate(first)
        warned = webhook.wait_for("TokenopsQuotaWarning", 60, tenant, threshold=80)
        webhook.wait_for("TokenopsQuotaWarning", 60, tenant, threshold=50)
        second = run_config(seed=4)
        assert tenant_tokens(first) + tenant_tokens(second) >= limit
        simulate(second)
        exceeded = webhook.wait_for("TokenopsQuotaExceeded", 60, tenant)
        time.sleep(5)
    finally:
        worker.stop()

    records = read_to_end(kafka_settings, topics["quota_alerts"])
    alerts = [QuotaAlert.from_bytes(m.value()) for m in records]
    crossed = {a.threshold_pct: a for a in alerts if a.tenant_id == tenant}
    assert sorted(a.threshold_pct for a in alerts if a.tenant_id == tenant) == [50, 80, 100]
    for threshold in (50, 80):
        assert len(webhook.firing("TokenopsQuotaWarning", tenant, threshold)) == 1
    assert len(webhook.firing("TokenopsQuotaExceeded", tenant)) == 1
    # From the crossing event's time (a late event was sent up to 3 s after its time).
    delays = warned - crossed[80].time_ms / 1000, exceeded - crossed[100].time_ms / 1000
    print(f"simulator: quota alert delay warning {delays[0]:.1f} s, exceeded {delays[1]:.1f} s")
    assert all(0 < d < 60 for d in delays)
