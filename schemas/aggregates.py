"""The worker's output: one record per (tenant, model, region, window), on a compacted topic.

A window's first record has `revision` 1; a late event that lands in a closed window
produces the same key again with `revision + 1` and the new absolute totals. Totals are
absolute, never deltas, so a replayed or re-emitted record cannot be counted twice:
readers keep the record with the highest `revision` (ties: the highest `event_count`).

Region is part of a window's identity: two regions' events of one tenant and model in one
window are two windows, two records. An event without a region counts in region ''.
The region travels as an optional suffix of the key and an optional field of the value,
both left out when the region is '' (schema version 1 stays: the field is additive):

- the key `tenant|model|window_start_ms|window_size_s[|region]` keeps its fields in
  place, so a key stays readable and splits the same way with or without the suffix;
- a region-less window's key and value are byte for byte what the version before region
  wrote. A worker upgraded over an existing compacted aggregates topic (or changelog)
  therefore keeps writing the same keys, compaction keeps replacing those windows'
  older revisions, and readers of the version before keep reading every region-less
  record, so sinks and worker can be upgraded in either order where no event has a
  region. Records of a region need readers of this version (upgrade the sinks first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

TOKEN_TYPES = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)

AGGREGATE_SCHEMA_VERSION = 1


def window_key(
    tenant_id: str, model: str, window_start_ms: int, window_size_s: int, region: str = ""
) -> str:
    """The record key `tenant|model|window_start_ms|window_size_s`, with `|region` after
    it when the region is not ''; identifiers never hold '|'."""
    key = f"{tenant_id}|{model}|{window_start_ms}|{window_size_s}"
    return f"{key}|{region}" if region else key


class WindowTotals(BaseModel):
    """Absolute token totals of one tenant, model and region in one tumbling event-time
    window. A record without `region` (the version before, or no region) is region ''."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    tenant_id: str
    model: str
    region: str = Field("", description="The events' region; '' for events without one.")
    window_start_ms: int = Field(ge=0, description="Window start, UTC epoch milliseconds.")
    window_size_s: int = Field(gt=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_read_input_tokens: int = Field(ge=0)
    cache_creation_input_tokens: int = Field(ge=0)
    reasoning_output_tokens: int = Field(ge=0)
    event_count: int = Field(ge=0)
    first_event_time_ms: int = Field(ge=0)
    last_event_time_ms: int = Field(ge=0)
    revision: int = Field(ge=1, description="1 when the window closes, +1 per correction.")
    emitted_at_ms: int = Field(ge=0, description="Wall-clock time the worker emitted this.")

    @property
    def key(self) -> str:
        return window_key(
            self.tenant_id, self.model, self.window_start_ms, self.window_size_s, self.region
        )

    @property
    def window_end_ms(self) -> int:
        return self.window_start_ms + self.window_size_s * 1000

    def tokens(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TOKEN_TYPES}

    def to_bytes(self) -> bytes:
        """The record's JSON; `region` is left out when it is '' (see the module doc)."""
        return orjson.dumps(self.model_dump(exclude=None if self.region else _NO_REGION))

    @classmethod
    def from_bytes(cls, value: bytes) -> WindowTotals:
        return cls.model_validate(orjson.loads(value))


_NO_REGION = {"region"}

# The fields after the identity, in model order: `window_totals_record` takes them as one
# sequence (the worker's window totals hold them in this order).
COUNT_FIELDS = (
    *TOKEN_TYPES,
    "event_count",
    "first_event_time_ms",
    "last_event_time_ms",
    "revision",
)


def window_totals_record(
    tenant_id: str,
    model: str,
    region: str,
    window_start_ms: int,
    window_size_s: int,
    counts: Sequence[int],
    emitted_at_ms: int,
) -> tuple[bytes, bytes]:
    """(key, value) of a `WindowTotals` record, byte for byte what `WindowTotals(...)`
    gives with `.key.encode()` and `.to_bytes()`; `counts` holds `COUNT_FIELDS`' values.

    The worker emits one record per window that closes, so with many tenants it builds
    many: the model's validation and `model_dump()` were most of that cost. The bytes
    come from a dict in the model's field order; values the model would refuse (a
    negative count, revision 0) go through the model, which raises as before.
    """
    (inp, out, cache_read, cache_creation, reasoning, events, first, last, revision) = counts
    if (
        min(inp, out, cache_read, cache_creation, reasoning, events, first, last) < 0
        or revision < 1
        or window_start_ms < 0
        or window_size_s <= 0
        or emitted_at_ms < 0
    ):
        model_ = WindowTotals(
            tenant_id=tenant_id,
            model=model,
            region=region,
            window_start_ms=window_start_ms,
            window_size_s=window_size_s,
            input_tokens=inp,
            output_tokens=out,
            cache_read_input_tokens=cache_read,
            cache_creation_input_tokens=cache_creation,
            reasoning_output_tokens=reasoning,
            event_count=events,
            first_event_time_ms=first,
            last_event_time_ms=last,
            revision=revision,
            emitted_at_ms=emitted_at_ms,
        )
        return model_.key.encode(), model_.to_bytes()
    identity = {"schema_version": AGGREGATE_SCHEMA_VERSION, "tenant_id": tenant_id, "model": model}
    if region:
        identity["region"] = region
    value = orjson.dumps(
        {
            **identity,
            "window_start_ms": window_start_ms,
            "window_size_s": window_size_s,
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_creation,
            "reasoning_output_tokens": reasoning,
            "event_count": events,
            "first_event_time_ms": first,
            "last_event_time_ms": last,
            "revision": revision,
            "emitted_at_ms": emitted_at_ms,
        }
    )
    return window_key(tenant_id, model, window_start_ms, window_size_s, region).encode(), value
