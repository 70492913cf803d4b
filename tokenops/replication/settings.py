"""`TOKENOPS_REPLICATION_*`: which regional clusters MirrorMaker replicates into this one."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tokenops.settings import TokenopsSettings


class ReplicationSettings(TokenopsSettings):
    """The replication-lag exporter (`tokenops replication lag`). The central cluster is
    `TOKENOPS_KAFKA_*`; each source region's cluster is named here."""

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_REPLICATION_")

    sources: dict[str, str] = Field(
        default_factory=dict,
        description='Source region -> its bootstrap servers, JSON: {"west": "kafka-west:9092"}.',
    )
    target_region: str = Field(default="central", description="This cluster's region alias.")
    http_host: str = Field(default="", description="Address of /metrics; empty: 127.0.0.1.")
    http_port: int = Field(default=9467, ge=0, le=65535, description="Port of /metrics.")
    poll_interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between two measurements of every source."
    )
