"""`ClickHouseSettings`: where the billing store lives and how the sink writes to it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tokenops.settings import TokenopsSettings
from tokenops.sinks.clickhouse.time_zones import quota_zones

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ClickHouseSettings(TokenopsSettings):
    """The billing store: the embedded chDB store by default, or a real server by URL.

    `url` is `http(s)://host:port` for a ClickHouse server or `chdb:///abs/path` for an
    embedded store; unset means the embedded store at `<state_dir>/clickhouse`.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_CLICKHOUSE_")

    url: str | None = None
    database: str = "tokenops"
    schema_variant: Literal["single", "cluster"] = Field(
        default="single",
        description="cluster: the migrations rewritten as Replicated + Distributed DDL.",
    )
    username: str = "default"
    password: SecretStr | None = None
    verify_tls: bool = True
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    batch_max_rows: int = Field(default=50_000, ge=1)
    batch_max_ms: int = Field(default=1_000, ge=1)
    raw_events: bool = True
    decode_processes: int = Field(
        default=0, ge=0, le=64, description="Processes decoding raw events; 0 decodes inline."
    )
    raw_events_retention_days: int = Field(default=400, ge=0, description="0 keeps forever.")
    consumer_group: str = "tokenops-clickhouse-sink"
    retry_initial_ms: int = Field(default=200, ge=1)
    retry_max_ms: int = Field(default=10_000, ge=1)
    # /metrics, /healthz and billing queries (tokenops/api/sink_app.py): loopback unless
    # set; the queries take the per-run token or an admin API key (docs/security.md).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=9466, ge=0, le=65535, description="0 turns it off.")
    http_allowed_hosts: str = Field(
        default="", description="Host names accepted besides localhost and IPs; * = any."
    )
    prices_file: Path | None = None
    time_zones: dict[str, str] = Field(
        default_factory=dict,
        description='Billing time zone per tenant, JSON: {"acme": "Asia/Shanghai"}.',
    )
    default_time_zone: str = Field(default="UTC", description="Tenants not in time_zones.")
    quota_file: Path | None = Field(
        default=None,
        description="Quota YAML: a tenant's billing time zone is its quotas' `timezone`.",
    )
    _quota_zones: dict[str, str] = PrivateAttr(default_factory=dict)
    # Tests only (docs/reliability.md): while this file exists, every write fails as a
    # storage outage would, so a test can take a real sink process's store away.
    fault_file: Path | None = None

    @field_validator("database")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        # The name is part of DDL (CREATE DATABASE cannot take a bound parameter).
        if not _IDENTIFIER.match(value):
            raise ValueError("must be letters, digits and '_' and start with a letter or '_'")
        return value

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "chdb://")):
            raise ValueError("must start with http://, https:// or chdb:///")
        return value

    @field_validator("time_zones")
    @classmethod
    def _known_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            _check_zone(name)
        return value

    @field_validator("default_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _check_zone(value)
        return value

    @model_validator(mode="after")
    def _zones_from_quotas(self) -> ClickHouseSettings:
        if self.quota_file is not None:
            self._quota_zones = quota_zones(self.quota_file)
        return self

    def zone_of(self, tenant: str) -> str:
        """The billing time zone of `tenant`: `time_zones`, else its quotas' zone (from
        `quota_file`), else `default_time_zone`. Local days and months follow it."""
        return self.time_zones.get(tenant) or self._quota_zones.get(tenant, self.default_time_zone)

    def insert_settings(self) -> dict[str, object]:
        """Per-insert settings: on a cluster, durable means forwarded and replicated."""
        if self.schema_variant == "cluster":
            return {"distributed_foreground_insert": 1, "insert_quorum": "auto"}
        return {}

    def embedded_path(self, state_dir: Path) -> Path | None:
        """The embedded store's folder, or None when `url` names a server."""
        if self.url is None:
            return (state_dir / "clickhouse").resolve()
        if self.url.startswith("chdb://"):
            return Path(self.url.removeprefix("chdb://")).resolve()
        return None


def _check_zone(name: str) -> None:
    if name != "UTC":
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {name!r}, e.g. Asia/Shanghai") from None
