"""ApiSettings: where `tokenops api serve` listens and how it answers (TOKENOPS_API_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tokenops.settings import TokenopsSettings, _default_state_dir


def _default_keys_file() -> Path:
    return _default_state_dir() / "api-keys.json"


class ApiSettings(TokenopsSettings):
    """Settings of the API server.

    It binds `host` (loopback unless set) and answers only requests whose Host header
    is an IP address, `localhost` or a name in `allowed_hosts` (comma-separated; 421
    otherwise: DNS rebinding), the rule of every tokenops listener (tokenops/listen.py).
    A 2xx on ingest waits at most `durable_timeout_s` for the broker's acknowledgement
    (or the spool's fsync); after that, and when the producer queue is full, the answer
    is 503 with `Retry-After: retry_after_s`. Bodies above `max_body_bytes` get 413.
    `otlp_tenant_attribute` names the OTLP resource attribute an admin key's spans take
    their tenant from. Usage and invoices carry the billing store's finality.
    `quotas` serves GET /v1/quotas from the quota and aggregates topics; `queries`
    serves usage and invoices from the ClickHouse store.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_API_")

    host: str = Field(default="127.0.0.1", description="Address the API binds.")
    port: int = Field(default=8480, ge=0, le=65535, description="Port of the API.")
    allowed_hosts: str = Field(
        default="", description="Host names accepted besides localhost and IPs; * = any."
    )
    keys_file: Path = Field(
        default_factory=_default_keys_file,
        description="API keys as SHA-256 hashes, mode 0600 (tokenops api new-key).",
    )
    max_body_bytes: int = Field(
        default=4_000_000, ge=1024, description="Larger request bodies get 413."
    )
    durable_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for the broker's ack before a 503."
    )
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After of a 503, seconds.")
    otlp_tenant_attribute: str = Field(
        default="tokenops.tenant_id",
        description="OTLP resource attribute naming an admin key's tenant.",
    )
    reuse_port: bool = Field(
        default=False,
        description="Bind with SO_REUSEPORT, so several API processes can share the port.",
    )
    quotas: bool = Field(default=True, description="Serve /v1/quotas from the quota topics.")
    queries: bool = Field(
        default=True, description="Serve /v1/usage and /v1/invoices from ClickHouse."
    )
