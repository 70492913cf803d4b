"""The Prometheus sink on the real broker: values from the topics, rebuilt after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.windows import window_totals
from tests.processes import TOKENOPS
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition, period_bounds
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.sinks.prometheus.sink import PrometheusSink
from tokenops.stack.process import free_port

pytestmark = pytest.mark.integration
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> TopicSettings:
    compacted = {"cleanup.policy": "compact"}
    return TopicSettings(
        usage=new_topic("usage", 2),
        aggregates=new_topic("aggs", 2, compacted),
        dead_letter=new_topic("dlq", 2),
        quota_alerts=new_topic("alerts", 2),
        quotas=new_topic("quotas", 1, compacted),
    )


def window(tenant: str, start: int, tokens: int, revision: int = 1) -> WindowTotals:
    return window_totals(
        tenant,
        "m1",
        start,
        input_tokens=tokens,
        output_tokens=tokens // 2,
        revision=revision,
        events=revision,
        emitted_at_ms=start + 90_000,
    )


def scrape(sink: PrometheusSink) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{sink.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


@pytest.fixture
def started(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> Iterator[Callable[[], PrometheusSink]]:
    sinks: list[PrometheusSink] = []

    def start() -> PrometheusSink:
        settings = PrometheusSinkSettings(host="127.0.0.1", port=0, max_tenants=2, lag_interval_s=1)
        sink = PrometheusSink(kafka_settings, topics, settings)
        sink.start()
        sinks.append(sink)
        assert sink.ready.wait(30), "the sink did not catch up with its topics"
        return sink

    yield start
    for sink in sinks:
        sink.stop()


def test_gauges_are_right_after_a_restart_and_tenants_are_bounded(
    kafka_settings: KafkaSettings, topics: TopicSettings, started: Callable[[], PrometheusSink]
) -> None:
    now = int(time.time() * 1000)
    minute = now - now % 60_000 - 120_000
    day_start, day_end = period_bounds("day", now)
    producer = Producer(kafka_settings.librdkafka())
    quota = QuotaDefinition(tenant_id="quota-tenant", name="daily", period="day", limit=10_000)
    producer.produce(topics.quotas, quota.to_bytes(), key=quota.key.encode())
    for record in [
        window("t1", minute, 100),
        window("t2", minute, 200),
        window("t3", minute, 300),  # max_tenants=2: quota-tenant first, then the largest
        window("quota-tenant", minute, 2000),
        window("quota-tenant", minute, 4000, revision=2),  # a late correction replaces it
    ]:
        producer.produce(topics.aggregates, record.to_bytes(), key=record.key.encode())
    alert = QuotaAlert(
        tenant_id="quota-tenant",
        quota="daily",
        period="day",
        period_start_ms=day_start,
        period_end_ms=day_end,
        threshold_pct=80,
        usage=Decimal(8100),
        limit=Decimal(10_000),
        unit="tokens",
        time_ms=now,
        emitted_at_ms=now,
    )
    producer.produce(topics.quota_alerts, alert.to_bytes(), key=alert.key.encode())
    for offset, field in ((7, b"tenant_id"), (8, b"record"), (9, b"x-chosen-by-producer")):
        headers = [
            ("tokenops.dlq.reason", b"invalid usage event: ..."),
            ("tokenops.dlq.field", field),
            ("tokenops.dlq.offset", str(offset).encode()),
        ]
        producer.produce(topics.dead_letter, b"{junk", headers=headers)
    producer.produce(topics.usage, b"x", key=b"t1")
    assert producer.flush(30) == 0

    first = started()
    values = scrape(first)

    def tokens(tenant: str) -> float | None:
        labels = (("model", "m1"), ("tenant", tenant), ("token_type", "input_tokens"))
        return values.get(("tokenops_tokens_total", labels))

    assert tokens("quota-tenant") == 4000 and tokens("t3") == 300
    assert tokens("t1") is None and tokens("t2") is None and tokens("other") == 300
    assert values[("tokenops_prometheus_sink_collapsed_tenants", ())] == 2
    ratio = (
        "tokenops_quota_usage_ratio",
        (("period", "day"), ("quota", "daily"), ("tenant", "quota-tenant")),
    )
    assert values[ratio] == 0.81  # the alert's usage is ahead of the closed windows (0.6)
    for field in ("tenant_id", "record", "other"):  # by tokenops.dlq.field, bounded
        assert values[("tokenops_dead_letter_records_total", (("field", field),))] == 1
    assert values[("tokenops_window_corrections_total", ())] == 1
    assert values[("tokenops_prometheus_sink_ready", ())] == 1

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the worker group never committed: lag = all records
        lag = [v for k, v in scrape(first).items() if k[0] == "tokenops_consumer_lag_records"]
        if sum(lag) == 1:
            break
        time.sleep(0.5)
    assert len(lag) == 2 and sum(lag) == 1

    first.stop()
    second = started()  # no new traffic: everything comes back from the topics
    rebuilt = scrape(second)
    stable = {
        k: v
        for k, v in values.items()
        if not k[0].startswith(("tokenops_consumer_lag", "python_", "process_"))
    }
    assert {k: rebuilt.get(k) for k in stable} == stable


def test_the_cli_serves_metrics_and_stops_on_sigterm(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENOPS_")}
    env.update(
        TOKENOPS_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        TOKENOPS_TOPIC_AGGREGATES=topics.aggregates,
        TOKENOPS_TOPIC_QUOTAS=topics.quotas,
        TOKENOPS_TOPIC_QUOTA_ALERTS=topics.quota_alerts,
        TOKENOPS_TOPIC_DEAD_LETTER=topics.dead_letter,
        TOKENOPS_TOPIC_USAGE=topics.usage,
        TOKENOPS_PROMETHEUS_SINK_PORT=str(port),  # the host is the default: loopback
    )
    tokenops = TOKENOPS
    with (tmp_path / "sink.log").open("wb") as log:
        process = subprocess.Popen(
            [tokenops, "sink", "prometheus"], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as response:
                    text = response.read().decode()
                if "tokenops_prometheus_sink_ready 1.0" in text:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "sink.log").read_text()
            time.sleep(0.3)
        assert f"listening host=127.0.0.1 port={port}" in (tmp_path / "sink.log").read_text()
        rebound = urllib.request.Request(url, headers={"Host": f"tenant-data.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:  # a DNS-rebinding page
            urllib.request.urlopen(rebound, timeout=2)
        assert refused.value.code == 421
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0, (tmp_path / "sink.log").read_text()


def test_an_unreadable_record_is_counted_with_its_role_and_reason(
    kafka_settings: KafkaSettings, topics: TopicSettings, started: Callable[[], PrometheusSink]
) -> None:
    producer = Producer(kafka_settings.librdkafka())
    producer.produce(topics.aggregates, b'{"tenant_id": 7}', key=b"bad")
    producer.produce(topics.quota_alerts, b"{junk", key=b"bad")
    start = int(time.time() * 1000)
    good = window("t1", start - start % 60_000, 100)
    producer.produce(topics.aggregates, good.to_bytes(), key=good.key.encode())
    assert producer.flush(30) == 0
    samples = scrape(started())
    skipped = "tokenops_prometheus_sink_skipped_records_total"
    for role in ("aggregates", "quota_alerts"):
        assert samples[(skipped, (("reason", "unreadable"), ("role", role)))] == 1
    assert samples[("tokenops_prometheus_sink_errors_total", (("kind", "decode"),))] == 2
