"""Freshness: window close -> row in ClickHouse, and quota crossing -> quota-alerts record
-> Alertmanager notification, with real processes under a steady background load.

Windows here are `WINDOW_S` long with `LATENESS_S` allowed lateness, so that a quick run
sees many window closes; the measured delay starts at the close (end + lateness) and does
not depend on the window's length. Prometheus and Alertmanager run the checked-in
production configs (5 s scrape and evaluation, 5 s group wait); only the webhook address
is the benchmark's.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from confluent_kafka import Producer

from bench.pipeline_env import Service, Topics, base_env
from bench.pipeline_load import BatchLoad, cloudevent
from tests.harness.alerting import AlertWebhook, WebhookAlertmanager
from tokenops.quotas.topic import publish_quotas
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.schemas.wire import EVENT_HEADERS
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.sinks.clickhouse.store import read_owner
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.sinks.prometheus.sink import PrometheusSink
from tokenops.stack.alerting import PrometheusServer
from tokenops.stack.process import free_port
from tokenops.topics import read_to_end

WINDOW_S, LATENESS_S = 5, 2


def _event(tenant: str, event_id: str, t_ms: int, tokens: int) -> bytes:
    return orjson.dumps(cloudevent(tenant, "gpt-x", event_id, t_ms, tokens))


def _in_clickhouse(sink: Service, store: Path, tenant: str, t_ms: int) -> bool:
    """The tenant's window is queryable: the sink's /v1/usage has a row for it. The sink's
    query routes take the run token its store's owner file holds, as the CLI sends it."""
    hour = datetime.fromtimestamp(t_ms // 3_600_000 * 3600, UTC)
    span = {"from": hour.isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    query = urllib.parse.urlencode({"tenant": tenant, **span, "by": "model"})
    request = urllib.request.Request(
        f"http://127.0.0.1:{sink.port}/v1/usage?{query}",
        headers={"Authorization": f"Bearer {read_owner(store).get('token', '')}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return bool(json.loads(r.read())["rows"])
    except OSError:
        return False


def freshness(
    kafka: KafkaSettings, topics: Topics, work: Path, windows: int, crossings: int, background: int
) -> dict[str, list[float]]:
    """Delays in seconds: 'clickhouse' per window, 'quota_record' and 'alertmanager' per
    quota crossing; `background` events/s of other tenants flow meanwhile."""
    env = base_env(kafka, topics)
    tag = uuid.uuid4().hex[:6]
    topic_settings = TopicSettings(**topics.__dict__)
    tenants = [f"quota-{tag}-{i}" for i in range(crossings)]
    publish_quotas(
        kafka,
        topic_settings,
        [QuotaDefinition(tenant_id=t, name="daily", period="day", limit=1000) for t in tenants],
    )
    worker = Service.worker(
        env,
        work,
        f"fresh-{tag}",
        window_s=str(WINDOW_S),
        allowed_lateness_s=str(LATENESS_S),
        idle_timeout_s="2",
    )
    sink = Service.sink(env, work, f"fresh-sink-{tag}", batch_max_ms="200")
    assert sink.store is not None
    store = sink.store
    webhook = AlertWebhook()
    prom_sink = PrometheusSink(
        kafka,
        topic_settings,
        PrometheusSinkSettings(host="127.0.0.1", port=0, worker_group=f"fresh-{tag}"),
    )
    stack = StackSettings(
        state_dir=work / f"alerting-{tag}",
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
    )
    stack.state_dir.mkdir()
    alertmanager = WebhookAlertmanager(stack, webhook.url)  # the production timings
    prometheus: PrometheusServer | None = None
    stop = threading.Event()
    load = BatchLoad(kafka, topics.usage, tenants=200, per_record=20)

    def background_load() -> None:
        while not stop.is_set():
            load.paced(background, 1.0)

    out: dict[str, list[float]] = {"clickhouse": [], "quota_record": [], "alertmanager": []}
    producer = Producer({**kafka.librdkafka(), "partitioner": "murmur2_random", "linger.ms": 0})
    thread = threading.Thread(target=background_load, daemon=True)
    try:
        prom_sink.start()  # its port is known once started
        targets = {"tokenops-prometheus-sink": f"127.0.0.1:{prom_sink.port}"}
        prometheus = PrometheusServer(stack, targets)
        alertmanager.start()
        prometheus.start()
        worker.wait_ready()
        sink.wait_ready()
        thread.start()
        time.sleep(WINDOW_S + LATENESS_S + 2)
        # One probe tenant per window: an event in the window, then wait for its row.
        for k in range(windows):
            now = int(time.time() * 1000)
            start = now - now % (WINDOW_S * 1000)
            tenant = f"probe-{tag}-{k}"
            producer.produce(
                topics.usage,
                _event(tenant, f"p{k}", now, 10),
                tenant.encode(),
                headers=EVENT_HEADERS,
            )
            producer.flush(10)
            close = (start + WINDOW_S * 1000) / 1000 + LATENESS_S
            deadline = close + 60
            while not _in_clickhouse(sink, store, tenant, now) and time.time() < deadline:
                time.sleep(0.05)
            if time.time() < deadline:
                out["clickhouse"].append(time.time() - close)
        # Quota crossings: one event of 1,500 tokens against a 1,000-token daily quota.
        crossed: dict[str, float] = {}
        for i, tenant in enumerate(tenants):
            producer.produce(
                topics.usage,
                _event(tenant, f"q{i}", int(time.time() * 1000), 1500),
                tenant.encode(),
                headers=EVENT_HEADERS,
            )
            producer.flush(10)
            crossed[tenant] = time.time()
            time.sleep(1.0)
        deadline = time.time() + 90
        while len(webhook.first_firing()) < len(tenants) and time.time() < deadline:
            time.sleep(0.2)
        first = webhook.first_firing()
        out["alertmanager"] = [first[t] - crossed[t] for t in tenants if t in first]
        for m in read_to_end(kafka, topics.quota_alerts):
            alert = QuotaAlert.from_bytes(m.value())
            if alert.tenant_id in crossed and alert.threshold_pct == 100:
                out["quota_record"].append(m.timestamp()[1] / 1000 - crossed[alert.tenant_id])
    finally:
        stop.set()
        thread.join(5)
        load.flush()
        worker.stop()
        sink.stop()
        if prometheus is not None:
            prometheus.stop()
        alertmanager.stop()
        prom_sink.stop()
        webhook.close()
    return out
