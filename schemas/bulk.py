"""Many events' fields validated and encoded at once: the SDK's `send_many`.

`encode_many(items)` returns what `[encode_fields(f) for f in items]` would, and raises
the same `InvalidEventError` (with the event's `index`) for the first bad one; nothing
is half-done. A list of dicts of the common shape (identifiers already seen, aware UTC
datetimes, no attributes) is checked column by column in C loops, like `columnar.py`
does for decoding; anything else goes event by event.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import repeat
from operator import add, floordiv, le, methodcaller, sub
from typing import Any

import orjson

from tokenops.schemas.codec import EVENT_TYPE, SPECVERSION, encode_fields
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    DEFAULT_MAX_FUTURE_SKEW_S,
    EPOCH,
    MAX_TOKENS,
    MIN_EVENT_TIME,
    ONE_MS,
    SCHEMA_VERSION,
    to_epoch_ms,
)
from tokenops.schemas.validate import FIELDS, IDS, OPTIONAL_IDS, known, known_or_none
from tokenops.schemas.validate import sources as known_sources

_FLAT = frozenset(FIELDS)
_CE_KEYS = ("specversion", "type", "source", "id", "time", "data")
_EARLIEST_MS = to_epoch_ms(MIN_EVENT_TIME)
_INT = frozenset({int})
_MILLIS = methodcaller("isoformat", timespec="milliseconds")


def encode_many(
    items: Sequence[Mapping[str, Any]], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> list[tuple[str, bytes]]:
    """[(tenant_id, CloudEvent bytes)] of these events, or the first one's error."""
    latest = int(time.time() * 1000) + int(max_future_skew_s * 1000)
    try:
        quick = _quick_many(items, latest)
    except (TypeError, ValueError, AttributeError, KeyError):
        quick = None  # an unhashable or odd value: the careful way decides
    if quick is not None:
        return quick
    encoded = []
    for index, fields in enumerate(items):
        try:
            encoded.append(encode_fields(fields, max_future_skew_s=max_future_skew_s))
        except InvalidEventError as exc:
            raise exc.at(index) from None
    return encoded


def _quick_many(items: Sequence[Any], latest_ms: int) -> list[tuple[str, bytes]] | None:
    n = len(items)
    if not n or set(map(type, items)) != {dict}:
        return None
    if not all(map(_FLAT.issuperset, items)) or any(
        map(dict.__contains__, items, repeat("attributes", n))
    ):
        return None

    def column(name: str, default: Any = None) -> list[Any]:
        return list(map(dict.get, items, repeat(name, n), repeat(default, n)))

    versions = column("schema_version", SCHEMA_VERSION)
    ids, sources, times = column("id"), column("source"), column("time")
    tenants = column("tenant_id")
    optional = [column(name) for name in OPTIONAL_IDS]
    joined_ids = "\n".join(ids)
    if not (
        set(map(type, versions)) == _INT
        and set(versions) == {SCHEMA_VERSION}
        and known.issuperset(tenants)
        and known.issuperset(column("model"))
        and known.issuperset(column("provider"))
        and known.issuperset(column("operation", "chat"))
        and all(map(known_or_none.issuperset, optional))
        and known_sources.issuperset(sources)
        and joined_ids.count("\n") == n - 1
        and IDS(joined_ids) is not None
        and set(map(type, times)) == {datetime}
        and {t.tzinfo for t in times} == {UTC}
    ):
        return None
    millis = list(map(floordiv, map(sub, times, repeat(EPOCH, n)), repeat(ONE_MS, n)))
    inputs, outputs = column("input_tokens"), column("output_tokens")
    reads = column("cache_read_input_tokens", 0)
    creations = column("cache_creation_input_tokens", 0)
    reasonings = column("reasoning_output_tokens", 0)
    tokens = (inputs, outputs, reads, creations, reasonings)
    if not (
        min(millis) >= _EARLIEST_MS
        and max(millis) <= latest_ms
        and all(_INT.issuperset(map(type, c)) for c in tokens)
        and min(map(min, tokens)) >= 0
        and max(inputs) <= MAX_TOKENS
        and max(outputs) <= MAX_TOKENS
        and all(map(le, map(add, reads, creations), inputs))
        and all(map(le, reasonings, outputs))
    ):
        return None
    stamps = map(str.replace, map(_MILLIS, times), repeat("+00:00", n), repeat("Z", n))
    datas = list(map(dict, items))
    for key in ("id", "source", "time"):
        deque(map(dict.pop, datas, repeat(key, n)), maxlen=0)
    deque(map(dict.setdefault, datas, repeat("schema_version", n), repeat(SCHEMA_VERSION, n)), 0)
    rows = zip(
        repeat(SPECVERSION, n), repeat(EVENT_TYPE, n), sources, ids, stamps, datas, strict=True
    )
    ces = map(dict, map(zip, repeat(_CE_KEYS, n), rows))
    return list(zip(tenants, map(orjson.dumps, ces), strict=True))
