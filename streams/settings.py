"""`WorkerSettings`: how the stream worker windows, deduplicates, batches and reports."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from tokenops.settings import WatermarkSettings, _default_state_dir


def _default_worker_state_dir() -> Path:
    return _default_state_dir() / "worker"


class WorkerSettings(WatermarkSettings):
    """The stream worker (`tokenops worker`), read from `TOKENOPS_WORKER_*`.

    Windows are tumbling in event time: `window_s` long, closed when the partition's
    watermark (highest event time seen minus `allowed_lateness_s`) passes their end. A
    partition without records for `idle_timeout_s` of wall-clock time advances its
    watermark to `now - allowed_lateness_s`. Duplicates (same `source` + `id`) are
    recognised, and late events corrected, for `dedup_horizon_s` of event time. The
    watermark rules (`allowed_lateness_s`, `idle_timeout_s`) come from `WatermarkSettings`,
    which the ClickHouse sink reads too.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_WORKER_")

    app_id: str = Field(default="tokenops-worker", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    window_s: int = Field(default=60, ge=1, le=86_400)
    dedup_horizon_s: int = Field(default=86_400, ge=60)
    state_dir: Path = Field(default_factory=_default_worker_state_dir)
    # A batch ends at whichever comes first: records, bytes of record values, or time.
    # Each batch waits for two acknowledged produce round trips, so single-event records
    # want many per batch; the byte cap keeps SDK batch records (100 events each) near
    # 500 records, where they run best (docs/benchmarks.md, Foreign producer).
    batch_max_records: int = Field(default=2000, ge=1, le=100_000)
    batch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    batch_within_s: float = Field(default=0.2, gt=0)
    changelog_topic: str | None = Field(
        default=None, description="Default: '<app_id>.state-changelog'."
    )
    changelog_retention_s: int = Field(
        default=7 * 86_400, ge=3600, description="Must cover dedup_horizon_s and open windows."
    )
    session_timeout_s: float = Field(default=30.0, ge=6)
    # Static group membership (Kafka's group.instance.id): a worker restarted under the
    # same id takes its partitions back at once instead of waiting out the session of
    # its dead predecessor. None: the default id (`static_member_id`); "": off.
    group_instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{0,249}$",
        description="Default: '<app_id>-<hostname>-<sha256(state_dir)[:8]>'; '' disables.",
    )
    heartbeat_interval_s: float = Field(default=3.0, gt=0)
    http_port: int = Field(default=6066, ge=0, le=65_535, description="0 = no HTTP server.")
    # /metrics and /healthz (tokenops/listen.py): loopback unless set, e.g. 0.0.0.0 in a pod.
    http_host: str = "127.0.0.1"
    http_allowed_hosts: str = Field(
        default="", description="Host names accepted besides localhost and IPs; * = any."
    )
    # Signed records (docs/security.md): off, verify-if-present (a bad signature is
    # dead-lettered, none is fine), enforce (unsigned records are dead-lettered too).
    signature_mode: Literal["off", "verify-if-present", "enforce"] = "off"
    signing_keyring_file: Path | None = Field(
        default=None,
        description="YAML/JSON: key id -> {secret, sources, tenants}; mode 600 (keyring.py).",
    )
    signing_keys: SecretStr | None = Field(
        default=None, description="The same mapping as JSON; joins the keyring file's keys."
    )

    @model_validator(mode="after")
    def _horizon_covers_lateness(self) -> WorkerSettings:
        if self.dedup_horizon_s < self.window_s + self.allowed_lateness_s:
            raise ValueError("dedup_horizon_s must be at least window_s + allowed_lateness_s")
        if self.changelog_retention_s < self.dedup_horizon_s:
            raise ValueError("changelog_retention_s must be at least dedup_horizon_s")
        keyring = self.signing_keyring_file is not None or self.signing_keys is not None
        if self.signature_mode != "off" and not keyring:
            raise ValueError("signature_mode needs signing_keyring_file or signing_keys")
        return self

    @property
    def changelog(self) -> str:
        return self.changelog_topic or f"{self.app_id}.state-changelog"

    @property
    def static_member_id(self) -> str | None:
        """The group.instance.id the worker joins with, or None for a dynamic member.

        The default is unique per host and state directory, and stable across restarts
        of the same worker: two workers never share a state directory on one host."""
        if self.group_instance_id is not None:
            return self.group_instance_id or None
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:8]
        host = "".join(
            c if (c.isascii() and c.isalnum()) or c in "._-" else "-" for c in socket.gethostname()
        )
        return f"{self.app_id}-{host}-{digest}"[:249]

    @property
    def window_ms(self) -> int:
        return self.window_s * 1000

    @property
    def lateness_ms(self) -> int:
        return int(self.allowed_lateness_s * 1000)

    @property
    def horizon_ms(self) -> int:
        return self.dedup_horizon_s * 1000
