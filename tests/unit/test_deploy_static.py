"""Static checks of deploy/: no Docker engine or Kubernetes runs here, so every manifest is
parsed and checked against the code's own defaults (ports, topics, settings names).
The Helm chart is rendered and validated with real tools in test_helm_chart.py.

What this covers and what it cannot is written down in docs/operations.md ("Deploying").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tokenops.config import settings_sections
from tokenops.settings import StackSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Variables read outside the settings models: logging, and where deploy/ lives.
PROCESS_VARIABLES = {"TOKENOPS_LOG_LEVEL", "TOKENOPS_DEPLOY_DIR"}


def known_variables() -> set[str]:
    names = set(PROCESS_VARIABLES)
    for section in settings_sections():
        prefix = str(section.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in section.model_fields}
    return names


def _yaml_documents() -> list[tuple[Path, Any]]:
    documents = []
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        if "templates" in path.relative_to(DEPLOY).parts:  # Helm templates: rendered elsewhere
            continue
        for document in yaml.safe_load_all(path.read_text()):
            documents.append((path, document))
    return documents


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return loaded


def test_every_yaml_file_parses() -> None:
    documents = _yaml_documents()
    assert len(documents) > 10
    for path, document in documents:
        assert document is not None or path.name.endswith(".yml"), f"{path} is empty"


def test_compose_images_are_pinned_and_services_have_healthchecks() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} unpinned"
        if name != "init":  # a one-shot job, not a service
            assert "healthcheck" in service, f"compose service {name} has no healthcheck"
    expected = {"kafka", "clickhouse", "prometheus", "alertmanager", "grafana", "worker"}
    assert expected <= set(services)
    assert {"sink-clickhouse", "prometheus-sink"} <= set(services)


def test_compose_only_sets_variables_the_code_reads() -> None:
    known = known_variables()
    compose = _compose()
    used: set[str] = set()
    for service in compose["services"].values():
        environment = service.get("environment") or {}
        used |= {k for k in environment if k.startswith("TOKENOPS_")}
    unknown = sorted(used - known)
    assert not unknown, f"deploy/ sets variables no settings model reads: {unknown}"


def test_ports_agree_with_the_code_defaults() -> None:
    from tokenops.streams.settings import WorkerSettings

    stack = StackSettings()
    services = _compose()["services"]

    def published(service: str) -> set[int]:
        return {int(str(p).split(":")[-1]) for p in services[service].get("ports", [])}

    assert stack.kafka_port in published("kafka")
    assert stack.prometheus_port in published("prometheus")
    assert stack.alertmanager_port in published("alertmanager")
    assert WorkerSettings().http_port in published("worker")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    exposed = {int(p) for p in re.findall(r"\d+", dockerfile.split("EXPOSE", 1)[1].split("\n")[0])}
    assert WorkerSettings().http_port in exposed


def test_compose_mounts_exist_and_grafana_is_provisioned_with_the_dashboard() -> None:
    compose_dir = DEPLOY / "compose"
    services = _compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (compose_dir / source).resolve().exists(), f"{name} mounts {source}"
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "tokenops.yml").read_text()
    )["providers"][0]
    dashboards_dir = provider["options"]["path"]
    source = next(s for s, target in grafana_mounts.items() if target == dashboards_dir)
    assert list((compose_dir / source).resolve().glob("*.json")), "no dashboard is mounted"
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == f"http://prometheus:{StackSettings().prometheus_port}"
