"""Live figures of a demo run, read from the pipeline's own endpoints."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from tokenops.demo.alerts import Alert, alert_name
from tokenops.schemas.quota import QuotaAlert
from tokenops.settings import KafkaSettings
from tokenops.stack.services import PipelineService
from tokenops.topics import read_to_end


@dataclass
class Progress:
    target: int  # records the simulator will send
    produced: int = 0
    events_expected: int = 0  # known once the simulator is done
    events_seen: int = 0  # counted + duplicates, by the worker
    events_counted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    windows_closed: int = 0
    corrections: int = 0
    open_windows: int = 0
    rows_written: int = 0
    alerts: int = 0

    def sent(self, records: int) -> None:
        self.produced = records


def observe(
    progress: Progress, services: list[PipelineService], alertmanager: str, prefix: str
) -> None:
    by_name = {s.name: s for s in services}
    worker = by_name["worker"].scrape()
    if worker:
        p = "tokenops_worker_"
        progress.events_counted = int(worker.total(p + "events_total", outcome="counted"))
        progress.duplicates = int(worker.total(p + "events_total", outcome="duplicate"))
        progress.events_seen = progress.events_counted + progress.duplicates
        progress.dead_lettered = int(worker.total(p + "records_total", outcome="dead_lettered"))
        progress.windows_closed = int(worker.total(p + "windows_closed_total"))
        progress.corrections = int(worker.total(p + "corrections_total"))
        progress.open_windows = int(worker.total(p + "open_windows"))
    sink = by_name["sink-clickhouse"].scrape()
    if sink:
        progress.rows_written = int(sink.total("tokenops_clickhouse_sink_rows_total"))
    progress.alerts = len(alerts_firing(alertmanager, prefix))


def alerts_firing(alertmanager: str, tenant_prefix: str) -> list[dict[str, str]]:
    """Active quota alerts in Alertmanager for this run's tenants (its v2 API)."""
    try:
        with urllib.request.urlopen(f"{alertmanager}/api/v2/alerts?active=true", timeout=3) as r:
            alerts = json.loads(r.read())
    except OSError:
        return []
    found = []
    for alert in alerts:
        labels = alert.get("labels", {})
        if labels.get("tenant", "").startswith(tenant_prefix) and labels.get(
            "alertname", ""
        ).startswith("TokenopsQuota"):
            found.append({**labels, "startsAt": alert.get("startsAt", "")})
    return sorted(found, key=lambda a: (a["tenant"], a["alertname"]))


def quota_alerts_published(kafka: KafkaSettings, topic: str, tenant_prefix: str) -> set[Alert]:
    """The alerts that the worker's quota-alerts records call for, per the rules."""
    wanted = set()
    for message in read_to_end(kafka, topic, timeout_s=30):
        alert = QuotaAlert.from_bytes(message.value() or b"")
        if not alert.tenant_id.startswith(tenant_prefix) or alert.period == "minute":
            continue
        pct = alert.threshold_pct
        wanted.add((alert_name(pct), alert.tenant_id, str(pct)))
    return wanted


def pipeline_lag(kafka: KafkaSettings, group: str, topics: list[str]) -> int:
    """Records on `topics` that consumer group `group` has not committed yet (-1: unknown)."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": group, "log_level": 0})
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in metadata.topics[topic].partitions
        ]
        lag = 0
        for tp in consumer.committed(partitions, timeout=10):
            high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), 10)[1]
            lag += high - max(tp.offset, 0)
        return lag
    except (KafkaException, KeyError):
        return -1
    finally:
        consumer.close()
