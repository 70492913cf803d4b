"""The settings `tokenops config show` lists, what each one does, and the check that
warns about `TOKENOPS_*` variables no setting reads (a typo is otherwise ignored)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping

from pydantic_settings import BaseSettings

from tokenops.api.settings import ApiSettings
from tokenops.config_help import DESCRIPTIONS
from tokenops.producers.settings import ProducerSettings
from tokenops.replication.settings import ReplicationSettings
from tokenops.settings import KafkaSettings, LogSettings, StackSettings, TopicSettings
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.prometheus.settings import PrometheusSinkSettings
from tokenops.streams.settings import WorkerSettings

# Read by the code but not by a settings model: `tokenops/paths.py`, bench/, deploy/local.
OTHER_VARIABLES = frozenset({"TOKENOPS_DEPLOY_DIR", "TOKENOPS_TOOLS_CACHE"})
OTHER_PREFIXES = ("TOKENOPS_BENCH_",)

# Hooks for tests (docs/reliability.md); real settings, but nothing a user sets.
TEST_HOOKS = frozenset({"TOKENOPS_CLICKHOUSE_FAULT_FILE"})


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
        LogSettings,
        ApiSettings,
        ReplicationSettings,
    ]


def env_names(section: type[BaseSettings]) -> Iterator[tuple[str, str]]:
    """(field, environment variable) of every setting in `section`."""
    prefix = str(section.model_config.get("env_prefix", ""))
    for field in section.model_fields:
        yield field, f"{prefix}{field}".upper()


def description(section: type[BaseSettings], field: str) -> str:
    """One line on what the setting does: the table in `config_help`, else the field's own."""
    name = f"{section.model_config.get('env_prefix', '')}{field}".upper()
    return DESCRIPTIONS.get(name) or section.model_fields[field].description or ""


def known_variables() -> set[str]:
    """Every variable a setting reads, old names of renamed ones included (they warn)."""
    known = {name for section in settings_sections() for _, name in env_names(section)}
    return known | {old for section in settings_sections() for old in _renamed(section)}


def _renamed(section: type[BaseSettings]) -> dict[str, str]:
    renamed: dict[str, str] = getattr(section, "renamed", {})
    return renamed


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each `TOKENOPS_*` variable in `environ` that nothing reads, with the closest
    valid name (or None): `TOKENOPS_KAFKA_BOOTSTRAP_SERVER` -> `..._SERVERS`."""
    known = known_variables() | OTHER_VARIABLES
    unknown = []
    for name in sorted(environ):
        if not name.startswith("TOKENOPS_") or name in known or name.startswith(OTHER_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        unknown.append((name, close[0] if close else None))
    return unknown
