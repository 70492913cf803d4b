"""The checked-in Prometheus, Alertmanager and Grafana files: valid, tested, documented.

Runs Debian's `promtool` and `amtool` (installed by `make setup`); no server is started.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tokenops.paths import deploy_dir
from tokenops.replication.exporter import LagExporter
from tokenops.replication.settings import ReplicationSettings
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.quota import QuotaDefinition
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.sinks.clickhouse.metrics import SinkMetrics
from tokenops.sinks.prometheus.collector import METRIC_NAMES
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.sinks.prometheus.sink import PrometheusSink
from tokenops.streams.quota_metrics import QuotaMetrics

DEPLOY = deploy_dir()
OPERATIONS = DEPLOY.parent / "docs" / "operations.md"


def run(*argv: str) -> str:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is missing: run `make setup` (Debian prometheus packages)")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "tokenops.rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_prometheus_config_and_rules() -> None:
    assert "SUCCESS" in run(
        "promtool", "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")
    )


def test_promtool_rule_unit_tests_pass() -> None:
    tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in run("promtool", "test", "rules", *map(str, tests))


def test_every_alert_has_a_unit_test() -> None:
    tested = set()
    for path in (DEPLOY / "prometheus" / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert {rule["alert"] for rule in alert_rules()} <= tested


def test_every_alert_has_severity_and_a_runbook_entry() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/operations.md#{rule['alert'].lower()}", url
        assert rule["alert"].lower() in anchors, f"no runbook heading for {rule['alert']}"
        if "Quota" in rule["alert"] or "PerMinute" in rule["alert"]:
            assert "$labels.tenant" in rule["annotations"]["summary"]


def test_amtool_checks_the_alertmanager_config_and_routes() -> None:
    config = str(DEPLOY / "alertmanager" / "alertmanager.yml")
    assert "SUCCESS" in run("amtool", "check-config", config)
    for severity, receiver in [
        ("critical", "critical"),
        ("warning", "warning"),
        ("info", "webhook"),
    ]:
        routed = run(
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"severity={severity}",
            "tenant=acme",
            "alertname=TokenopsQuotaWarning",
        )
        assert routed.strip().splitlines()[0] == receiver


def test_alertmanager_ships_slack_pagerduty_and_webhook_receivers_with_file_secrets() -> None:
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    receivers = {r["name"]: r for r in yaml.safe_load(text)["receivers"]}
    kinds = {kind for receiver in receivers.values() for kind in receiver if kind != "name"}
    assert {"slack_configs", "pagerduty_configs", "webhook_configs"} <= kinds
    assert "pagerduty_configs" in receivers["critical"]
    for receiver in receivers.values():
        for config in receiver.get("slack_configs", []):
            assert config["api_url_file"].startswith("/etc/alertmanager/secrets/")
        for config in receiver.get("pagerduty_configs", []):
            assert config["routing_key_file"].startswith("/etc/alertmanager/secrets/")
        for config in receiver.get("webhook_configs", []):
            credentials = config["http_config"]["authorization"]["credentials_file"]
            assert credentials.startswith("/etc/alertmanager/secrets/")
    # Every crossing of a threshold is its own notification.
    assert "threshold_pct" in yaml.safe_load(text)["route"]["group_by"]


def test_the_exporter_publishes_every_configured_threshold_for_the_rules() -> None:
    """The quota rules compare the usage ratio with tokenops_quota_threshold_ratio, one
    series per entry of the quota's thresholds_pct: 50, 80 and 100 % all alert."""
    registry = CollectorRegistry()
    sink = PrometheusSink(
        KafkaSettings(), TopicSettings(), PrometheusSinkSettings(), registry=registry
    )
    for quota in (
        QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=1000),
        QuotaDefinition(
            tenant_id="acme", name="budget", period="month", limit=10, thresholds_pct=(90, 120)
        ),
    ):
        sink.state.on_quota(quota.key.encode(), quota.to_bytes())
    sink.state.on_window(WINDOW)
    thresholds = {
        (s.labels["quota"], s.labels["period"], s.labels["threshold_pct"]): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == "tokenops_quota_threshold_ratio" and s.labels["tenant"] == "acme"
    }
    assert thresholds == {
        ("daily", "day", "50"): 0.5,
        ("daily", "day", "80"): 0.8,
        ("daily", "day", "100"): 1.0,
        ("budget", "month", "90"): 0.9,
        ("budget", "month", "120"): 1.2,
    }
    quota_rules = [r["expr"] for r in alert_rules() if "Quota" in r["alert"]]
    assert all("0.8" not in expr for expr in quota_rules)  # no hard-coded ratio left


WINDOW = WindowTotals(
    tenant_id="acme",
    model="m1",
    window_start_ms=int(time.time() * 1000) // 60_000 * 60_000 - 120_000,
    window_size_s=60,
    input_tokens=10,
    output_tokens=5,
    cache_read_input_tokens=0,
    cache_creation_input_tokens=0,
    reasoning_output_tokens=0,
    event_count=1,
    first_event_time_ms=1,
    last_event_time_ms=2,
    revision=1,
    emitted_at_ms=3,
)


def exporter_metric_names() -> set[str]:
    registry = CollectorRegistry()
    sink = PrometheusSink(
        KafkaSettings(), TopicSettings(), PrometheusSinkSettings(), registry=registry
    )
    sink.errors.labels("decode")
    quota = QuotaDefinition(tenant_id="acme", name="daily", period="day", limit=1000)
    sink.state.on_quota(quota.key.encode(), quota.to_bytes())
    sink.state.on_window(WINDOW)
    sink.state.on_dead_letter("tenant_id", ("usage", "0", "1"))
    sink.lag.lag = {("tokenops-worker", "usage", 0): 5}
    names = {sample.name for family in registry.collect() for sample in family.samples}
    names |= {family.name for family in registry.collect()}
    clickhouse = CollectorRegistry()
    SinkMetrics(clickhouse)
    QuotaMetrics(clickhouse, lambda: 0)  # the worker's quota counters
    names |= {s.name for family in clickhouse.collect() for s in family.samples}
    replication = LagExporter(ReplicationSettings(), KafkaSettings(), "usage")
    for gauge in (replication.records, replication.seconds, replication.up):
        gauge.labels("west", "central").set(0)
    names |= {s.name for family in replication.registry.collect() for s in family.samples}
    return names | {"up"}


def test_the_exporter_exposes_every_documented_metric() -> None:
    known = exporter_metric_names()
    assert set(METRIC_NAMES) <= {n.removesuffix("_bucket") for n in known} | known


def test_the_grafana_dashboard_is_valid_and_uses_only_exported_metrics() -> None:
    path = DEPLOY / "grafana" / "tokenops-dashboard.json"
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    known = exporter_metric_names()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\b(?:tokenops_[a-z_]+|up)\b", target["expr"]):
                assert name in known, f"panel {panel['title']!r}: {name} is not exported"


def test_the_rules_use_only_exported_metrics() -> None:
    known = exporter_metric_names()
    for rule in alert_rules():
        for name in re.findall(r"\b(?:tokenops_[a-z_]+)\b", rule["expr"]):
            assert name in known, f"{rule['alert']}: {name} is not exported"


def test_the_example_quotas_name_tenants_the_simulator_sends() -> None:
    """A hand run (`tokenops simulate` + `tokenops quota set --file deploy/quotas.yaml`)
    must drive the example quotas: their tenants are among the simulator's busiest."""
    from tokenops.quotas.book import load_quota_file
    from tokenops.simulate.simulator import SimulationConfig, Simulator

    config = SimulationConfig(rate=200, duration_s=1, start_ms=0)
    sent = {e.fields["tenant_id"] for e in Simulator(config).emissions() if e.fields}
    quotas = load_quota_file(DEPLOY / "quotas.yaml")
    assert {"tenant-001", "tenant-002"} == {quota.tenant_id for quota in quotas}
    assert {quota.tenant_id for quota in quotas} <= sent
