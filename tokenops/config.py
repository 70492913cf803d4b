"""The settings models `tokenops config show` lists, one per component."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from tokenops.api.settings import ApiSettings
from tokenops.producers.settings import ProducerSettings
from tokenops.settings import KafkaSettings, StackSettings, TopicSettings
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.prometheus_settings import PrometheusSinkSettings
from tokenops.streams.settings import WorkerSettings


def settings_sections() -> list[type[BaseSettings]]:
    # Components add their model here as they land, so `config show` stays complete.
    return [
        KafkaSettings,
        TopicSettings,
        StackSettings,
        ClickHouseSettings,
        PrometheusSinkSettings,
        WorkerSettings,
        ProducerSettings,
        ApiSettings,
    ]
