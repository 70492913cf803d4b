"""The events of one record as columns (`EventColumns`), and how fields become columns.

`EventColumns` holds the fields of a record's events (all of ONE tenant, as every usage
record is) as parallel lists, with times as UTC epoch milliseconds. The stream worker,
the sinks and the SDK's batches work on columns, never on per-event objects: building a
`UsageEvent` costs more than validating it. `events()` gives the `UsageEvent`s, for
callers off the hot path (tests, readback, the SDK's lone-event record).

Fields become columns through the rules of `rules.py`, and nothing else:
- `fields_row` / `event_row`: one event, as a row for the SDK's per-tenant buffers;
- `columns_many`: many events' fields, the common shape checked column by column
  (`rules.checked_columns`), anything else event by event (`rules.check_fields`, which
  names the broken field); the first invalid event raises with its `index`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from itertools import compress, repeat
from operator import add, itemgetter, mul
from typing import Any, cast

from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    EPOCH,
    MIN_EVENT_TIME,
    ONE_MS,
    SCHEMA_VERSION,
    UsageEvent,
    time_bounds_ms,
    to_epoch_ms,
)
from tokenops.schemas.rules import (
    FIELDS,
    OPTIONAL_IDS,
    ROW_FIELDS,
    TOKEN_COLUMNS,
    Row,
    check_fields,
    checked_columns,
)

__all__ = [
    "ROW_FIELDS",
    "TOKEN_COLUMNS",
    "EventColumns",
    "MixedColumns",
    "build_event",
    "columns_many",
    "event_row",
    "fields_reader",
    "fields_row",
    "latest_ms",
    "one_row_columns",
    "row_columns_of",
    "select",
    "select_mixed",
]

_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_FLAT = frozenset(FIELDS)
_ALL_SET = set(FIELDS)
_row = itemgetter(*ROW_FIELDS)


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
            strict=True,
        )
        return [_model(dict(zip(FIELDS, row, strict=True))) for row in rows]

    @classmethod
    def from_events(cls, events: Sequence[UsageEvent]) -> EventColumns:
        """The columns of already validated events, all of one tenant (ValueError if not)."""
        if not events:
            raise ValueError("no events")
        tenant = events[0].tenant_id
        if any(e.tenant_id != tenant for e in events):
            raise ValueError("events of several tenants")
        rows = [event_row(e) for e in events]
        columns = map(list, zip(*(row for _, row, _ in rows), strict=True))
        return row_columns_of(tenant, columns, _attributes_column([a for _, _, a in rows]))


# the columns of `EventColumns` with one value per event, but `attributes` (may be None)
_LISTS = tuple(
    f.name for f in dataclass_fields(EventColumns) if f.name not in ("tenant_id", "attributes")
)


@dataclass(slots=True)
class MixedColumns:
    """The events of many single-event records of any tenants, in record order: a fetch's
    records as one chunk (`decode.decode_fetch`), so the worker's dedup, windows and
    quotas take one call per fetch, not one per record.

    `tenant[i]` is event i's tenant; `events` holds every other column (its `tenant_id`
    is "", no tenant: never read it, nor call its `events()`). `records()` splits the
    chunk into one `EventColumns` per record, for consumers that need one tenant each.
    """

    tenant: list[str]
    events: EventColumns

    def __len__(self) -> int:
        return len(self.tenant)

    def records(self) -> list[EventColumns]:
        """One `EventColumns` per event (per record), in order."""
        ev = self.events
        one_each = [map(list, zip(getattr(ev, name))) for name in _LISTS]  # [value] each, in C
        return list(map(EventColumns, self.tenant, *one_each))

    def part(self, start: int, stop: int) -> MixedColumns:
        """Events `start` to `stop` (excluded)."""
        ev = self.events
        cut: dict[str, Any] = {name: getattr(ev, name)[start:stop] for name in _LISTS}
        attributes = None if ev.attributes is None else ev.attributes[start:stop]
        return MixedColumns(self.tenant[start:stop], EventColumns("", attributes=attributes, **cut))

    def record(self, i: int) -> EventColumns:
        """The `EventColumns` of event i alone."""
        ev = self.events
        one: dict[str, Any] = {name: [getattr(ev, name)[i]] for name in _LISTS}
        attributes = None if ev.attributes is None else [ev.attributes[i]]
        return EventColumns(tenant_id=self.tenant[i], attributes=attributes, **one)


def select(columns: EventColumns, mask: list[bool]) -> EventColumns:
    """The events of `columns` where `mask` is true (attributes None if none is left)."""
    picked: dict[str, Any] = {name: list(compress(getattr(columns, name), mask)) for name in _LISTS}
    attributes = columns.attributes
    if attributes is not None:
        attributes = list(compress(attributes, mask))
        if not any(attributes):
            attributes = None
    return EventColumns(tenant_id=columns.tenant_id, attributes=attributes, **picked)


def select_mixed(chunk: MixedColumns, mask: list[bool]) -> MixedColumns:
    """`select` of a chunk of many tenants."""
    return MixedColumns(list(compress(chunk.tenant, mask)), select(chunk.events, mask))


def _model(values: dict[str, Any]) -> UsageEvent:
    """The model holding these already validated values, without validating them again
    (pydantic's `model_construct`; `time_ms` is computed when first read)."""
    return UsageEvent.model_construct(_ALL_SET, **values)


def _attributes_column(attributes: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """The attributes column: None when no event has any, else a fresh dict each."""
    return list(map(dict, attributes)) if any(attributes) else None


def row_columns_of(
    tenant: str, columns: Iterable[list[Any]], attributes: list[dict[str, str]] | None = None
) -> EventColumns:
    """The `EventColumns` of lists in `ROW_FIELDS` order."""
    return EventColumns(
        tenant_id=tenant, attributes=attributes, **dict(zip(ROW_FIELDS, columns, strict=True))
    )


def one_row_columns(tenant: str, row: Row, attributes: dict[str, str]) -> EventColumns:
    """The `EventColumns` of one event's row (`ROW_FIELDS` order): one positional call,
    no keyword dict or transposition (a single-event record's whole result)."""
    (i, s, t, m, p, o, it, ot, cr, cc, ro, pj, ag, us, ak, rg, nd) = row
    return EventColumns(
        tenant, [i], [s], [t], [m], [p], [o], [it], [ot], [cr], [cc], [ro],
        [pj], [ag], [us], [ak], [rg], [nd], [dict(attributes)] if attributes else None,
    )  # fmt: skip


def build_event(
    fields: Mapping[str, Any], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> UsageEvent:
    """`UsageEvent(**fields)` through the contract's rules (`rules.check_fields`): the
    same events accepted, the broken field named."""
    earliest, latest = time_bounds_ms({"max_future_skew_s": max_future_skew_s})
    tenant, row, attributes = check_fields(fields, earliest, latest)
    return row_columns_of(tenant, ([v] for v in row), _attributes_column([attributes])).events()[0]


def latest_ms(max_future_skew_s: float) -> int:
    """The latest event time accepted now, in epoch ms."""
    return int(time.time() * 1000) + int(max_future_skew_s * 1000)


def event_row(event: UsageEvent) -> tuple[str, Row, dict[str, str]]:
    """(tenant, row, attributes) of an already validated event."""
    event.time_ms  # noqa: B018 - fills the cached property, so the row can read it
    d = event.__dict__
    return d["tenant_id"], _row(d), d["attributes"]


def fields_row(
    fields: Mapping[str, Any], earliest_ms: int, latest_ms: int
) -> tuple[str, Row, dict[str, str]]:
    """(tenant, row, attributes) of the event `UsageEvent(**fields)` would be; or the
    `InvalidEventError` naming the broken field (`rules.check_fields`)."""
    return check_fields(fields, earliest_ms, latest_ms)


def columns_many(
    items: Sequence[Mapping[str, Any] | UsageEvent],
    *,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
) -> list[EventColumns]:
    """The validated columns of these events (mappings of fields, or `UsageEvent`s), one
    `EventColumns` per tenant (each in the order given), or the first invalid event's
    error."""
    latest = latest_ms(max_future_skew_s)
    grouped = _grouped(items)
    checked = None if grouped is None else _checked(grouped, latest)
    if checked is not None:
        return checked.by_tenant()
    rows: dict[str, list[Row]] = {}
    attributes: dict[str, list[dict[str, str]]] = {}
    for index, fields in enumerate(items):
        try:
            if isinstance(fields, UsageEvent):
                tenant, row, attrs = event_row(fields)
            else:
                tenant, row, attrs = check_fields(fields, _EARLIEST_MS, latest)
        except InvalidEventError as exc:
            raise exc.at(index) from None
        rows.setdefault(tenant, []).append(row)
        attributes.setdefault(tenant, []).append(attrs)
    return [
        row_columns_of(
            tenant, map(list, zip(*group, strict=True)), _attributes_column(attributes[tenant])
        )
        for tenant, group in rows.items()
    ]


@dataclass
class _Checked:
    """The columns of a list of valid events' fields, every rule checked."""

    tenants: list[str]
    rows: list[list[Any]]  # one list per ROW_FIELDS name

    def by_tenant(self) -> list[EventColumns]:
        """One `EventColumns` per tenant; the events must come grouped by tenant, the
        tenants in sorted order (`_grouped`)."""
        tenants, n = self.tenants, len(self.tenants)
        first = tenants[0]
        if tenants.count(first) == n:  # one tenant: the columns as they are
            return [row_columns_of(first, self.rows)]
        counts = Counter(tenants)
        parts, start = [], 0
        for tenant in sorted(counts):
            end = start + counts[tenant]
            parts.append(row_columns_of(tenant, [column[start:end] for column in self.rows]))
            start = end
        return parts


def _grouped(items: Sequence[Any]) -> Sequence[Any] | None:
    """The dicts `items` in order of their `tenant_id`, each tenant's in the order given
    (a stable sort of the dicts themselves, so no column needs gathering afterwards);
    None if they are not all dicts of string tenants."""
    n = len(items)
    if not n or set(map(type, items)) != {dict}:
        return None
    tenants = list(map(dict.get, items, repeat("tenant_id", n)))
    if tenants.count(tenants[0]) == n:
        return items
    if set(map(type, tenants)) != {str}:
        return None  # not comparable: the careful way names the field
    tenant_of = cast(Callable[[int], str], tenants.__getitem__)
    order = sorted(range(n), key=tenant_of)
    grouped: tuple[Any, ...] = itemgetter(*order)(items)
    return grouped


def _checked(items: Sequence[Any], latest_ms: int) -> _Checked | None:
    """The validated columns of the common shape of events, or None: go event by event."""
    n = len(items)
    column = fields_reader(items, n)
    if column is None:
        return None
    checked = checked_columns(column, n, _EARLIEST_MS, [latest_ms], version_default=SCHEMA_VERSION)
    return None if checked is None else _Checked(*checked)


def fields_reader(
    items: Sequence[Any], n: int, fields: frozenset[str] = _FLAT
) -> Callable[..., list[Any]] | None:
    """`column(name, default)` over dicts whose keys are all in `fields`, none of them
    `attributes` (the column check's shape), or None. Dicts of one shape are read by
    `same_keys_reader`; others by one `dict.get` pass per column."""
    column = same_keys_reader(items, n, fields)
    if column is not None:
        return column
    if not all(map(fields.issuperset, items)) or any(
        map(dict.__contains__, items, repeat("attributes", n))
    ):
        return None

    def get(name: str, default: Any = None) -> list[Any]:
        return list(map(dict.get, items, repeat(name, n), repeat(default, n)))

    return get


def same_keys_reader(
    items: Sequence[Any], n: int, fields: frozenset[str] = _FLAT
) -> Callable[..., list[Any]] | None:
    """`column(name, default)` for dicts that all have the first one's keys (a caller's
    events usually share their shape): each column read with one `itemgetter` pass, no
    per-event tuple (young containers make the garbage collector scan the whole batch);
    None if the keys differ, or include `attributes` or a key not in `fields`."""
    keys = tuple(items[0])
    if len(keys) < 2 or not fields.issuperset(keys) or "attributes" in keys:
        return None
    if set(map(len, items)) != {len(keys)}:
        return None
    try:  # every key found in dicts of as many keys: the same keys
        values = {key: list(map(itemgetter(key), items)) for key in keys}
    except KeyError:
        return None

    def column(name: str, default: Any = None) -> list[Any]:
        found = values.get(name)
        return [default] * n if found is None else found

    return column
