"""The events of one record as columns: what the worker and the sinks consume.

`EventColumns` holds the fields of a record's events (all of ONE tenant, as every usage
record is) as parallel lists, with times as UTC epoch milliseconds. The hot paths of the
stream worker and the ClickHouse sink read columns, never per-event objects: building a
`UsageEvent` costs more than validating it. `events()` gives the `UsageEvent`s, equal
to what `decode_record` returns for the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import repeat
from operator import add, mul
from typing import Any

from tokenops.schemas.event import EPOCH, ONE_MS, SCHEMA_VERSION, UsageEvent
from tokenops.schemas.validate import FIELDS, OPTIONAL_IDS

TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)
_new = object.__new__
_set = object.__setattr__
_ALL_SET = set(FIELDS)
_KEYS = (*FIELDS, "time_ms")


@dataclass(slots=True)
class EventColumns:
    """One record's events, column by column; every list has `len(self)` entries.

    Optional identifiers are None where absent; `attributes` is None when no event has
    any (the common case), else one dict per event.
    """

    tenant_id: str
    id: list[str]
    source: list[str]
    time_ms: list[int]
    model: list[str]
    provider: list[str]
    operation: list[str]
    input_tokens: list[int]
    output_tokens: list[int]
    cache_read_input_tokens: list[int]
    cache_creation_input_tokens: list[int]
    reasoning_output_tokens: list[int]
    project_id: list[str | None]
    agent_id: list[str | None]
    user_id: list[str | None]
    api_key_id: list[str | None]
    region: list[str | None]
    node_id: list[str | None]
    attributes: list[dict[str, str]] | None = None

    def __len__(self) -> int:
        return len(self.id)

    def tokens(self) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
        """The five token columns, in `TOKEN_TYPES` order."""
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
            self.reasoning_output_tokens,
        )

    def dedup_keys(self) -> list[str]:
        """`source NUL id` per event: an event's identity for deduplication."""
        n = len(self.id)
        return list(map(add, map(add, self.source, repeat("\x00", n)), self.id))

    def times(self) -> list[Any]:
        """Event times as UTC datetimes (millisecond precision)."""
        n = len(self.id)
        return list(map(add, repeat(EPOCH, n), map(mul, repeat(ONE_MS, n), self.time_ms)))

    def events(self) -> list[UsageEvent]:
        """The `UsageEvent`s, as pydantic would build them from the validated fields."""
        n = len(self.id)
        attributes = (
            map(dict, repeat((), n)) if self.attributes is None else map(dict, self.attributes)
        )
        rows = zip(
            repeat(SCHEMA_VERSION, n),
            self.id,
            self.source,
            self.times(),
            repeat(self.tenant_id, n),
            *(getattr(self, name) for name in OPTIONAL_IDS),
            self.model,
            self.provider,
            self.operation,
            *self.tokens(),
            attributes,
            self.time_ms,
            strict=True,
        )
        events = list(map(_new, repeat(UsageEvent, n)))
        any(map(_set, events, repeat("__dict__", n), map(dict, map(zip, repeat(_KEYS, n), rows))))
        any(map(_set, events, repeat("__pydantic_fields_set__", n), repeat(_ALL_SET, n)))
        any(map(_set, events, repeat("__pydantic_extra__", n), repeat(None, n)))
        any(map(_set, events, repeat("__pydantic_private__", n), repeat(None, n)))
        return events

    @classmethod
    def from_events(cls, events: Sequence[UsageEvent]) -> EventColumns:
        """The columns of already validated events, all of one tenant (ValueError if not)."""
        if not events:
            raise ValueError("no events")
        tenant = events[0].tenant_id
        dicts = [e.__dict__ for e in events]
        if any(d["tenant_id"] != tenant for d in dicts):
            raise ValueError("events of several tenants")
        attributes = [d["attributes"] for d in dicts]
        return cls(
            tenant_id=tenant,
            time_ms=[e.time_ms for e in events],
            attributes=[dict(a) for a in attributes] if any(attributes) else None,
            **{name: [d[name] for d in dicts] for name in _LIST_COLUMNS if name != "time_ms"},
        )


_LIST_COLUMNS = tuple(
    f.name for f in fields(EventColumns) if f.name not in ("tenant_id", "attributes")
)


def concat(parts: Sequence[EventColumns]) -> dict[str, list[Any]]:
    """Several records' columns joined, with a `tenant_id` column (attributes left out):
    what a consumer that processes many records at once iterates over."""
    out: dict[str, list[Any]] = {name: [] for name in _LIST_COLUMNS}
    out["tenant_id"] = []
    for part in parts:
        for name in _LIST_COLUMNS:
            out[name] += getattr(part, name)
        out["tenant_id"] += [part.tenant_id] * len(part.id)
    return out
