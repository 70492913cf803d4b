"""The Helm chart (deploy/helm/tokenops) checked with real tools, as a platform engineer
would: `helm lint` and `helm template` (helm built from the Go module proxy at a pinned
version), `kubernetes-validate --strict` on every rendered object, checkov on the
rendered manifests, values.schema.json refusing bad values, and hadolint on the
Dockerfile.

helm, checkov and hadolint are installed by deploy/local/install-dev-tools.sh (run by `make setup`
and, idempotently, by this module's fixture), cached under ~/.cache/tokenops.
No cluster runs here: the objects are validated, not applied.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.test_deploy_static import known_variables
from tokenops.paths import deploy_dir
from tokenops.settings import TopicSettings
from tokenops.streams.settings import WorkerSettings

DEPLOY = deploy_dir()
CHART = DEPLOY / "helm" / "tokenops"
PRODUCTION = CHART / "ci" / "production-values.yaml"
NAMESPACE = "tokenops"
# Custom resources of KEDA and prometheus-operator: kubernetes-validate has no schema
# for them, so their shape is asserted by the tests below instead.
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest known.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


def _tools_cache() -> Path:
    return Path(os.environ.get("TOKENOPS_TOOLS_CACHE", Path.home() / ".cache" / "tokenops"))


@pytest.fixture(scope="module")
def tools() -> dict[str, Path]:
    """helm and checkov at the pinned versions; installs them once per machine."""
    script = DEPLOY / "local" / "install-dev-tools.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = script.read_text()
    versions = dict(re.findall(r'^([A-Z]+)_VERSION="([^"]+)"', text, re.MULTILINE))
    return {
        tool: _tools_cache() / f"{tool}-{versions[tool.upper()]}" / "bin" / tool
        for tool in ("helm", "checkov", "hadolint")
    }


def helm(tools: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools["helm"]), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(tools: dict[str, Path], *args: str) -> str:
    done = helm(tools, "template", "tokenops", str(CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


@pytest.fixture(scope="module")
def renders(tools: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    return {
        "default": objects(render(tools)),
        "production": objects(render(tools, "-f", str(PRODUCTION))),
    }


def find(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def test_hadolint_passes_the_dockerfile_and_the_image_runs_as_a_numeric_non_root_user(
    tools: dict[str, Path],
) -> None:
    dockerfile = DEPLOY / "Dockerfile"
    done = subprocess.run(
        [str(tools["hadolint"]), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    users = re.findall(r"^USER (\S+)", dockerfile.read_text(), re.MULTILINE)
    assert users == ["10001:10001"]  # numeric: runAsNonRoot can check it


def test_helm_lint_passes_with_default_and_production_values(tools: dict[str, Path]) -> None:
    for extra in ([], ["-f", str(PRODUCTION)]):
        done = helm(tools, "lint", "--strict", str(CHART), *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", ["default", "production"])
def test_every_rendered_object_passes_kubernetes_validate_strict(
    renders: dict[str, list[dict[str, Any]]], values: str
) -> None:
    docs = renders[values]
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Deployment", "Job", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{doc['kind']} {doc['metadata']['name']}: {exc}") from exc
    unknown = {
        (d["apiVersion"], d["kind"]) for d in docs if "." in d["apiVersion"].split("/")[0]
    } - CUSTOM_KINDS
    core_groups = {"apps", "batch", "policy", "networking.k8s.io"}
    assert {api for api, _ in unknown if api.split("/")[0] not in core_groups} == set()


def run_checkov(tools: dict[str, Path], manifest: str, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    (folder / "rendered.yaml").write_text(manifest)
    done = subprocess.run(
        [
            str(tools["checkov"]),
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--skip-download",  # no network here: the bundled checks only
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},  # no guideline download either
    )
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("values", ["default", "production"])
def test_checkov_finds_no_failed_check_and_every_skip_carries_its_reason(
    tools: dict[str, Path], tmp_path: Path, values: str
) -> None:
    extra = ["-f", str(PRODUCTION)] if values == "production" else []
    report = run_checkov(tools, render(tools, *extra), tmp_path / values)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert report["summary"]["passed"] > 100
    for skipped in report["results"]["skipped_checks"]:
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} skipped without a reason"


@pytest.mark.parametrize("values", ["default", "production"])
def test_every_pod_runs_restricted(renders: dict[str, list[dict[str, Any]]], values: str) -> None:
    specs = dict(pod_specs(renders[values]))
    assert len(specs) == 4  # worker, two sinks, the migrations Job
    for name, spec in specs.items():
        assert spec["automountServiceAccountToken"] is False, name
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["seccompProfile"]["type"] == "RuntimeDefault", name
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, f"{name}: no writable /tmp"
        temporary = [v for v in spec["volumes"] if v["name"] == "tmp"]
        assert "emptyDir" in temporary[0], name


def test_the_worker_survives_a_long_recovery_and_keeps_its_state(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    worker = find(renders["production"], "StatefulSet", "-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    startup, liveness = container["startupProbe"], container["livenessProbe"]
    # /healthz is 503 during recovery: start-up may take recoverySeconds (2400 here), and
    # liveness never asks /healthz, so a recovery after a rebalance restarts nothing.
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2400
    assert liveness["httpGet"]["path"] == "/metrics"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    claim = worker["spec"]["volumeClaimTemplates"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/tokenops"
    assert "replicas" not in worker["spec"]  # KEDA owns the count in production


def test_settings_point_the_processes_at_pod_ips_state_and_configmap_prices(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    settings = find(renders["default"], "ConfigMap", "-settings")["data"]
    for host in (
        "TOKENOPS_WORKER_HTTP_HOST",
        "TOKENOPS_CLICKHOUSE_HTTP_HOST",
        "TOKENOPS_PROMETHEUS_SINK_HOST",
    ):
        assert settings[host] == "0.0.0.0"
    assert settings["TOKENOPS_WORKER_STATE_DIR"].startswith("/var/lib/tokenops/")
    prices = find(renders["default"], "ConfigMap", "-prices")["data"]["prices.yaml"]
    assert yaml.safe_load(prices) == yaml.safe_load((DEPLOY / "prices.yaml").read_text())
    assert settings["TOKENOPS_CLICKHOUSE_PRICES_FILE"] == "/etc/tokenops/prices/prices.yaml"


def test_the_chart_sets_only_variables_the_code_reads(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    set_by_chart: set[str] = set()
    for docs in renders.values():
        for doc in docs:
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-settings"):
                set_by_chart |= {k for k in doc["data"] if k.startswith("TOKENOPS_")}
    # The pods' bind addresses, read once the settings for them exist (set ahead of that).
    bind_hosts = {"TOKENOPS_WORKER_HTTP_HOST", "TOKENOPS_PROMETHEUS_SINK_HOST"}
    assert sorted(set_by_chart - known_variables() - bind_hosts) == []


def test_a_price_or_setting_change_rolls_the_pods(tools: dict[str, Path]) -> None:
    def annotations(*args: str) -> dict[str, str]:
        sink = find(objects(render(tools, *args)), "Deployment", "-sink-clickhouse")
        return dict(sink["spec"]["template"]["metadata"]["annotations"])

    before = annotations()
    entry = {"effective_from": "2026-01-01T00:00:00Z", "input_tokens": "1"}
    price = json.dumps({"currency": "USD", "models": {"m": [entry]}})
    assert (
        annotations("--set-json", f"prices={price}")["checksum/prices"] != before["checksum/prices"]
    )
    changed = annotations("--set", "extraEnv.TOKENOPS_LOG_LEVEL=DEBUG")
    assert changed["checksum/settings"] != before["checksum/settings"]


def test_one_migrator_runs_before_install_and_upgrade_and_publishes_quotas(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    docs = renders["production"]
    job = find(docs, "Job", "-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["parallelism"] == 1 and job["spec"]["completions"] == 1
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    steps = [line.split("#")[0].strip() for line in script.splitlines() if line.strip()]
    assert steps == [
        "tokenops topics create",
        "tokenops clickhouse migrate",
        "tokenops quota set --file /etc/tokenops/prices/quotas.yaml",
    ]
    # Everything the hook reads exists before it: hooks of a lower weight.
    files = find(docs, "ConfigMap", "-migrations-files")
    assert files["metadata"]["annotations"]["helm.sh/hook-weight"] == "-5"
    quotas = yaml.safe_load(files["data"]["quotas.yaml"])["quotas"]
    assert quotas[0]["tenant_id"] == "tenant-001"
    settings = find(docs, "ConfigMap", "-migrations")["data"]
    assert settings == find(docs, "ConfigMap", "-settings")["data"]


def test_existing_secret_replaces_the_chart_secret_everywhere(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    docs = renders["production"]
    assert not [d for d in docs if d["kind"] == "Secret"]
    for name, spec in pod_specs(docs):
        refs = [
            s["secretRef"]["name"] for s in spec["containers"][0]["envFrom"] if "secretRef" in s
        ]
        assert refs == ["tokenops-credentials"], name
    auth = find(docs, "TriggerAuthentication")["spec"]["secretTargetRef"]
    assert {a["parameter"]: a["name"] for a in auth} == {
        "username": "tokenops-credentials",
        "password": "tokenops-credentials",
        "ca": "tokenops-kafka-cluster-ca-cert",
    }


def test_keda_scales_the_worker_on_usage_lag_capped_at_the_partitions(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    docs = renders["production"]
    scaled = find(docs, "ScaledObject")
    values = yaml.safe_load(PRODUCTION.read_text())
    assert values["keda"]["maxReplicaCount"] > values["topics"]["partitions"]
    assert scaled["spec"]["maxReplicaCount"] == values["topics"]["partitions"]
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["metadata"]["topic"] == TopicSettings().usage
    assert trigger["metadata"]["consumerGroup"] == WorkerSettings().app_id
    assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    assert (
        trigger["authenticationRef"]["name"]
        == find(docs, "TriggerAuthentication")["metadata"]["name"]
    )
    assert scaled["spec"]["scaleTargetRef"]["name"] == find(docs, "StatefulSet")["metadata"]["name"]


def test_disruption_budgets_network_policies_and_monitoring_cover_every_component(
    renders: dict[str, list[dict[str, Any]]],
) -> None:
    docs = renders["production"]
    components = {"worker", "sink-clickhouse", "sink-prometheus"}
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }
    assert budgets == components
    monitors = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for d in docs
        if d["kind"] == "ServiceMonitor"
    }
    assert monitors == components
    policy = find(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), doc["metadata"]["name"]
    rule = find(docs, "PrometheusRule")
    checked_in = yaml.safe_load(
        (DEPLOY / "prometheus" / "rules" / "tokenops.rules.yml").read_text()
    )
    assert rule["spec"]["groups"] == checked_in["groups"]


@pytest.mark.parametrize(
    "bad",
    [
        ["--set", "securityContext.runAsNonRoot=false"],
        ["--set", "securityContext.readOnlyRootFilesystem=false"],
        ["--set", "kafka.securityProtocol=TLS"],
        ["--set", "clickhouse.url=ftp://clickhouse:21"],
        ["--set", "clickhouse.schemaVariant=sharded"],
        ["--set", "image.digest=latest"],
        ["--set", "topics.partitions=0"],
        ["--set", "worker.recoverySeconds=-1"],
        ["--set", "workers.replicas=3"],  # a typo: unknown keys are refused
        ["--set", "extraEnv.LOG_LEVEL=DEBUG"],  # only TOKENOPS_* settings
        ["--set-json", 'quotas=[{"tenant_id": "a", "name": "q", "period": "week", "limit": 1}]'],
        ["--set", "worker.resources.limits=null"],
    ],
)
def test_values_schema_refuses_bad_values(tools: dict[str, Path], bad: list[str]) -> None:
    done = helm(tools, "template", "tokenops", str(CHART), *bad)
    assert done.returncode != 0, f"accepted {bad}"
    assert "schema" in done.stderr.lower() or "values don't meet" in done.stderr, done.stderr
