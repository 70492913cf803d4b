"""Per-tenant batching: validated events wait, as columns, so many of one tenant share a record.

Each tenant's buffer holds its events' validated values column by column (the lists of an
`EventColumns`; `send`'s single events wait as rows until one C-level transposition joins
them to the columns); a full buffer leaves as ONE v2 columnar record, a lone event as a
plain CloudEvent. Nothing per event is encoded until the record is.

Records must stay under the broker's limit, so each buffer keeps an upper bound of its
record's size. Identifiers and sources are ASCII that JSON never escapes and every field
is bounded, so an event without attributes takes at most `WORST_EVENT_BYTES`; that
constant is what `add` charges per event (no per-event measuring on the hot path). Only
when the bound would pass `MAX_PRODUCED_BYTES` are the events charged so far measured
(string lengths summed column-wise, in C) and the bound tightened to that, so a buffer
of small events still fills to `max_events`. Attributes are measured exactly (they are
encoded with orjson, like the record) when they are added.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate, groupby, repeat
from operator import add, attrgetter, itemgetter
from typing import Any

import orjson

from tokenops.producers.tickets import Ticket
from tokenops.schemas import (
    BATCH_CONTENT_TYPE,
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMNS_CONTENT_TYPE,
    EventColumns,
    encode_event,
)
from tokenops.schemas.columns import ROW_FIELDS, row_columns_of
from tokenops.schemas.event import SCHEMA_VERSION
from tokenops.schemas.rules import NO_ATTRIBUTES, Row
from tokenops.schemas.wire import (
    BATCH_TYPE,
    COLUMN_NAMES,
    COLUMNS_VERSION,
    encode_batch_encoded,
    encode_columns,
)

# Below Kafka's default message.max.bytes (1,000,000) with room for key and headers.
MAX_PRODUCED_BYTES = 900_000
# The record without events: envelope, the longest tenant id, every column's name and [].
ENVELOPE_BYTES = len(
    orjson.dumps(
        {
            "type": BATCH_TYPE,
            "version": COLUMNS_VERSION,
            "tenant_id": "t" * 128,
            "schema_version": SCHEMA_VERSION,
            "columns": {name: [] for name in COLUMN_NAMES},
        }
    )
)
# Per event, each column's element plus a comma: 24-char time in quotes, five counts of
# at most 9 digits (MAX_TOKENS), `{}` when another event has attributes, and two quotes
# for each of the 11 string columns (a null, 4 + 1 bytes, is below "None" + 3).
_FIXED_EVENT_BYTES = 27 + 5 * 10 + 3 + 11 * 3
_STRINGS = tuple(ROW_FIELDS.index(n) for n in ("id", "source", "model", "provider", "operation"))
_OPTIONAL = tuple(range(ROW_FIELDS.index("project_id"), len(ROW_FIELDS)))
row_columns = attrgetter(*ROW_FIELDS)  # an EventColumns' lists in ROW_FIELDS order
_tenant_of, _row_of = itemgetter(0), itemgetter(1)  # of a (tenant, row) pair
# Identifiers are at most 128 characters, sources 256 (schemas/event.py patterns).
WORST_EVENT_BYTES = _FIXED_EVENT_BYTES + 10 * 128 + 256


def events_bytes(columns: Sequence[list[Any]], start: int, end: int) -> int:
    """An upper bound of the bytes events [start, end) add to a record, attributes aside."""
    total = _FIXED_EVENT_BYTES * (end - start)
    for at in _STRINGS:
        total += len("".join(columns[at][start:end]))
    for at in _OPTIONAL:  # None counts as "None"
        total += len("".join(map(str, columns[at][start:end])))
    return total


def event_bounds(columns: Sequence[list[Any]], start: int, end: int) -> list[int]:
    """`events_bytes` of each event in [start, end), attributes aside."""
    bounds: Any = repeat(_FIXED_EVENT_BYTES, end - start)
    for at in _STRINGS:
        bounds = map(add, bounds, map(len, columns[at][start:end]))
    for at in _OPTIONAL:
        bounds = map(add, bounds, map(len, map(str, columns[at][start:end])))
    return list(bounds)


def attributes_bytes(attributes: dict[str, str]) -> int:
    """What non-empty attributes add beyond the `{}` every event is charged."""
    return len(orjson.dumps(attributes)) + 1 if attributes else 0


class TenantBuffer:
    """One tenant's waiting events, in order: columns (a list per `ROW_FIELDS` name), then
    rows that `add` appended and that join the columns in one transposition (C's `zip`)
    when the columns are next needed; attributes apart, one per event once any has some."""

    __slots__ = (
        "attributes", "bound", "columns", "count", "encoded", "measured", "rows", "since", "tenant",
        "tickets",
    )  # fmt: skip

    def __init__(self, tenant: str, since: float) -> None:
        self.tenant = tenant
        self.since = since
        self.columns: list[list[Any]] | None = None
        self.rows: list[Row] = []
        self.attributes: list[dict[str, str]] | None = None  # None: no event has any
        self.count = 0
        self.measured = 0  # events before this are in `bound` measured, later at worst
        self.bound = ENVELOPE_BYTES
        self.tickets: list[Ticket] | None = None  # callers waiting for these events
        # The CloudEvent bytes of its first event as the caller had them (`extend`): the
        # record's value if that event stays alone.
        self.encoded: bytes | None = None

    def hold(self, ticket: Ticket) -> None:
        """`ticket` waits for this buffer's record too (once, however many events)."""
        tickets = self.tickets
        if tickets is None:
            self.tickets = [ticket]
        elif tickets[-1] is ticket:
            return
        else:
            tickets.append(ticket)
        ticket.records += 1

    def settled(self) -> list[list[Any]]:
        """The columns of every event so far (the rows moved into them)."""
        columns, rows = self.columns, self.rows
        if columns is None:
            if rows:
                columns = self.columns = list(map(list, zip(*rows, strict=True)))
            else:
                columns = self.columns = [[] for _ in ROW_FIELDS]
        elif rows:
            for column, values in zip(columns, zip(*rows, strict=True), strict=True):
                column += values
        if rows:
            self.rows = []
        return columns

    def tighten(self) -> None:
        """Charge the events added at `WORST_EVENT_BYTES` what they measure."""
        if self.measured < self.count:
            unmeasured = self.count - self.measured
            self.bound -= WORST_EVENT_BYTES * unmeasured
            self.bound += events_bytes(self.settled(), self.measured, self.count)
            self.measured = self.count

    def append(self, row: Row, attributes: dict[str, str], attribute_bytes: int) -> None:
        """One event; `attribute_bytes` is `attributes_bytes(attributes)`."""
        self.rows.append(row)
        if attributes or self.attributes is not None:
            self._attributes().append(dict(attributes))
        self.count += 1
        self.bound += WORST_EVENT_BYTES + attribute_bytes

    def extend(
        self, part: EventColumns, start: int, end: int, bound: int, *, measured: bool
    ) -> None:
        """Events [start, end) of `part`, charged `bound` bytes (attributes included):
        measured (then `tighten` came first), or at `WORST_EVENT_BYTES` each."""
        values: Iterable[list[Any]] = row_columns(part)
        if not (start == 0 and end == len(part)):
            values = [column[start:end] for column in values]
        any(map(list.extend, self.settled(), values))
        if part.attributes is not None:
            self._attributes().extend(map(dict, part.attributes[start:end]))
        elif self.attributes is not None:
            self.attributes.extend(map(dict, repeat((), end - start)))
        self.count += end - start
        if measured:
            self.measured = self.count
        self.bound += bound

    def _attributes(self) -> list[dict[str, str]]:
        if self.attributes is None:
            self.attributes = list(map(dict, repeat((), self.count)))
        return self.attributes

    def columns_of(self) -> EventColumns:
        attributes = (
            self.attributes if self.attributes is not None and any(self.attributes) else None
        )
        return row_columns_of(self.tenant, self.settled(), attributes)


class TenantBatches:
    """Validated events per tenant; not thread-safe (the producer holds its lock).

    `add` (one event) and `extend` (one tenant's columns) return the records completed
    by the new events: full by count, or by bytes before an event that would not fit;
    `stale` returns the buffers older than the linger. A tenant's events leave in the
    order they came, so they stay ordered in its partition.
    """

    def __init__(
        self, max_events: int, linger_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_events = max_events
        self.linger_s = linger_s
        self.clock = clock
        self.buffered = 0
        self._buffers: dict[str, TenantBuffer] = {}
        # The tickets and bytes of taken records until they are produced, by id of their
        # columns, which the entry keeps alive (so the id names them alone): the returned
        # records stay plain `EventColumns`.
        self._taken: dict[int, tuple[EventColumns, list[Ticket] | None, bytes | None]] = {}

    def add(self, tenant: str, row: Row, attributes: dict[str, str]) -> EventColumns | None:
        """Buffer one validated event (`event_row`, `fields_row`)."""
        buffer = self._buffers.get(tenant)
        if (  # the common case, kept to a few bytecodes: `send`'s per-event cost
            buffer is not None
            and not attributes
            and buffer.attributes is None
            and buffer.bound + WORST_EVENT_BYTES <= MAX_PRODUCED_BYTES
        ):
            buffer.rows.append(row)
            buffer.count += 1
            buffer.bound += WORST_EVENT_BYTES
            self.buffered += 1
            return self._take(tenant) if buffer.count >= self.max_events else None
        done = None
        extra = attributes_bytes(attributes) if attributes else 0
        if buffer is not None and buffer.bound + WORST_EVENT_BYTES + extra > MAX_PRODUCED_BYTES:
            buffer.tighten()
            if buffer.bound + WORST_EVENT_BYTES + extra > MAX_PRODUCED_BYTES:
                done = self._take(tenant)
                buffer = None
        if buffer is None:
            buffer = self._buffers[tenant] = TenantBuffer(tenant, self.clock())
        buffer.append(row, attributes, extra)
        self.buffered += 1
        if done is None and buffer.count >= self.max_events:
            done = self._take(tenant)
        return done

    def add_rows(self, pairs: list[tuple[str, Row]]) -> list[EventColumns]:
        """Buffer validated events without attributes given as (tenant, row) pairs, in the
        order given (`send` collects them, see producer.py); sorts `pairs` in place.

        The pairs are grouped by tenant with one stable sort (a tenant's events keep
        their order) and each tenant's rows join its buffer with one list operation per
        record, so the per-event cost is C's, not `add`'s.
        """
        done: list[EventColumns] = []
        pairs.sort(key=_tenant_of)
        for tenant, group in groupby(pairs, _tenant_of):
            rows = list(map(_row_of, group))
            start, n = 0, len(rows)
            while start < n:
                buffer = self._buffers.get(tenant)
                if buffer is None:
                    buffer = self._buffers[tenant] = TenantBuffer(tenant, self.clock())
                end = min(n, start + self.max_events - buffer.count)
                charge = WORST_EVENT_BYTES * (end - start)
                if buffer.attributes is not None or buffer.bound + charge > MAX_PRODUCED_BYTES:
                    break  # near the size limit, or attributes waiting: one event at a time
                buffer.rows += rows[start:end]
                buffer.count += end - start
                buffer.bound += charge
                self.buffered += end - start
                if buffer.count >= self.max_events:
                    done.append(self._take(tenant))
                start = end
            for row in rows[start:]:
                full = self.add(tenant, row, NO_ATTRIBUTES)
                if full is not None:
                    done.append(full)
        return done

    def extend(
        self, part: EventColumns, ticket: Ticket | None = None, encoded: bytes | None = None
    ) -> list[EventColumns]:
        """Buffer one tenant's validated columns (`columns_many`), in their order;
        `ticket` is held by every buffer that takes some of them. `encoded`: the
        CloudEvent that a part of one event was decoded from, sent as it is if no other
        event joins it in its record."""
        done = []
        tenant, n, start = part.tenant_id, len(part), 0
        if encoded is not None and n == 1 and tenant not in self._buffers:
            first = self._buffers[tenant] = TenantBuffer(tenant, self.clock())
            first.encoded = encoded
        sizes = None if part.attributes is None else list(map(attributes_bytes, part.attributes))
        while start < n:
            buffer = self._buffers.get(tenant)
            if buffer is None:
                buffer = self._buffers[tenant] = TenantBuffer(tenant, self.clock())
            end = min(n, start + self.max_events - buffer.count)
            charge = WORST_EVENT_BYTES * (end - start) + (sum(sizes[start:end]) if sizes else 0)
            if buffer.bound + charge <= MAX_PRODUCED_BYTES:  # the common case: no measuring
                buffer.extend(part, start, end, charge, measured=False)
                if ticket is not None:
                    buffer.hold(ticket)
            else:  # measure what is buffered, then these events one by one: which fit
                buffer.tighten()
                bounds = event_bounds(row_columns(part), start, end)
                if sizes:
                    bounds = list(map(add, bounds, sizes[start:end]))
                fit = bisect_right(list(accumulate(bounds)), MAX_PRODUCED_BYTES - buffer.bound)
                if fit == 0:  # not even the next one: this record is done
                    assert buffer.count, "one event always fits an empty record"
                    done.append(self._take(tenant))
                    continue
                buffer.extend(part, start, start + fit, sum(bounds[:fit]), measured=True)
                if ticket is not None:
                    buffer.hold(ticket)
                if start + fit < end:  # full by bytes
                    end = start + fit
                    self.buffered += fit
                    done.append(self._take(tenant))
                    start = end
                    continue
            self.buffered += end - start
            if buffer.count >= self.max_events:
                done.append(self._take(tenant))
            start = end
        return done

    def stale(self) -> list[EventColumns]:
        horizon = self.clock() - self.linger_s
        return [self._take(t) for t, b in list(self._buffers.items()) if b.since <= horizon]

    def drain(self) -> list[EventColumns]:
        return [self._take(tenant) for tenant in list(self._buffers)]

    def taken(self, columns: EventColumns) -> tuple[list[Ticket] | None, bytes | None]:
        """The tickets a taken record carries, and its lone event's bytes if the caller
        gave them (asked once, when it is produced)."""
        entry = self._taken.pop(id(columns), None) if self._taken else None
        return (None, None) if entry is None else entry[1:]

    def _take(self, tenant: str) -> EventColumns:
        buffer = self._buffers.pop(tenant)
        self.buffered -= buffer.count
        columns = buffer.columns_of()
        encoded = buffer.encoded if buffer.count == 1 else None  # its first event, alone
        if buffer.tickets is not None or encoded is not None:
            self._taken[id(columns)] = (columns, buffer.tickets, encoded)
        return columns


def columns_record(columns: EventColumns) -> tuple[str, bytes]:
    """(content type, value) of one tenant's buffered events: a v2 columnar batch record,
    or a plain CloudEvent for a lone event."""
    if len(columns) == 1:
        return CLOUDEVENTS_CONTENT_TYPE, encode_event(columns.events()[0])
    return COLUMNS_CONTENT_TYPE, encode_columns(columns)


def batch_record(tenant: str, encoded: list[bytes]) -> tuple[str, bytes]:
    """(content type, value) of already encoded CloudEvents as a v1 batch record (a lone
    one as itself): what producers sent before the columnar record, still decoded by
    consumers; benchmarks build v1 records with it."""
    if len(encoded) == 1:
        return CLOUDEVENTS_CONTENT_TYPE, encoded[0]
    return BATCH_CONTENT_TYPE, encode_batch_encoded(tenant, encoded)
