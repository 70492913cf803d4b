"""`PrometheusSinkSettings`: where the exporter listens and how it bounds its labels."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tokenops.settings import TokenopsSettings


class PrometheusSinkSettings(TokenopsSettings):
    """The Prometheus sink (`tokenops sink prometheus`), read from `TOKENOPS_PROMETHEUS_SINK_*`.

    At most `max_tenants` tenant label values (and `max_models` model values) are
    exported; further tenants are summed into `tenant="other"` and counted in
    `tokenops_prometheus_sink_collapsed_tenants`. Tenants with quotas get labels first.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_PROMETHEUS_SINK_")

    # /metrics shows every labelled tenant's usage: loopback unless set (tokenops/listen.py).
    host: str = "127.0.0.1"
    allowed_hosts: str = Field(
        default="", description="Host names accepted besides localhost and IPs; * = any."
    )
    port: int = Field(default=9464, ge=0, le=65_535, description="0 = any free port.")
    max_tenants: int = Field(default=500, ge=1, le=100_000)
    max_models: int = Field(default=100, ge=1, le=10_000)
    worker_group: str = Field(
        default="tokenops-worker", description="Consumer group whose lag is exported."
    )
    lag_interval_s: float = Field(default=5.0, gt=0)
    correction_horizon_s: int = Field(
        default=2 * 86_400, ge=3600, description="Windows kept to apply later revisions."
    )
    usage_retention_s: int = Field(
        default=62 * 86_400, ge=86_400, description="Usage kept for quota periods (months)."
    )
