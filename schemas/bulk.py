"""Events' fields validated into columns: the SDK's `send` and `send_many` hot paths.

The producer buffers VALIDATED COLUMNS per tenant and sends them as one v2 columnar
record (`column_batch.py`); nothing here builds a per-event object on the common path.

- `fields_row(fields, ...)` validates one event's fields (`quick.quick_row`, one call
  with the fields as keyword arguments; else the careful `validate_fields`, which names the broken
  field) and returns its values in `ROW_FIELDS` order, ready to join column lists;
  `event_row(event)` does the same for an already validated `UsageEvent`.
- `columns_many(items, ...)` validates many events' fields at once and returns their
  `EventColumns`, one per tenant, each holding its events in the order given; the common
  shape (identifiers already seen, aware UTC datetimes or canonical time strings, no
  attributes) is checked column by column in C loops, like `columnar.py` does for
  decoding; anything else goes event by event. The first invalid event raises its
  `InvalidEventError` (with its `index`) and nothing is returned.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, cast

from tokenops.schemas.columnar import checked_columns
from tokenops.schemas.columns import TOKEN_COLUMNS, EventColumns
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    MIN_EVENT_TIME,
    SCHEMA_VERSION,
    UsageEvent,
    to_epoch_ms,
)
from tokenops.schemas.quick import NO_ATTRIBUTES, Row, quick_row
from tokenops.schemas.validate import (
    FIELDS,
    MISSING,
    OPTIONAL_IDS,
    validate_fields,
)

# One event's values in the order of EventColumns' list fields (tenant and attributes
# travel apart: the tenant is the buffer's, attributes are rare).
ROW_FIELDS = (
    "id",
    "source",
    "time_ms",
    "model",
    "provider",
    "operation",
    *TOKEN_COLUMNS,
    *OPTIONAL_IDS,
)
_row = itemgetter(*ROW_FIELDS)
_FLAT = frozenset(FIELDS)
_CE_KEYS = ("specversion", "type", "source", "id", "time", "data")
_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_INT = frozenset({int})
_TZINFO = attrgetter("tzinfo")


def row_columns_of(
    tenant: str, columns: Iterable[list[Any]], attributes: list[dict[str, str]] | None = None
) -> EventColumns:
    """The `EventColumns` of lists in `ROW_FIELDS` order."""
    return EventColumns(
        tenant_id=tenant, attributes=attributes, **dict(zip(ROW_FIELDS, columns, strict=True))
    )


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
    """(tenant, row, attributes) of the event `UsageEvent(**fields)` would be; the same
    rules and the same `InvalidEventError` as `encode_fields`."""
    try:
        quick = quick_row(fields, earliest_ms, latest_ms)
    except (TypeError, AttributeError, ValueError):  # an unhashable value: not quick
        quick = None
    if quick is not None:
        return quick[0], quick[1], NO_ATTRIBUTES
    data = dict(fields)
    data.setdefault("schema_version", SCHEMA_VERSION)
    event_id, source = data.pop("id", MISSING), data.pop("source", MISSING)
    when = data.pop("time", MISSING)
    return event_row(validate_fields(data, event_id, source, when, earliest_ms, latest_ms))


def columns_many(
    items: Sequence[Mapping[str, Any] | UsageEvent],
    *,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
) -> list[EventColumns]:
    """The validated columns of these events (mappings of fields, or `UsageEvent`s), one
    `EventColumns` per tenant (each in the order given), or the first invalid event's
    error."""
    latest = latest_ms(max_future_skew_s)
    try:
        grouped = _grouped(items)
        checked = None if grouped is None else _checked(grouped, latest)
    except (TypeError, ValueError, AttributeError, KeyError):
        checked = None  # an unhashable or odd value: the careful way decides
    if checked is not None:
        return checked.by_tenant()
    rows: dict[str, list[Row]] = {}
    attributes: dict[str, list[dict[str, str]]] = {}
    for index, fields in enumerate(items):
        try:
            if isinstance(fields, UsageEvent):
                tenant, row, attrs = event_row(fields)
            else:
                tenant, row, attrs = fields_row(fields, _EARLIEST_MS, latest)
        except InvalidEventError as exc:
            raise exc.at(index) from None
        rows.setdefault(tenant, []).append(row)
        attributes.setdefault(tenant, []).append(attrs)
    return [
        row_columns_of(
            tenant,
            map(list, zip(*group, strict=True)),
            attributes=list(map(dict, attributes[tenant])) if any(attributes[tenant]) else None,
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
    None if they are not all dicts."""
    n = len(items)
    if not n or set(map(type, items)) != {dict}:
        return None
    tenants = list(map(dict.get, items, repeat("tenant_id", n)))
    if tenants.count(tenants[0]) == n:
        return items
    tenant_of = cast(Callable[[int], str], tenants.__getitem__)
    order = sorted(range(n), key=tenant_of)  # TypeError if the tenants are not comparable
    grouped: tuple[Any, ...] = itemgetter(*order)(items)
    return grouped


def _checked(items: Sequence[Any], latest_ms: int) -> _Checked | None:
    """The validated columns of the common shape of events, or None: go event by event."""
    n = len(items)
    if not n or set(map(type, items)) != {dict}:
        return None
    column = _same_keys_reader(items, n)
    if column is None:
        if not all(map(_FLAT.issuperset, items)) or any(
            map(dict.__contains__, items, repeat("attributes", n))
        ):
            return None

        def column(name: str, default: Any = None) -> list[Any]:
            return list(map(dict.get, items, repeat(name, n), repeat(default, n)))

    checked = checked_columns(column, n, _EARLIEST_MS, [latest_ms], version_default=SCHEMA_VERSION)
    if checked is None:
        return None
    return _Checked(checked[0], checked[1])


def _same_keys_reader(items: Sequence[Any], n: int) -> Callable[..., list[Any]] | None:
    """`column(name, default)` for dicts that all have the first one's keys (a caller's
    events usually share their shape): every value read with one `itemgetter` call per
    event and the columns made by one transposition; None if the keys differ, or include
    `attributes` or a key that is not a field."""
    keys = tuple(items[0])
    if len(keys) < 2 or not _FLAT.issuperset(keys) or "attributes" in keys:
        return None
    if set(map(len, items)) != {len(keys)}:
        return None
    try:  # same length and every key of the first: the same keys
        values = dict(zip(keys, zip(*map(itemgetter(*keys), items), strict=True), strict=True))
    except KeyError:
        return None

    def column(name: str, default: Any = None) -> list[Any]:
        found = values.get(name)
        return [default] * n if found is None else list(found)

    return column
