"""Two regions, one central count: west's Kafka -> MirrorMaker 2 -> central's worker.

The stack code starts a second KRaft cluster (west), MirrorMaker 2 and the lag exporter
(`stack/regions.py`) beside the session's broker (central). Fleets send usage in both
regions (with duplicates, late events, malformed records); MirrorMaker is killed with -9
while west sends, so on restart it replays what it had not committed, and the central
worker is killed once. Then the central aggregates and every tenant's invoice equal the
two ledgers added up (0 lost, 0 double counted), each region's totals are queryable by
region, and the real Prometheus fired TokenopsReplicationLagHigh while MirrorMaker was
down (the checked-in rule, its threshold and `for` shortened to test time).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_clickhouse_pipeline import SinkProcess, assert_invoice, hand_invoices
from tests.e2e.test_quota_alerting import FastPrometheus
from tests.e2e.worker_run import (
    WINDOW_S,
    WorkerProcess,
    clickhouse_sink_env,
    latest_totals,
    worker_env,
)
from tokenops.demo.observe import pipeline_lag
from tokenops.paths import deploy_dir
from tokenops.producers.producer import UsageProducer
from tokenops.producers.settings import ProducerSettings
from tokenops.quotas.topic import publish_quotas
from tokenops.replication.lag import committed_positions
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.simulate.ledger import ExpectedTotals, Key, Ledger
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.stack.process import free_port
from tokenops.stack.regions import RegionalStack
from tokenops.topics import read_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ALERT = "TokenopsReplicationLagHigh"
QUOTA_TENANT = "tenant-001"  # the busiest of the Zipf-distributed tenants
# The checked-in rule says 120 s for 2 m; the test cannot wait that long. Above
# MirrorMaker's 5 s commit interval (x 2: a busy machine).
LAG_THRESHOLD_S = 10


class LagRulePrometheus(FastPrometheus):
    """The checked-in rules, with TokenopsReplicationLagHigh's threshold and `for` cut."""

    def render_config(self) -> Path:
        path = super().render_config()
        config = yaml.safe_load(path.read_text())
        rules_file = deploy_dir() / "prometheus" / "rules" / "tokenops.rules.yml"
        rules = yaml.safe_load(rules_file.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == ALERT:
                    assert "> 120" in rule["expr"], rule["expr"]
                    rule["expr"] = rule["expr"].replace("> 120", f"> {LAG_THRESHOLD_S}")
                    rule["for"] = "1s"
        shortened = self.home / "tokenops.rules.yml"
        shortened.write_text(yaml.safe_dump(rules, sort_keys=False))
        config["rule_files"] = [str(shortened)]
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def firing(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/alerts", timeout=5) as response:
            alerts = json.loads(response.read())["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]


def fleet(region: str, seed: int, duration_s: float) -> SimulationConfig:
    """One region's fleet; the same tenants in both regions, different event ids."""
    return SimulationConfig(
        tenants=8,
        rate=400,
        duration_s=duration_s,
        seed=seed,
        regions=(region,),
        duplicate_share=0.02,
        late_share=0.02,
        late_by_s=5,
        malformed_share=0.002,
    )


def in_background(
    run: Callable[[], Ledger], ledgers: list[tuple[str, Ledger]], region: str
) -> threading.Thread:
    def target() -> None:
        ledgers.append((region, run()))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def tenant_tokens(configs: list[SimulationConfig], tenant: str) -> int:
    """Input + output tokens of `tenant`'s unique events in these fleets (no I/O: the
    simulator's events depend on the seed alone, ids and times aside)."""
    return sum(
        e.fields["input_tokens"] + e.fields["output_tokens"]
        for config in configs
        for e in Simulator(config).emissions()
        if e.fields is not None and not e.duplicate and e.fields["tenant_id"] == tenant
    )


def west_records(kafka: KafkaSettings, topic: str) -> int:
    """Records of west's fleet in `topic` (in central: replicated, replays included)."""
    return sum(b"//sim/west/" in (m.value() or b"") for m in read_to_end(kafka, topic))


def kill_with_uncommitted_records(
    regional: RegionalStack, central: KafkaSettings, topic: str
) -> int:
    """kill -9 MirrorMaker while it has replicated records whose offsets it has not
    committed yet (it commits every 5 s), so that its restart must send them again.
    Counted after the kill, when nothing moves; a kill just after a commit is retried.
    Returns how many records it must replay (malformed ones left out)."""
    deadline = time.monotonic() + 60
    while True:
        before = west_records(central, topic)
        while west_records(central, topic) <= before:
            assert time.monotonic() < deadline, "MirrorMaker replicated nothing"
            time.sleep(0.1)
        regional.mirror.kill()
        committed = sum(committed_positions(central, "west", topic).values())
        if (uncommitted := west_records(central, topic) - committed) > 0:
            return uncommitted
        assert time.monotonic() < deadline, "MirrorMaker was never killed past a commit"
        regional.mirror.start()


def add_up(ledgers: list[Ledger]) -> dict[Key, ExpectedTotals]:
    expected: dict[Key, ExpectedTotals] = {}
    for ledger in ledgers:
        for key, totals in ledger.expected_windows(WINDOW_S).items():
            old = expected.get(key, ExpectedTotals())
            expected[key] = ExpectedTotals(*(a + b for a, b in zip(old, totals, strict=True)))
    return expected


def sql(sink: SinkProcess, query: str) -> list[list[Any]]:
    return list(sink.get("/v1/sql", {"sql": query})["rows"])


def test_two_regions_count_exactly_once_through_mirrormaker_crashes(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = {
        "usage": new_topic(
            "usage", partitions=4, config={"message.timestamp.type": "LogAppendTime"}
        ),
        "aggregates": new_topic("aggs", partitions=4),
        "dead_letter": new_topic("dlq", partitions=4),
        "quota_alerts": new_topic("alerts", partitions=4),
        "quotas": new_topic("quotas", partitions=1),
    }
    settings = StackSettings(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap_mb=512,
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
    )
    settings.state_dir.mkdir()
    regional = RegionalStack(
        settings,
        ["west", "central"],
        kafka_settings.bootstrap_servers,
        TopicSettings(usage=topics["usage"]),
    )
    regional.lag_exporter.env["TOKENOPS_REPLICATION_POLL_INTERVAL_S"] = "1"
    prometheus = LagRulePrometheus(settings)
    env = worker_env(kafka_settings, topics, f"w-{uuid.uuid4().hex[:8]}", tmp_path)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    sink_env = clickhouse_sink_env(env, tmp_path, tmp_path / "store", group)
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "sink")}
    fleets = {
        "west": [fleet("west", 1, 4), fleet("west", 3, 8)],
        "central": [fleet("central", 2, 4)],
    }
    # Quotas are evaluated centrally, on both regions' events: a monthly limit of exactly
    # the tenant's tokens in both regions is crossed by the last of them, never before.
    limit = tenant_tokens([*fleets["west"], *fleets["central"]], QUOTA_TENANT)
    assert tenant_tokens(fleets["west"], QUOTA_TENANT) < limit
    publish_quotas(
        kafka_settings,
        TopicSettings(**topics),
        [QuotaDefinition(tenant_id=QUOTA_TENANT, name="monthly", period="month", limit=limit)],
    )
    began = time.monotonic()
    # Worker and sink start on central while west and MirrorMaker come up.
    worker = WorkerProcess(env, tmp_path / "state", logs["worker"])
    sink = SinkProcess(sink_env, logs["sink"])
    ledgers: list[tuple[str, Ledger]] = []
    producers: dict[str, UsageProducer] = {}
    try:
        prometheus.start()  # first: the exporter announces itself in its targets folder
        regional.up()
        west = regional.kafka_settings("west")
        for region, kafka in (("west", west), ("central", kafka_settings)):
            spool = tmp_path / f"spool-{region}"
            producers[region] = UsageProducer(
                kafka, ProducerSettings(topic=topics["usage"], batch_max_events=50, spool_dir=spool)
            )
        worker.wait_ready()
        sink.wait_ready()
        print(f"stack, MirrorMaker, worker and sink up in {time.monotonic() - began:.0f} s")

        # Both regions send; the central worker is killed -9 while they do.
        threads = [
            in_background(
                lambda: Simulator(fleets["west"][0]).run(producers["west"]), ledgers, "west"
            ),
            in_background(
                lambda: Simulator(fleets["central"][0]).run(producers["central"]),
                ledgers,
                "central",
            ),
        ]
        time.sleep(2)
        worker.kill()
        worker = WorkerProcess(env, tmp_path / "state", logs["worker"])
        for thread in threads:
            thread.join(60)

        # West sends again; MirrorMaker dies mid-stream, with records replicated but
        # their offsets not yet committed (it commits every 5 s).
        thread = in_background(
            lambda: Simulator(fleets["west"][1]).run(producers["west"]), ledgers, "west"
        )
        uncommitted = kill_with_uncommitted_records(regional, kafka_settings, topics["usage"])
        down_at = time.monotonic()
        thread.join(60)
        while not prometheus.firing():
            assert time.monotonic() - down_at < 60, (
                f"{ALERT} did not fire while MirrorMaker was down"
            )
            time.sleep(0.5)
        fired = prometheus.firing()[0]
        print(f"{ALERT} fired {time.monotonic() - down_at:.0f} s after the kill: {fired['labels']}")
        assert fired["labels"]["source_region"] == "west"
        assert fired["labels"]["target_region"] == "central"
        regional.mirror.start()  # resumes from its last committed offsets: a replay

        expected = add_up([ledger for _, ledger in ledgers])
        want = {key: list(totals) for key, totals in expected.items()}
        deadline = time.monotonic() + 90
        worker.wait_ready()
        while latest_totals(kafka_settings, topics["aggregates"]) != want:
            assert time.monotonic() < deadline, logs["worker"].read_text()[-3000:]
            time.sleep(1.0)

        print(f"central aggregates equal the ledgers at {time.monotonic() - began:.0f} s")

        sent = west_records(west, topics["usage"])
        replayed = west_records(kafka_settings, topics["usage"]) - sent
        print(f"west records {sent}; uncommitted at the kill {uncommitted}, replayed {replayed}")
        assert replayed > 0  # MirrorMaker's at-least-once replay did happen, and counted once
        while prometheus.firing():  # caught up: the alert resolves
            assert time.monotonic() < deadline, "the lag alert still fires after the catch-up"
            time.sleep(0.5)

        alerts = [
            QuotaAlert.from_bytes(m.value())
            for m in read_to_end(kafka_settings, topics["quota_alerts"])
        ]
        exceeded = {(a.tenant_id, a.usage) for a in alerts if a.threshold_pct == 100}
        assert exceeded == {(QUOTA_TENANT, limit)}, alerts

        sink_inputs = [topics["aggregates"], topics["usage"], topics["dead_letter"]]
        while pipeline_lag(kafka_settings, group, sink_inputs) != 0:
            assert time.monotonic() < deadline, logs["sink"].read_text()[-3000:]
            time.sleep(0.5)
        for (tenant, month), lines in hand_invoices(expected).items():
            assert_invoice(sink.get(f"/v1/invoices/{tenant}", {"month": month}), lines, tenant)

        # Every region's totals, by region, from the raw events (deduplicated).
        by_region: dict[str, ExpectedTotals] = {}
        for region, ledger in ledgers:
            for totals in ledger.expected_by_tenant().values():
                old = by_region.get(region, ExpectedTotals())
                by_region[region] = ExpectedTotals(
                    *(a + b for a, b in zip(old, totals, strict=True))
                )
        rows = sql(
            sink,
            "SELECT region, sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),"
            " sum(cache_creation_input_tokens), sum(reasoning_output_tokens), count()"
            " FROM raw_events_latest GROUP BY region ORDER BY region",
        )
        got = {row[0]: ExpectedTotals(*(int(v) for v in row[1:])) for row in rows}
        assert got == by_region
        print(f"whole run: {time.monotonic() - began:.0f} s")
    finally:
        for producer in producers.values():
            producer.close()
        worker.stop()
        sink.stop()
        regional.down()
        prometheus.stop()
