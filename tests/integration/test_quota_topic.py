"""Quotas through the real compacted quota topic: publish, read back, delete, and the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from tokenops.cli import app
from tokenops.paths import deploy_dir
from tokenops.quotas.book import load_quota_file
from tokenops.quotas.topic import delete_quota, publish_quotas, read_quota_book
from tokenops.schemas.quota import QuotaDefinition
from tokenops.settings import KafkaSettings, TopicSettings

pytestmark = pytest.mark.integration

COMPACTED = {"cleanup.policy": "compact"}


def test_publish_replace_and_delete(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topics = TopicSettings(quotas=new_topic("quotas", 1, COMPACTED))
    assert len(read_quota_book(kafka_settings, topics)) == 0
    quotas = load_quota_file(deploy_dir() / "quotas.yaml")
    publish_quotas(kafka_settings, topics, quotas)
    raised = QuotaDefinition(tenant_id="tenant-001", name="daily-tokens", period="day", limit=7)
    publish_quotas(kafka_settings, topics, [raised])
    book = read_quota_book(kafka_settings, topics)
    assert len(book) == len(quotas)
    assert book.get("tenant-001", "daily-tokens") == raised
    delete_quota(kafka_settings, topics, "tenant-001", "daily-tokens")
    book = read_quota_book(kafka_settings, topics)
    assert book.get("tenant-001", "daily-tokens") is None and len(book) == len(quotas) - 1


def test_the_cli_sets_lists_and_deletes(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    env = {
        "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "TOKENOPS_TOPIC_QUOTAS": new_topic("quotas", 1, COMPACTED),
    }
    runner = CliRunner()
    args = ["quota", "set", "acme", "daily", "--limit", "1000", "--timezone", "Europe/Paris"]
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0, done.output
    listed = runner.invoke(app, ["quota", "list"], env=env)
    assert "acme" in listed.output and "Europe/Paris" in listed.output
    bad = runner.invoke(app, ["quota", "set", "acme", "x", "--limit", "5", "--period", "week"])
    assert bad.exit_code != 0 and "period" in str(bad.exception)
    assert runner.invoke(app, ["quota", "delete", "acme", "daily"], env=env).exit_code == 0
    assert "acme" not in runner.invoke(app, ["quota", "list"], env=env).output
    missing = runner.invoke(app, ["quota", "delete", "acme", "daily"], env=env)
    assert missing.exit_code != 0 and "no quota" in str(missing.exception)


def test_published_alert_keys_reads_from_a_point_in_time(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    from confluent_kafka import Producer

    from tokenops.quotas.replay import published_alert_keys

    topic = new_topic("alerts", 3)
    producer = Producer(kafka_settings.librdkafka())
    now = int(time.time() * 1000)
    for i, at in enumerate([now - 600_000, now - 300_000, now - 1000, now]):
        producer.produce(topic, b"{}", key=f"k{i}".encode(), timestamp=at)
    assert producer.flush(30) == 0
    assert published_alert_keys(kafka_settings, topic, now - 400_000) == {"k1", "k2", "k3"}
    assert published_alert_keys(kafka_settings, topic, now + 60_000) == set()
    assert published_alert_keys(kafka_settings, "no-such-topic-x", now) == set()
