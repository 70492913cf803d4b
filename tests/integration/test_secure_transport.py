"""Authenticated transport: every component over SASL_SSL/SCRAM-SHA-512 and over mutual
TLS, against a broker of its own (not the shared PLAINTEXT one); refusals are quick and
clear; secrets appear in no output or log.

The producer SDK runs in this process; the worker and both sinks run as real `tokenops`
processes configured only through TOKENOPS_* environment variables.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.secure_kafka import (
    SCRAM_PASSWORD,
    SecureBroker,
    clean_env,
    kafka_env,
    start_secure_broker,
)
from tests.processes import TokenopsProcess, run_tokenops
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.settings import KafkaSettings, TopicSettings
from tokenops.stack.process import free_port
from tokenops.topics import ensure_topics, pipeline_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 120


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = start_secure_broker(tmp_path_factory.mktemp("secure-kafka"))
    yield broker
    broker.broker.stop()


def _topics() -> TopicSettings:
    tag = uuid.uuid4().hex[:8]
    return TopicSettings(
        usage=f"sec.usage.{tag}",
        aggregates=f"sec.aggs.{tag}",
        dead_letter=f"sec.dlq.{tag}",
        quota_alerts=f"sec.alerts.{tag}",
        quotas=f"sec.quotas.{tag}",
        partitions=2,
    )


def _topic_env(topics: TopicSettings) -> dict[str, str]:
    return {f"TOKENOPS_TOPIC_{k.upper()}": str(v) for k, v in topics}


def _worker_env(tmp: Path) -> dict[str, str]:
    return {
        "TOKENOPS_WORKER_APP_ID": f"sec-{uuid.uuid4().hex[:8]}",
        "TOKENOPS_WORKER_STATE_DIR": str(tmp / "worker"),
        "TOKENOPS_WORKER_HTTP_PORT": str(free_port()),
        "TOKENOPS_WORKER_WINDOW_S": "2",
        "TOKENOPS_WORKER_ALLOWED_LATENESS_S": "1",
        "TOKENOPS_WORKER_IDLE_TIMEOUT_S": "2",
        "TOKENOPS_WORKER_DEDUP_HORIZON_S": "120",
        "TOKENOPS_WORKER_CHANGELOG_RETENTION_S": "3600",
        "TOKENOPS_WORKER_SESSION_TIMEOUT_S": "6",
        "TOKENOPS_WORKER_HEARTBEAT_INTERVAL_S": "1",
        "TOKENOPS_WORKER_BATCH_WITHIN_S": "0.1",
        "TOKENOPS_LOG_PROGRESS_EVERY_S": "2",
    }


def _metric(port: int, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _wait_metric(
    port: int, name: str, at_least: float, services: list[TokenopsProcess], **labels: str
) -> float:
    deadline = time.monotonic() + 90
    value = 0.0
    while time.monotonic() < deadline:
        value = _metric(port, name, **labels)
        if value >= at_least:
            return value
        for service in services:
            assert service.proc.poll() is None, service.output()[-4000:]
        time.sleep(0.5)
    logs = "\n".join(s.output()[-3000:] for s in services)
    raise AssertionError(f"{name}{labels} stayed at {value} (< {at_least}):\n{logs}")


def _wait_healthy(port: int, service: TokenopsProcess, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert service.proc.poll() is None, service.output()[-4000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("not healthy: " + service.output()[-3000:])


@pytest.mark.parametrize("mode", ["sasl_ssl", "mtls"])
def test_pipeline_moves_usage_over_an_authenticated_listener(
    secure: SecureBroker, mode: str, tmp_path: Path
) -> None:
    kafka = secure.sasl() if mode == "sasl_ssl" else secure.mtls()
    topics = _topics()
    ensure_topics(kafka, pipeline_topics(topics))  # the admin client, over the same listener
    env = clean_env(**kafka_env(kafka), **_topic_env(topics), TOKENOPS_LOG_LEVEL="INFO")
    worker_env = {**env, **_worker_env(tmp_path)}
    prom_port, ch_port = free_port(), free_port()
    services = [
        TokenopsProcess(["worker"], worker_env, tmp_path / "worker.log"),
        TokenopsProcess(
            ["sink", "prometheus"],
            {
                **env,
                "TOKENOPS_PROMETHEUS_SINK_HOST": "127.0.0.1",
                "TOKENOPS_PROMETHEUS_SINK_PORT": str(prom_port),
                "TOKENOPS_PROMETHEUS_SINK_WORKER_GROUP": worker_env["TOKENOPS_WORKER_APP_ID"],
            },
            tmp_path / "prometheus.log",
        ),
        TokenopsProcess(
            ["sink", "clickhouse"],
            {
                **env,
                "TOKENOPS_STACK_STATE_DIR": str(tmp_path / "stack"),
                "TOKENOPS_CLICKHOUSE_URL": f"chdb://{tmp_path / 'clickhouse'}",
                "TOKENOPS_CLICKHOUSE_HTTP_HOST": "127.0.0.1",
                "TOKENOPS_CLICKHOUSE_HTTP_PORT": str(ch_port),
                "TOKENOPS_CLICKHOUSE_CONSUMER_GROUP": f"sec-ch-{uuid.uuid4().hex[:6]}",
                "TOKENOPS_CLICKHOUSE_BATCH_MAX_MS": "200",
            },
            tmp_path / "clickhouse.log",
        ),
    ]
    try:
        settings = ProducerSettings(topic=topics.usage, spool_dir=tmp_path / "spool")
        with UsageProducer(kafka, settings) as producer:
            now_ms = int(time.time() * 1000)
            for i in range(EVENTS):
                producer.send(_event(i, now_ms - 5_000 + i))
            assert producer.flush(30) == 0, "the producer SDK could not deliver"
        # worker (aiokafka in, librdkafka out) -> aggregates -> Prometheus sink
        events = _wait_metric(prom_port, "tokenops_events_total", EVENTS, services, tenant="acme")
        assert events == EVENTS
        # usage and aggregates -> ClickHouse sink
        records = "tokenops_clickhouse_sink_records_total"
        _wait_metric(ch_port, records, 1, services, role="usage")
        _wait_metric(ch_port, records, 1, services, role="aggregates")
        _wait_metric(ch_port, "tokenops_clickhouse_sink_rows_total", EVENTS + 1, services)
    finally:
        for service in services:
            service.stop()


def _event(i: int, time_ms: int) -> dict[str, object]:
    return {
        "id": f"sec-{i}",
        "source": "//node-secure",
        "time": datetime.fromtimestamp(time_ms / 1000, UTC),
        "tenant_id": "acme",
        "model": "m-secure",
        "provider": "p",
        "input_tokens": 10,
        "output_tokens": 5,
    }


def _run(args: list[str], env: dict[str, str], timeout_s: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    code, output = run_tokenops(args, env, timeout_s)
    return code, output, time.monotonic() - started


@pytest.mark.parametrize("refusal", ["wrong_password", "no_client_certificate"])
def test_refused_credentials_fail_fast_with_a_clear_error(
    secure: SecureBroker, refusal: str, tmp_path: Path
) -> None:
    if refusal == "wrong_password":
        kafka, reason = secure.sasl(password="wrong-pw-Zr8Lq1"), "SASL authentication"
    else:
        kafka, reason = secure.mtls(client_cert=False), "certificate"
    env = clean_env(**kafka_env(kafka), **_topic_env(_topics()), **_worker_env(tmp_path))
    for command in (["topics", "list"], ["worker"]):
        code, output, took = _run(command, env)
        assert code == 1, output
        assert took < 20, f"{command} took {took:.0f} s to give up"
        assert "refused the connection" in output and reason in output, output
        assert "Traceback" not in output, output
        assert "wrong-pw-Zr8Lq1" not in output


def test_secrets_appear_in_no_output_or_log(secure: SecureBroker, tmp_path: Path) -> None:
    secrets = {
        "TOKENOPS_CLICKHOUSE_PASSWORD": "ch-pw-Hq3Vn8Ws",
        "TOKENOPS_KAFKA_SSL_KEY_PASSWORD": "key-pw-Ty6Ue1Pa",
        "TOKENOPS_PRODUCER_SIGNING_KEY": "signing-key-Fp2Gd7Kc9",
    }
    keyring_secret = "keyring-secret-Vb4Nm6Xz1"
    kafka = secure.sasl()
    topics = _topics()
    env = clean_env(
        **kafka_env(kafka),
        **_topic_env(topics),
        **secrets,
        TOKENOPS_PRODUCER_SIGNING_KEY_ID="node-1",
        TOKENOPS_WORKER_SIGNATURE_MODE="enforce",
        TOKENOPS_WORKER_SIGNING_KEYS=json.dumps(
            {"node-1": {"secret": keyring_secret, "sources": ["//node-secure"]}}
        ),
    )
    leaks = [SCRAM_PASSWORD, keyring_secret, *secrets.values()]

    code, shown, _ = _run(["config", "show"], env)
    assert code == 0, shown
    assert "**********" in shown

    wrong = {**env, "TOKENOPS_KAFKA_SASL_PASSWORD": "wrong-pw-Mb5Xc0Rj"}
    code, refused, _ = _run(["topics", "list"], wrong)
    assert code == 1 and "refused" in refused
    leaks.append("wrong-pw-Mb5Xc0Rj")

    unreachable = {
        **env,
        "TOKENOPS_CLICKHOUSE_URL": f"https://127.0.0.1:{free_port()}",
        "TOKENOPS_CLICKHOUSE_CONNECT_TIMEOUT_S": "2",
        "TOKENOPS_STACK_STATE_DIR": str(tmp_path / "stack"),
    }
    sink = TokenopsProcess(["sink", "clickhouse"], unreachable, tmp_path / "sink.log")
    try:  # the sink waits for ClickHouse with backoff, logging why it cannot connect
        deadline = time.monotonic() + 30
        while "cannot connect to ClickHouse" not in sink.output() and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        sink.stop()
    clickhouse = sink.output()
    assert "cannot connect to ClickHouse" in clickhouse, clickhouse

    debug = {**env, **_worker_env(tmp_path), "TOKENOPS_LOG_LEVEL": "DEBUG"}
    worker = TokenopsProcess(["worker"], debug, tmp_path / "worker.log")
    try:
        _wait_healthy(int(debug["TOKENOPS_WORKER_HTTP_PORT"]), worker)
        time.sleep(4)  # a few report cycles (TOKENOPS_LOG_PROGRESS_EVERY_S=2)
    finally:
        worker.stop()
    logged = worker.output()
    assert " DEBUG " in logged, logged[-2000:]

    for name, text in [
        ("config show", shown),
        ("topics list", refused),
        ("sink clickhouse", clickhouse),
        ("worker", logged),
    ]:
        for secret in leaks:
            assert secret not in text, f"{name} printed a secret"


def test_kafka_env_round_trips(secure: SecureBroker) -> None:
    """The helper above writes exactly what `KafkaSettings` reads back."""
    for kafka in (secure.sasl(), secure.mtls()):
        env = kafka_env(kafka)
        mp = pytest.MonkeyPatch()
        for k, v in env.items():
            mp.setenv(k, v)
        try:
            assert KafkaSettings() == kafka
        finally:
            mp.undo()


def test_producer_sdk_with_a_wrong_password_logs_why_and_spools(
    secure: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK never blocks the caller on a refused login: flush gives up after its
    timeout, close spools the event, and the log says the credentials were refused."""
    topics = _topics()
    ensure_topics(secure.sasl(), pipeline_topics(topics))
    kafka = secure.sasl(password="wrong-pw-Ds4Kq8")
    settings = ProducerSettings(
        topic=topics.usage, spool_dir=tmp_path / "spool", delivery_timeout_ms=3000
    )
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="tokenops.producers"):
        producer = UsageProducer(kafka, settings)
        producer.send(_event(0, int(time.time() * 1000)))
        try:
            producer.flush(8)  # gives up at delivery_timeout_ms and spools
        finally:
            producer.close(1)
    assert time.monotonic() - started < 20
    assert "SASL authentication error" in caplog.text
    assert "wrong-pw-Ds4Kq8" not in caplog.text
    assert any((tmp_path / "spool").iterdir()), "the undelivered event was not spooled"
