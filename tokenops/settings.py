"""Settings shared by every component: the Kafka connection, topic names, the local stack.

Each component has one frozen pydantic-settings model, read from `TOKENOPS_*` environment
variables by entry points only (`load`). Components take the model as a parameter, so
tests build them directly without touching the environment.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from tokenops.errors import ConfigError
from tokenops.secrets import mask_secrets

S = TypeVar("S", bound=BaseSettings)

LIBRDKAFKA_LOGGER = logging.getLogger("tokenops.librdkafka")
logger = logging.getLogger(__name__)


def _default_state_dir() -> Path:
    """The local stack's state directory, `TOKENOPS_STACK_STATE_DIR`. Worker state and the
    producer spool default to folders inside it, so this one variable moves every piece
    of local state (two stacks never share a worker's state or a spool)."""
    configured = os.environ.get("TOKENOPS_STACK_STATE_DIR")
    return Path(configured) if configured else Path.home() / ".local" / "state" / "tokenops"


def _default_bootstrap_servers() -> str:
    """The local stack's broker: clients follow `TOKENOPS_STACK_KAFKA_PORT` unless
    `TOKENOPS_KAFKA_BOOTSTRAP_SERVERS` is set."""
    return f"127.0.0.1:{os.environ.get('TOKENOPS_STACK_KAFKA_PORT') or 9092}"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tokenops"


class TokenopsSettings(BaseSettings):
    """The base of every tokenops settings model: frozen, input values left out of
    validation errors (a value may be a secret, and a check across settings sees them
    all), and secrets masked in `repr`, nested ones in maps included (`mask_secrets`)."""

    model_config = SettingsConfigDict(frozen=True, hide_input_in_errors=True)

    # Environment variables renamed since a release: old name -> field. The old name is
    # still read, with a warning, while the new one is unset (`RenamedVariables`).
    renamed: ClassVar[dict[str, str]] = {}

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_secrets(value, name or "")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: a value passed in, then the current names, then old ones.
        renamed = RenamedVariables(settings_cls)
        return init_settings, env_settings, dotenv_settings, file_secret_settings, renamed


class RenamedVariables(PydanticBaseSettingsSource):
    """The values of a settings model's old variable names (`TokenopsSettings.renamed`),
    each logged as deprecated with the name to use instead."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the old names itself

    def __call__(self) -> dict[str, Any]:
        renamed: dict[str, str] = getattr(self.settings_cls, "renamed", {})
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        values: dict[str, Any] = {}
        for old, field in renamed.items():
            if old in os.environ:
                new = f"{prefix}{field}".upper()
                logger.warning("%s is deprecated and will be removed; set %s instead", old, new)
                values[field] = os.environ[old]
        return values


class KafkaSettings(TokenopsSettings):
    """How every tokenops client reaches Kafka.

    `client_config` passes further librdkafka properties through under their own names
    (for example `{"socket.keepalive.enable": "true"}`); tokenops invents no aliases.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_KAFKA_")

    bootstrap_servers: str = Field(default_factory=_default_bootstrap_servers)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    client_config: dict[str, str] = Field(default_factory=dict)

    def librdkafka(self) -> dict[str, Any]:
        """The confluent-kafka (librdkafka) configuration for this connection."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            # librdkafka's own lines go through Python logging, in tokenops' format,
            # instead of raw `%3|...|FAIL|rdkafka#...` lines on stderr.
            "logger": LIBRDKAFKA_LOGGER,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": _reveal(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": _reveal(self.ssl_key_password),
        }
        config.update({k: str(v) for k, v in optional.items() if v is not None})
        config.update(self.client_config)
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for Python clients (aiokafka, so the Faust worker), built from
        the same `ssl_*` settings as `librdkafka()`; None unless the protocol uses TLS.

        Like librdkafka, it verifies the broker's certificate and host name against
        `ssl_ca_location` (the system's CAs when unset) and presents the client
        certificate when `ssl_certificate_location` is set (mutual TLS).
        `client_config["ssl.endpoint.identification.algorithm"] = "none"` turns the host
        name check off in both; other `client_config` entries are librdkafka-only.
        """
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        problems: list[str] = []
        context = ssl.create_default_context()
        try:
            if self.ssl_ca_location is not None:
                context.load_verify_locations(cafile=str(self.ssl_ca_location))
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"TOKENOPS_KAFKA_SSL_CA_LOCATION={self.ssl_ca_location}: {exc}")
        if self.ssl_certificate_location is not None:
            try:
                context.load_cert_chain(
                    str(self.ssl_certificate_location),
                    str(self.ssl_key_location) if self.ssl_key_location else None,
                    password=_reveal(self.ssl_key_password),
                )
            except (OSError, ssl.SSLError) as exc:  # the message never holds the password
                problems.append(
                    f"TOKENOPS_KAFKA_SSL_CERTIFICATE_LOCATION={self.ssl_certificate_location}"
                    f" / _SSL_KEY_LOCATION={self.ssl_key_location}: {exc}"
                )
        if problems:
            raise ConfigError(problems)
        hostname = self.client_config.get("ssl.endpoint.identification.algorithm", "https")
        context.check_hostname = hostname.lower() != "none"
        return context


class TopicSettings(TokenopsSettings):
    """Topic names and their partition count; the `.v1` suffix is the wire version."""

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_TOPIC_")

    usage: str = "tokenops.usage.v1"
    aggregates: str = "tokenops.aggregates.v1"
    dead_letter: str = "tokenops.dead-letter.v1"
    quota_alerts: str = "tokenops.quota-alerts.v1"
    quotas: str = "tokenops.quotas.v1"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)


class StackSettings(TokenopsSettings):
    """The local stack that `tokenops stack up` starts: where it keeps data, its ports."""

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_STACK_")

    state_dir: Path = Field(default_factory=_default_state_dir)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9097, ge=1, le=65535)
    kafka_heap_mb: int = Field(default=1024, ge=256)
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    alertmanager_port: int = Field(default=9093, ge=1, le=65535)
    start_timeout_s: float = Field(default=90.0, gt=0)

    def env_name(self, field: str) -> str:
        """The environment variable that sets `field`, for error messages."""
        return f"TOKENOPS_STACK_{field.upper()}"


class WatermarkSettings(TokenopsSettings):
    """How a partition's watermark moves (`TOKENOPS_WORKER_*`): the highest event time seen
    minus `allowed_lateness_s`, or `now - allowed_lateness_s` after `idle_timeout_s` of
    wall-clock time without records. The worker closes windows by it; the ClickHouse sink
    judges partitions idle and months closed by the same rules, so both read them here."""

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_WORKER_")

    allowed_lateness_s: float = Field(default=30.0, ge=0)
    idle_timeout_s: float = Field(default=60.0, gt=0)


class LogSettings(TokenopsSettings):
    """How every tokenops process logs (`tokenops/logs.py`): level, line format, and how
    often long-running services (worker, sinks) log a progress line."""

    model_config = SettingsConfigDict(env_prefix="TOKENOPS_LOG_")

    renamed: ClassVar[dict[str, str]] = {"TOKENOPS_WORKER_LOG_EVERY_S": "progress_every_s"}

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"
    progress_every_s: float = Field(default=30.0, gt=0)

    @field_validator("level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def load(cls: type[S], **overrides: Any) -> S:
    """Read `cls` from the environment, turning validation errors into one `ConfigError`.

    Every problem is reported at once, one line each, naming the environment variable
    and the rule; never the value, which may be (or, for a check across settings, hold)
    a secret.
    """
    try:
        return cls(**overrides)
    except SettingsError as exc:  # a map or list setting that is not JSON
        raise ConfigError([_not_json(cls, exc)]) from exc
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = []
        for error in exc.errors(include_input=False, include_context=False):
            field = ".".join(str(part) for part in error["loc"])
            name = f"{prefix}{field}".upper() if field else prefix.rstrip("_")
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError(problems) from exc


def _not_json(cls: type[BaseSettings], exc: SettingsError) -> str:
    """`TOKENOPS_KAFKA_CLIENT_CONFIG: not valid JSON ...` from pydantic-settings' message,
    which names the field and its source but not the variable a person set."""
    found = re.search(r'field "([^"]+)"', str(exc))
    if found is None:
        return str(exc)
    prefix = str(cls.model_config.get("env_prefix", ""))
    return (
        f"{prefix}{found.group(1)}".upper()
        + ': not valid JSON; write an object such as {"socket.keepalive.enable": "true"}'
    )
