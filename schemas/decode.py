"""Reading usage records: the one decoder, for every wire format of `wire.py`.

`decode_columns` turns one Kafka record into the `EventColumns` of its events (the
worker's and the sinks' hot path), `decode_fetch` a whole fetch (its single CloudEvents
as one chunk of many tenants, what the worker counts), `decode_many` a whole fetch
record by record (what the sinks store), and `decode_record`
into `UsageEvent`s (the same records accepted, the same errors raised). Single
CloudEvents, v1 batch envelopes and v2 columnar batches are told apart by the
`content-type` header, or by the body when the header is missing.

Every format reaches `EventColumns` through the one fast column check
(`rules.checked_columns`); only when it fails does the careful path run, event by event
(`rules.check_fields`), which names the broken field for the dead letter. Any bad input
raises `InvalidEventError` and nothing else; a JSON object with a key twice is bad input
(`duplicate_key`: readers disagree on which value wins). A bad event rejects its whole
record, which the stream worker dead-letters unchanged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from tokenops.schemas.columns import (
    EventColumns,
    MixedColumns,
    fields_reader,
    one_row_columns,
    row_columns_of,
)
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    MAX_EVENT_BYTES,
    MIN_EVENT_TIME,
    SCHEMA_VERSION,
    UsageEvent,
    to_epoch_ms,
)
from tokenops.schemas.rules import (
    DATA_FIELDS,
    IDENTITY,
    MISSING,
    Row,
    check_fields,
    checked_columns,
)
from tokenops.schemas.wire import (
    BATCH_CONTENT_TYPE,
    BATCH_TYPE,
    BATCH_VERSION,
    BUNDLE_COLUMNS,
    BUNDLE_CONTENT_TYPE,
    BUNDLE_HEADER,
    CLOUDEVENTS_CONTENT_TYPE,
    COLUMN_NAMES,
    COLUMNS_CONTENT_TYPE,
    COLUMNS_VERSION,
    CONTENT_TYPE_HEADER,
    EVENT_HEADERS,
    EVENT_TYPE,
    MAX_BATCH_EVENTS,
    MAX_RECORD_BYTES,
    REQUIRED_COLUMNS,
    SPECVERSION,
)

_OPTIONAL_ATTRIBUTES = frozenset({"datacontenttype", "dataschema", "subject"})
_EXTENSION = re.compile(r"[a-z0-9]{1,20}").fullmatch
_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_CORE = frozenset({"specversion", "type", "source", "id", "time", "data"})
_CORE_KEYS = ("specversion", "type", "source", "id", "time", "data")
_CORE_COUNT = {len(_CORE)}
_ENVELOPE_V2 = frozenset({"type", "version", "tenant_id", "schema_version", "columns"})
_DICT = frozenset({dict})
_FEW_EVENTS = 12  # fewer single events than this: per-event rules (`decode_many`)


def _content_type(headers: list[tuple[str, bytes]] | None) -> str | None:
    for name, value in headers or ():
        if name == CONTENT_TYPE_HEADER or name.lower() == CONTENT_TYPE_HEADER:
            known = _KNOWN_TYPES.get(value)  # what producers write, as they write it
            if known is not None:
                return known
            try:
                return value.split(b";")[0].strip().lower().decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                raise InvalidEventError(CONTENT_TYPE_HEADER, value, "not ASCII") from None
    return None


_KNOWN_TYPES = {
    kind.encode(): kind
    for kind in (CLOUDEVENTS_CONTENT_TYPE, BATCH_CONTENT_TYPE, COLUMNS_CONTENT_TYPE)
}


def decode_record(
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
    *,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    now_ms: int | None = None,
    key: bytes | None = None,
) -> list[UsageEvent]:
    """The events of one Kafka record (one, or a whole batch); raises InvalidEventError.

    With `key` (the record's Kafka key), the events' tenant must be that key, so a
    record cannot put a tenant's usage into another tenant's partition.
    """
    return decode_columns(
        value, headers, max_future_skew_s=max_future_skew_s, now_ms=now_ms, key=key
    ).events()


def decode_columns(
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None = None,
    *,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    now_ms: int | None = None,
    key: bytes | None = None,
) -> EventColumns:
    """`decode_record` as columns: the same records accepted, the same errors raised,
    and `decode_columns(...).events() == decode_record(...)`."""
    kind, body, latest_ms = _parse(value, headers, max_future_skew_s, now_ms)
    columns = _event(body, latest_ms) if kind is _EVENT else _columns(kind, body, latest_ms)
    check_key(key, columns.tenant_id)
    return columns


def decode_cloudevents_array(
    value: bytes,
    items: list[Any],
    *,
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S,
    now_ms: int | None = None,
) -> list[EventColumns] | None:
    """The columns of `items`, the JSON array of CloudEvents that `value` holds (the
    CloudEvents HTTP batch mode), one part per tenant in the order the tenants first
    appear; or None when the column check of a batch record fails (then decode each
    tenant's events as a v1 batch record, which names the broken field).

    What it returns equals `decode_columns` of each tenant's events wrapped in a v1
    batch envelope (the rules are per event, so checking them all at once is checking
    each tenant's), without parsing the JSON again. Raises InvalidEventError
    (`duplicate_key`) if any object of `value` repeats a key, as `decode_columns` does.
    """
    _no_duplicate_keys(value, items)
    latest_ms = (int(time.time() * 1000) if now_ms is None else now_ms) + int(
        max_future_skew_s * 1000
    )
    quick = checked_cloudevents(items, _EARLIEST_MS, [latest_ms])
    if quick is None:
        return None
    tenants, columns = quick
    first = tenants[0]
    if tenants.count(first) == len(tenants):  # the common case: one tenant per request
        return [EventColumns(first, *columns)]
    at: dict[str, list[int]] = {}
    for index, tenant in enumerate(tenants):
        at.setdefault(tenant, []).append(index)
    # Each column gathered once in tenant order, then cut: one slice per tenant and column.
    pick = itemgetter(*chain.from_iterable(at.values()))
    grouped = [list(pick(column)) for column in columns]
    parts, start = [], 0
    for tenant, indexes in at.items():
        end = start + len(indexes)
        parts.append(EventColumns(tenant, *map(itemgetter(slice(start, end)), grouped)))
        start = end
    return parts


RecordIn = tuple[bytes, Any, int]  # (value, headers, now_ms: the record's event clock)


class Fetch(NamedTuple):
    """A fetch's records decoded (`decode_fetch`): `results[i]` is record i's columns, its
    InvalidEventError, or None when the record is one event of `mixed`, the chunk of the
    fetch's single CloudEvents that passed the column check together; `rows[j]` is the
    record of `mixed`'s event j."""

    results: list[EventColumns | InvalidEventError | None]
    mixed: MixedColumns | None
    rows: list[int]


def decode_fetch(
    records: Sequence[RecordIn], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> Fetch:
    """`decode_columns` of each record, or the error it raises, in order; the single
    CloudEvents among them as one chunk of many tenants (`MixedColumns`).

    The single CloudEvents are checked together, one pass per column over all of them
    (`checked_cloudevents`): a record of one event then costs little more than parsing
    its JSON, and no per-record object is built. If any of them fails that check, or
    they are fewer than `_FEW_EVENTS`, each takes `decode_columns`' own path (the
    per-event rules), so every bad record gets its own error.
    """
    results: list[EventColumns | InvalidEventError | None] = [None] * len(records)
    at: list[int] = []
    singles: list[Any] = []
    latests: list[int] = []
    for i, (value, headers, now_ms) in enumerate(records):
        try:
            kind, body, latest_ms = _parse(value, headers, max_future_skew_s, now_ms)
            if kind is _EVENT:
                at.append(i)
                singles.append(body)
                latests.append(latest_ms)
            else:
                results[i] = _columns(kind, body, latest_ms)
        except InvalidEventError as exc:
            results[i] = exc
    # The column check's fixed cost per call is that of several events' per-event rules:
    # a few single events (a small fetch of one partition) are cheaper one by one.
    quick = (
        checked_cloudevents(singles, _EARLIEST_MS, latests) if len(singles) >= _FEW_EVENTS else None
    )
    if quick is not None:
        tenants, columns = quick
        return Fetch(results, MixedColumns(tenants, EventColumns("", *columns)), at)
    for i, ce, latest_ms in zip(at, singles, latests, strict=True):
        try:
            results[i] = _event(ce, latest_ms)
        except InvalidEventError as exc:
            results[i] = exc
    return Fetch(results, None, [])


def decode_many(
    records: Sequence[RecordIn], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> list[EventColumns | InvalidEventError]:
    """`decode_columns` of each record, or the error it raises, in order (`decode_fetch`,
    its chunk split into one `EventColumns` per record)."""
    results, mixed, rows = decode_fetch(records, max_future_skew_s=max_future_skew_s)
    if mixed is not None:
        for i, part in zip(rows, mixed.records(), strict=True):
            results[i] = part
    return results  # type: ignore[return-value]  # every slot was filled above


class BundleElement(NamedTuple):
    """One record of a bundle (`wire.encode_bundle`), as it was written: key, value and
    headers, where it was written, and its event clock there."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]] | None
    partition: int
    offset: int
    clock_ms: int


_BUNDLE_TYPE = BUNDLE_CONTENT_TYPE.encode()
_BUNDLE_KEYS = frozenset(BUNDLE_COLUMNS)
_INT = frozenset({int})


def is_bundle(key: bytes | None, headers: Any) -> bool:
    """A bundle is unkeyed and says so in its content-type; anything keyed is judged as
    a record of its own (a bundle's content type is no record's: a dead letter)."""
    if key is not None or not headers:
        return False
    for name, value in headers:
        if name == CONTENT_TYPE_HEADER:
            return bool(value == _BUNDLE_TYPE)
    return False


def bundle_elements(value: bytes | None, headers: Any) -> list[BundleElement]:
    """The records of a bundle, split by the sizes of its `tokenops.bundle` header, never
    decoded here; InvalidEventError (field `bundle`) when the header and the value do
    not fit together, so a malformed bundle is dead-lettered whole. Each element is then
    judged as a record of its own: the header only says where it was written."""
    meta = next((v for k, v in headers or () if k == BUNDLE_HEADER), None)
    try:
        columns = orjson.loads(meta) if meta is not None else None
    except orjson.JSONDecodeError:
        columns = None
    if columns.__class__ is not dict or columns.keys() != _BUNDLE_KEYS:
        raise InvalidEventError("bundle", meta, f"needs a {BUNDLE_HEADER} header of columns")
    lists = list(map(columns.__getitem__, BUNDLE_COLUMNS))
    keys, partitions, offsets, clocks, sizes, typed = lists
    n = len(keys) if keys.__class__ is list else 0
    if not (
        0 < n <= MAX_BATCH_EVENTS
        and all(c.__class__ is list and len(c) == n for c in lists)
        and set(map(type, keys)) == {str}
        and all(keys)
        and set(map(type, numbers := [*partitions, *offsets, *clocks, *sizes, *typed])) == _INT
        and min(numbers) >= 0
        and set(typed) <= {0, 1}
        and value.__class__ is bytes
    ):
        raise InvalidEventError("bundle", meta, "malformed bundle header")
    assert value is not None
    if value[:1] != b"[" or value[-1:] != b"]" or sum(sizes) + n + 1 != len(value):
        raise InvalidEventError("bundle", len(value), "value does not fit the bundle's sizes")
    elements: list[BundleElement] = []
    at = 1
    for key, size, flag, partition, offset, clock_ms in zip(
        keys, sizes, typed, partitions, offsets, clocks, strict=True
    ):
        if at > 1 and value[at - 1] != 44:  # the comma between two elements
            raise InvalidEventError("bundle", at, "value does not fit the bundle's sizes")
        end = at + size
        element = value[at:end]
        elements.append(
            BundleElement(
                key.encode(), element, EVENT_HEADERS if flag else None, partition, offset, clock_ms
            )
        )
        at = end + 1
    return elements


def _event(ce: Any, latest_ms: int) -> EventColumns:
    """The columns of one decoded single CloudEvent, by the per-event rules: for one
    event they cost a fifth of the column check's fixed cost per call, accept exactly
    what it accepts and, failing, name the field."""
    return one_row_columns(*cloudevent_row(ce, latest_ms))


def _columns(kind: object, body: Any, latest_ms: int) -> EventColumns:
    """The columns of a decoded batch body (v1 envelope or v2 columns)."""
    if kind is _BATCH:
        return _batch(body, latest_ms)
    return _columns_body(body, latest_ms)


def _columns_of_rows(
    tenant: str, rows: list[Row], attributes: list[dict[str, str]]
) -> EventColumns:
    """The columns of rows that passed the careful path (`rules.check_fields`)."""
    return row_columns_of(
        tenant,
        map(list, zip(*rows, strict=True)),
        list(map(dict, attributes)) if any(attributes) else None,
    )


def check_key(key: bytes | None, tenant_id: str) -> None:
    """The key-equals-tenant rule: a record keyed as another tenant would escape the dedup
    index and quotas of its tenant's partition. No key (None) is not checked."""
    if key is not None and key != tenant_id.encode():
        raise InvalidEventError("key", key, f"differs from tenant_id {tenant_id!r}")


_EVENT, _BATCH, _COLUMNS = object(), object(), object()


def _parse(
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    max_future_skew_s: float,
    now_ms: int | None,
) -> tuple[object, Any, int]:
    """(kind of record, its decoded JSON body, latest accepted event time in ms)."""
    if value.__class__ is not bytes:
        raise InvalidEventError("record", value, "record value must be bytes")
    assert value is not None
    if len(value) > MAX_RECORD_BYTES:
        raise InvalidEventError("record", value[:64], f"record exceeds {MAX_RECORD_BYTES} bytes")
    content_type = _content_type(headers)
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError("record", value[:64], f"not UTF-8 JSON: {exc}") from None
    if body.__class__ is not dict:
        raise InvalidEventError("record", value[:64], "must be a JSON object")
    _no_duplicate_keys(value, body)
    if content_type is None:
        if "columns" in body:
            content_type = COLUMNS_CONTENT_TYPE
        elif "events" in body:
            content_type = BATCH_CONTENT_TYPE
        else:
            content_type = CLOUDEVENTS_CONTENT_TYPE
    latest_ms = (int(time.time() * 1000) if now_ms is None else now_ms) + int(
        max_future_skew_s * 1000
    )
    if content_type == CLOUDEVENTS_CONTENT_TYPE:
        if len(value) > MAX_EVENT_BYTES:
            raise InvalidEventError("record", value[:64], f"event exceeds {MAX_EVENT_BYTES} bytes")
        return _EVENT, body, latest_ms
    if content_type == BATCH_CONTENT_TYPE:
        return _BATCH, body, latest_ms
    if content_type == COLUMNS_CONTENT_TYPE:
        if body.get("version") != COLUMNS_VERSION:
            raise InvalidEventError("batch", body.get("version"), "unknown batch version")
        return _COLUMNS, body, latest_ms
    raise InvalidEventError(CONTENT_TYPE_HEADER, content_type, "unknown content type")


def _no_duplicate_keys(value: bytes, body: Any) -> None:
    """InvalidEventError(`duplicate_key`) if any JSON object of `value` repeats a key.

    orjson keeps the last value of a repeated key silently, so its re-encoding of `body`
    lacks the dropped member. The SDK writes what orjson writes: equal bytes, no
    duplicate (one C-level encode and compare, a few percent of a record's decode).
    Otherwise, every member has one colon outside strings and, without backslash
    escapes, a colon inside a string is written as itself: equal colon counts mean no
    member was dropped. Anything else takes the careful parse, which names the key.
    """
    dump = orjson.dumps(body)
    if dump == value:
        return
    if b"\\" not in value and value.count(b":") == dump.count(b":"):
        return
    try:
        json.loads(value, object_pairs_hook=_unique_keys)
    except _DuplicateKey as dup:
        raise InvalidEventError(
            "duplicate_key", dup.key, "appears twice in one JSON object"
        ) from None
    except (ValueError, RecursionError):  # orjson read it, the careful reader cannot
        raise InvalidEventError("record", value[:64], "not strict JSON") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


class _DuplicateKey(Exception):  # not a ValueError: json.loads must not swallow it
    def __init__(self, key: str) -> None:
        self.key = key


def _batch(body: dict[str, Any], latest_ms: int) -> EventColumns:
    if body.get("type") != BATCH_TYPE or body.keys() != {"type", "version", "tenant_id", "events"}:
        raise InvalidEventError("batch", sorted(body), f"a {BATCH_TYPE} envelope is expected")
    version = body["version"]
    if version.__class__ is not int or version != BATCH_VERSION:
        raise InvalidEventError("batch", version, "unknown batch version")
    items = body["events"]
    if items.__class__ is not list or not 0 < len(items) <= MAX_BATCH_EVENTS:
        raise InvalidEventError("events", items, f"must be a list of 1..{MAX_BATCH_EVENTS}")
    tenant = body["tenant_id"]
    quick = checked_cloudevents(items, _EARLIEST_MS, [latest_ms])
    if quick is not None and tenant.__class__ is str and set(quick[0]) == {tenant}:
        return EventColumns(tenant, *quick[1])
    rows, attributes = [], []
    for index, item in enumerate(items):
        try:
            event_tenant, row, attrs = cloudevent_row(item, latest_ms)
        except InvalidEventError as exc:
            raise exc.at(index) from None
        if event_tenant != tenant:
            raise InvalidEventError(
                "tenant_id", event_tenant, "differs from the batch's", index=index
            )
        rows.append(row)
        attributes.append(attrs)
    return _columns_of_rows(tenant, rows, attributes)


def envelope_fields(ce: Any) -> tuple[dict[str, Any], Any, Any, Any]:
    """(data, id, source, time) of a CloudEvent, after the envelope-level checks."""
    if ce.__class__ is not dict:
        raise InvalidEventError("record", ce, "a CloudEvent must be a JSON object")
    if ce.get("specversion") != SPECVERSION:
        raise InvalidEventError("specversion", ce.get("specversion"), "must be '1.0'")
    if ce.get("type") != EVENT_TYPE:
        raise InvalidEventError("type", ce.get("type"), f"must be {EVENT_TYPE!r}")
    data = ce.get("data")
    if data.__class__ is not dict:
        raise InvalidEventError("data", data, "must be a JSON object")
    if "schema_version" not in data:
        raise InvalidEventError("schema_version", None, "is required in data")
    if ce.keys() != _CORE:
        content = ce.get("datacontenttype")
        if content is not None and content != "application/json":
            raise InvalidEventError("datacontenttype", content, "must be application/json")
        for key in ce:
            if key not in _OPTIONAL_ATTRIBUTES and key not in _CORE and not _EXTENSION(key):
                raise InvalidEventError(key, ce[key], "is not a CloudEvents attribute")
    for key in IDENTITY:
        if key in data:
            raise InvalidEventError(key, data[key], "belongs in the CloudEvent, not in data")
    return data, ce.get("id", MISSING), ce.get("source", MISSING), ce.get("time", MISSING)


def cloudevent_row(ce: Any, latest_ms: int) -> tuple[str, Row, dict[str, str]]:
    """(tenant, row, attributes) of one decoded CloudEvent, times up to `latest_ms`; or
    InvalidEventError naming the broken field (the careful path, field by field)."""
    data, event_id, source, when = envelope_fields(ce)
    fields = dict(data)  # holds no identity key (`envelope_fields` checked)
    for name, value in (("id", event_id), ("source", source), ("time", when)):
        if value is not MISSING:
            fields[name] = value
    return check_fields(fields, _EARLIEST_MS, latest_ms)


def from_cloudevent(ce: Any, latest_ms: int) -> UsageEvent:
    """The `UsageEvent` of one decoded CloudEvent (`cloudevent_row`, as a model)."""
    tenant, row, attributes = cloudevent_row(ce, latest_ms)
    return _columns_of_rows(tenant, [row], [attributes]).events()[0]


def checked_cloudevents(
    items: list[Any], earliest_ms: int, latest_ms: list[int]
) -> tuple[list[Any], list[Any]] | None:
    """`checked_columns` of decoded CloudEvents, of any tenants, event i at most
    `latest_ms[i]`: one record's events, or one event of each of many single-event
    records, either way one pass per column. None: decode them one by one."""
    n = len(items)
    try:
        # Six keys each and all six read: exactly the core attributes.
        if set(map(len, items)) != _CORE_COUNT:
            return None
        envelope = {key: list(map(itemgetter(key), items)) for key in _CORE_KEYS}
        datas = envelope["data"]
        if not (
            set(envelope["specversion"]) == {SPECVERSION}
            and set(envelope["type"]) == {EVENT_TYPE}
            and set(map(type, datas)) == _DICT
        ):
            return None
        data_column = fields_reader(datas, n, DATA_FIELDS)
        if data_column is None:
            return None
    except (TypeError, KeyError):  # not dicts, unhashable values: the careful way decides
        return None

    def column(name: str, default: Any = None) -> list[Any]:
        return envelope[name] if name in IDENTITY else data_column(name, default)

    return checked_columns(column, n, earliest_ms, latest_ms, version_default=None)


# -- v2 columnar batches --------------------------------------------------------------


def _columns_body(body: dict[str, Any], latest_ms: int) -> EventColumns:
    """The columns of a decoded v2 batch body, every rule checked; or InvalidEventError
    naming the first broken field as `events[i].<field>`."""
    if body.keys() != _ENVELOPE_V2 or body["type"] != BATCH_TYPE:
        raise InvalidEventError("batch", sorted(body), f"a {BATCH_TYPE} v2 envelope is expected")
    version = body["schema_version"]
    if version.__class__ is not int or version != SCHEMA_VERSION:
        raise InvalidEventError("schema_version", version, "unknown schema_version")
    columns = body["columns"]
    n = _shape(columns)
    tenant = body["tenant_id"]
    if "attributes" not in columns and tenant.__class__ is str:

        def column(name: str, default: Any = None) -> list[Any]:
            if name == "tenant_id":  # one per batch, in the envelope
                return [tenant] * n
            found = columns.get(name)
            return [default] * n if found is None else found

        checked = checked_columns(
            column, n, _EARLIEST_MS, [latest_ms], version_default=SCHEMA_VERSION
        )
        if checked is not None:
            return EventColumns(tenant, *checked[1])
    rows, attributes = [], []
    for i in range(n):
        fields = {name: values[i] for name, values in columns.items()}
        fields["tenant_id"] = tenant
        try:
            _, row, attrs = check_fields(fields, _EARLIEST_MS, latest_ms)
        except InvalidEventError as exc:
            raise exc.at(i) from None
        rows.append(row)
        attributes.append(attrs)
    return _columns_of_rows(tenant, rows, attributes)


def _shape(columns: Any) -> int:
    """The number of events; every column a list of that length, names known."""
    if columns.__class__ is not dict:
        raise InvalidEventError("columns", columns, "must be an object of lists")
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            raise InvalidEventError(name, None, "is required (a column of the batch)")
    for name, values in columns.items():
        if name not in COLUMN_NAMES:
            raise InvalidEventError(str(name), None, "is not a column of the batch")
        if values.__class__ is not list:
            raise InvalidEventError(name, values, "a column must be a list")
    n = len(columns["id"])
    if not 0 < n <= MAX_BATCH_EVENTS:
        raise InvalidEventError("events", n, f"a batch holds 1..{MAX_BATCH_EVENTS} events")
    for name, values in columns.items():
        if len(values) != n:
            raise InvalidEventError(name, len(values), f"column length differs from id's {n}")
    return n
