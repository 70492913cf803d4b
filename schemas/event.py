"""The usage event: one record per model call, emitted by an inference node.

Fields follow OpenTelemetry's GenAI conventions (`gen_ai.request.model`,
`gen_ai.usage.input_tokens`, ...) and CloudEvents 1.0 (`id`, `source`, `time`); the wire
format lives in `wire.py`. Every rule is a field rule, so an invalid event is rejected
with the name of the one field that breaks it. This model is the public API and the
source of the JSON Schema, and the patterns, limits and time rules below are the ones
every reader uses; no hot path builds the model: `rules.py` applies the same rules
without pydantic, per event (naming the field) and per column. Hypothesis tests hold
the decoder to this model on valid and broken events.
"""

from __future__ import annotations

import re
import time as _time
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from tokenops.schemas.errors import InvalidEventError

SCHEMA_VERSION: Literal[1] = 1
# Identifiers are Kafka keys, ClickHouse values and Prometheus label values, and they are
# joined with '|' into aggregate keys: a closed ASCII charset, no '|', no spaces or quotes.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$"
# `source` is a URI-reference (`//node/us-east-1/gpu-17`, `urn:node:17`), same safety.
SOURCE_PATTERN = r"^[A-Za-z0-9._~:/?#@!$&+=%-]{1,256}$"
ATTRIBUTE_KEY_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"
ATTRIBUTE_VALUE_PATTERN = r"^[^\x00-\x1f\x7f]{0,256}$"
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
MAX_TOKENS = 100_000_000  # per count per event; a sane bound far above any context window
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTES_BYTES = 4096  # attributes as compact JSON; bounds the whole event below
MAX_EVENT_BYTES = 8192  # one encoded event; every field is bounded so a valid event fits
MIN_EVENT_TIME = datetime(2020, 1, 1, tzinfo=UTC)
DEFAULT_MAX_FUTURE_SKEW_S = 300.0  # override per call: context={"max_future_skew_s": ...}
# The field an event time beyond now + the allowed skew is reported under (and its
# dead letter's `tokenops.dlq.field`): the worker's "now" is its event clock
# (streams/routing.py), so this is how a producer-set clock shows up.
FUTURE = "future"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
_RFC3339 = re.compile(RFC3339_PATTERN[1:-1])

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
AttributeKey = Annotated[str, Field(pattern=ATTRIBUTE_KEY_PATTERN)]
AttributeValue = Annotated[str, Field(pattern=ATTRIBUTE_VALUE_PATTERN)]


def parse_time(value: object) -> datetime:
    """An RFC 3339 string or an aware datetime, as UTC truncated to the millisecond."""
    if isinstance(value, str):
        if _RFC3339.fullmatch(value) is None:
            raise ValueError("must be an RFC 3339 timestamp like 2026-01-31T12:00:00.000Z")
        parsed = datetime.fromisoformat(value)  # raises ValueError on impossible dates
    elif isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must be timezone-aware (UTC)")
        parsed = value
    else:
        raise ValueError("must be an RFC 3339 string")
    if parsed.tzinfo is not UTC:
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC datetime
            raise ValueError("is out of the range of UTC datetimes") from None
    if parsed.microsecond % 1000:
        parsed = parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)
    return parsed


def time_bounds_ms(context: Any) -> tuple[int, int]:
    """(earliest, latest) accepted event time in epoch ms, from a validation context."""
    context = context or {}
    now_ms = context.get("now_ms")
    if now_ms is None:
        now_ms = int(_time.time() * 1000)
    skew_s = context.get("max_future_skew_s", DEFAULT_MAX_FUTURE_SKEW_S)
    return to_epoch_ms(MIN_EVENT_TIME), now_ms + int(skew_s * 1000)


def to_epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // ONE_MS


def time_field(ms: int, latest_ms: int) -> str:
    """The field a rejected event time is reported under: `future` or `time`."""
    return FUTURE if ms > latest_ms else "time"


def time_error(ms: int, earliest_ms: int, latest_ms: int) -> str | None:
    if ms < earliest_ms:
        return "is before 2020-01-01T00:00:00Z"
    if ms > latest_ms:
        return "is further in the future than the allowed clock skew"
    return None


def invalid_event_error(exc: ValidationError) -> InvalidEventError:
    """The first error of a pydantic validation, as the contract's typed error."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "event"
    if first["type"] == FUTURE:
        field = FUTURE
    reason = first["msg"].removeprefix("Value error, ")
    return InvalidEventError(field, first.get("input"), reason)


class UsageEvent(BaseModel):
    """Tokens used by one model call. Frozen; build with `UsageEvent(...)` (validated).

    Duplicates share `source` + `id`: consumers count one event per pair. `time_ms` is
    `time` as UTC epoch milliseconds, the clock of every window downstream.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    def __init__(self, **fields: Any) -> None:
        """Validate `fields`; a broken rule raises `InvalidEventError` naming the field."""
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise invalid_event_error(exc) from exc

    # Tells pydantic this __init__ adds no logic, so `model_validate` (which raises
    # ValidationError and honours a validation context) does not route through it.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    schema_version: Literal[1] = SCHEMA_VERSION
    # identity (CloudEvents)
    id: Identifier = Field(description="Unique per source; a retry keeps the same id.")
    source: str = Field(pattern=SOURCE_PATTERN, description="The emitting node, URI-reference.")
    time: datetime = Field(description="Event time, UTC, millisecond precision.")
    # who
    tenant_id: Identifier = Field(description="The billed tenant; the Kafka key.")
    project_id: Identifier | None = None
    agent_id: Identifier | None = None
    user_id: Identifier | None = None
    api_key_id: Identifier | None = Field(None, description="A hash of the key, never the key.")
    region: Identifier | None = None
    node_id: Identifier | None = None
    # what (gen_ai.request.model, gen_ai.provider.name, gen_ai.operation.name)
    model: Identifier
    provider: Identifier
    operation: Identifier = "chat"
    # tokens (gen_ai.usage.*)
    input_tokens: TokenCount = Field(description="All input tokens, cached ones included.")
    output_tokens: TokenCount = Field(description="All output tokens, reasoning included.")
    cache_read_input_tokens: TokenCount = 0
    cache_creation_input_tokens: TokenCount = 0
    reasoning_output_tokens: TokenCount = 0
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _version(cls, value: object) -> int:
        if value.__class__ is not int or value != SCHEMA_VERSION:
            raise ValueError(f"unknown schema_version; this reader knows {SCHEMA_VERSION}")
        return SCHEMA_VERSION

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: object, info: ValidationInfo) -> datetime:
        parsed = parse_time(value)
        ms, (earliest, latest) = to_epoch_ms(parsed), time_bounds_ms(info.context)
        problem = time_error(ms, earliest, latest)
        if problem is not None:
            if time_field(ms, latest) == FUTURE:
                raise PydanticCustomError(FUTURE, problem)
            raise ValueError(problem)
        return parsed

    @field_validator("cache_creation_input_tokens")
    @classmethod
    def _cached_within_input(cls, value: int, info: ValidationInfo) -> int:
        read, total = info.data.get("cache_read_input_tokens"), info.data.get("input_tokens")
        if read is not None and total is not None and read + value > total:
            raise ValueError("cache_read + cache_creation input tokens exceed input_tokens")
        return value

    @field_validator("reasoning_output_tokens")
    @classmethod
    def _reasoning_within_output(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("output_tokens")
        if total is not None and value > total:
            raise ValueError("reasoning_output_tokens exceed output_tokens")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes_size(cls, value: dict[str, str]) -> dict[str, str]:
        if value and len(orjson.dumps(value)) > MAX_ATTRIBUTES_BYTES:
            raise ValueError(f"attributes exceed {MAX_ATTRIBUTES_BYTES} bytes as JSON")
        return value

    @cached_property
    def time_ms(self) -> int:
        """`time` as UTC epoch milliseconds."""
        return to_epoch_ms(self.time)

    def tokens(self) -> dict[str, int]:
        """The five token counts by their names in `TOKEN_TYPES`."""
        d = self.__dict__
        return {
            "input_tokens": d["input_tokens"],
            "output_tokens": d["output_tokens"],
            "cache_read_input_tokens": d["cache_read_input_tokens"],
            "cache_creation_input_tokens": d["cache_creation_input_tokens"],
            "reasoning_output_tokens": d["reasoning_output_tokens"],
        }
