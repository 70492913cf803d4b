"""Shared fixtures: a real Kafka broker per test session, unique topics, chDB stores.

The broker is started by the same code as `tokenops stack up` (KafkaBroker), on free
ports, with its data in a temporary state directory; the Kafka jars are cached in the
usual cache directory so only the first run on a machine resolves them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tokenops.settings import KafkaSettings, StackSettings
from tokenops.stack.kafka import KafkaBroker
from tokenops.stack.process import free_port
from tokenops.topics import TopicSpec, ensure_topics

if TYPE_CHECKING:
    from tests.api_server import ApiServer


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("stack"),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap_mb=768,
    )
    broker = KafkaBroker(settings)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: KafkaBroker) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers)


@pytest.fixture
def new_topic(kafka_settings: KafkaSettings) -> Callable[..., str]:
    """Create a topic with a unique name; `new_topic(partitions=4, config={...})`."""

    def create(
        prefix: str = "test", partitions: int = 4, config: dict[str, str] | None = None
    ) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka_settings, [TopicSpec(name, partitions, 1, config or {})])
        return name

    return create


@pytest.fixture
def chdb_dsn(tmp_path: Path) -> str:
    """A fresh embedded ClickHouse store; it stays in pytest's tmp dir after a failure."""
    return f"chdb://{tmp_path / 'clickhouse'}"


@pytest.fixture
def api_server(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> Iterator[ApiServer]:
    """`tokenops api serve` on a fresh topic, keys for tenants acme and globex and admin."""
    from tests.api_server import start_api  # imported here: it pulls in the API's stack

    server = start_api(kafka_settings, new_topic("api"), tmp_path, ["acme", "globex"])
    yield server
    server.process.stop()
