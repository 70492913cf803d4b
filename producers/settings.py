"""ProducerSettings: how the SDK batches, waits, and where it spools (TOKENOPS_PRODUCER_*)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from tokenops.schemas.event import DEFAULT_MAX_FUTURE_SKEW_S
from tokenops.schemas.signing import KEY_ID_PATTERN
from tokenops.schemas.wire import MAX_BATCH_EVENTS
from tokenops.settings import TokenopsSettings, _default_state_dir


def _default_spool_dir() -> Path:
    return _default_state_dir() / "producer-spool"  # moves with TOKENOPS_STACK_STATE_DIR


class ProducerSettings(TokenopsSettings):
    """Settings of one `UsageProducer`.

    Up to `batch_max_events` events of one tenant share one Kafka record, a v2 columnar
    batch (`schemas/wire.py`); a tenant's lone event, or every event when
    `batch_max_events` is 1, goes as a plain CloudEvent. A partly filled batch waits at
    most `linger_ms`, the SDK's one linger: librdkafka's own `linger.ms` (20 ms here) only
    gathers ready records into requests, and `client_config` changes it under that name.
    Records librdkafka cannot deliver within `delivery_timeout_ms` (the broker is
    unreachable) go to the spool in `spool_dir`, as does whatever is still undelivered
    after `close_timeout_s` at close. `client_config` passes librdkafka producer
    properties through under their own names and wins over the defaults here.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_PRODUCER_")

    renamed: ClassVar[dict[str, str]] = {"TOKENOPS_PRODUCER_BATCH_LINGER_MS": "linger_ms"}

    topic: str = "tokenops.usage.v1"
    batch_max_events: int = Field(default=500, ge=1, le=MAX_BATCH_EVENTS)
    linger_ms: float = Field(default=50.0, ge=0, le=900_000)
    compression_type: Literal["lz4", "zstd", "none"] = "lz4"
    max_outstanding_events: int = Field(default=1_000_000, ge=1)
    backpressure_timeout_s: float = Field(default=10.0, ge=0)
    delivery_timeout_ms: int = Field(default=30_000, ge=1000)
    close_timeout_s: float = Field(default=10.0, ge=0)
    spool_dir: Path = Field(default_factory=_default_spool_dir)
    max_future_skew_s: float = Field(default=DEFAULT_MAX_FUTURE_SKEW_S, gt=0)
    client_config: dict[str, str] = Field(default_factory=dict)
    # Signed records (docs/security.md): the key id names this node's key in the
    # worker's keyring; the secret comes from `signing_key` or the file `signing_key_file`.
    signing_key_id: str | None = Field(default=None, pattern=KEY_ID_PATTERN)
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_signing_secret(self) -> ProducerSettings:
        secrets = (self.signing_key is not None) + (self.signing_key_file is not None)
        if self.signing_key_id is None and secrets:
            raise ValueError("signing_key or signing_key_file needs signing_key_id")
        if self.signing_key_id is not None and secrets != 1:
            raise ValueError("signing_key_id needs exactly one of signing_key, signing_key_file")
        return self

    def librdkafka(self) -> dict[str, Any]:
        """The producer part of the confluent-kafka config (the connection comes apart)."""
        return {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": self.compression_type,
            # Batches are formed above (`linger_ms`); this only gathers ready records.
            "linger.ms": 20,
            # murmur2 like the Java client and aiokafka, so Faust sees keys where it expects
            "partitioner": "murmur2_random",
            "message.timeout.ms": self.delivery_timeout_ms,
            "queue.buffering.max.messages": 100_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "batch.size": 1_000_000,
            **self.client_config,
        }
