"""`quick_row`: one event's fields proven valid with a few lookups, `send`'s per-event cost.

A node builds its events the same way every time, so their dicts share a shape (the same
keys). For each shape seen, a small reader is generated that takes every field with one
subscript (an absent one is its default, a constant) and hands them to `checked_row`,
the one place the rules are written. Readers are kept by the number of keys, so events
whose optional fields come and go (a shape of 14 keys, then one of 16) each find theirs
without a miss. A dict with a key that is not a field never gets a reader.

Against merging the fields over a dict of defaults and unpacking it, this halves the
cost of reading an event (docs/benchmarks.md, "Producer").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tokenops.schemas.columns import TOKEN_COLUMNS
from tokenops.schemas.event import EPOCH, MAX_TOKENS, SCHEMA_VERSION
from tokenops.schemas.validate import (
    FIELDS,
    IDENT,
    MISSING,
    OPTIONAL_IDS,
    known,
    known_or_none,
    seconds,
)
from tokenops.schemas.validate import sources as known_sources

Row = tuple[Any, ...]  # one event's values in `bulk.ROW_FIELDS` order
Reader = Callable[[Mapping[str, Any], int, int], "tuple[str, Row] | None"]
NO_ATTRIBUTES: dict[str, str] = {}
# Every field with its default, in `checked_row`'s parameter order; MISSING for a
# required one, which then fails its check.
DEFAULTS: dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    **dict.fromkeys(("tenant_id", "id", "source", "time", "model", "provider"), MISSING),
    "operation": "chat",
    **dict.fromkeys(TOKEN_COLUMNS[:2], MISSING),
    **dict.fromkeys(TOKEN_COLUMNS[2:], 0),
    **dict.fromkeys(OPTIONAL_IDS),
    "attributes": NO_ATTRIBUTES,
}
assert DEFAULTS.keys() == set(FIELDS), "every field, once"
_FIELDS = frozenset(FIELDS)
_MAX_SHAPES = 1024
# Identifier combinations (tenant ... node, source) whose every identifier was known.
_combinations: set[tuple[Any, ...]] = set()
_by_shape: dict[frozenset[str], Reader] = {}
_by_size: list[Reader | None] = [None] * (len(FIELDS) + 1)  # the last shape of each size


def quick_row(fields: Any, earliest_ms: int, latest_ms: int) -> tuple[str, Row] | None:
    """(tenant, row) of a common valid event, proven valid with lookups; None: ask
    `validate_fields`, which decides (and names the broken field). Raises TypeError on
    an unhashable value, which callers treat as None. Anything may be passed, but only
    plain dicts are read: a subclass may answer a missing key (defaultdict), which a
    reader would take for a field."""
    if fields.__class__ is not dict:
        return None
    size = len(fields)
    if size > len(FIELDS):
        return None  # a key that is not a field
    reader = _by_size[size]
    if reader is not None:
        try:
            return reader(fields, earliest_ms, latest_ms)
        except KeyError:  # another shape of the same size
            pass
    reader = _reader_of(fields)
    if reader is None:
        return None
    _by_size[size] = reader
    return reader(fields, earliest_ms, latest_ms)


def _reader_of(fields: Mapping[str, Any]) -> Reader | None:
    """The reader of this dict's shape (made once per shape); None if a key is not a field."""
    shape = frozenset(fields)
    reader = _by_shape.get(shape)
    if reader is None:
        if not shape <= _FIELDS:
            return None
        if len(_by_shape) >= _MAX_SHAPES:
            _by_shape.clear()
        reader = _by_shape[shape] = _compile_reader(shape)
    return reader


def _compile_reader(shape: frozenset[str]) -> Reader:
    """`read(fields, earliest_ms, latest_ms)`: `checked_row` of a dict with exactly the
    keys `shape` (all of them fields), each read with one subscript; KeyError if one is
    absent. Generated because a call with the fields as literal arguments is the
    cheapest way CPython has to read a dict into named values."""
    arguments = ", ".join(
        f"fields[{name!r}]" if name in shape else f"defaults[{at}]"
        for at, name in enumerate(DEFAULTS)
    )
    source = (
        "def read(fields, earliest_ms, latest_ms):\n"
        f"    return checked_row({arguments}, earliest_ms, latest_ms)\n"
    )
    namespace: dict[str, Any] = {"checked_row": checked_row, "defaults": tuple(DEFAULTS.values())}
    exec(compile(source, f"<reader of {len(shape)} fields>", "exec"), namespace)
    reader: Reader = namespace["read"]
    return reader


def checked_row(
    version: Any, tenant: Any, event_id: Any, source: Any, when: Any, model: Any,
    provider: Any, operation: Any, inputs: Any, outputs: Any, reads: Any, creations: Any,
    reasoning: Any, project: Any, agent: Any, user: Any, api_key: Any, region: Any,
    node: Any, attributes: Any, earliest_ms: int, latest_ms: int,
) -> tuple[str, Row] | None:  # fmt: skip
    """(tenant, row) of an event's fields (`DEFAULTS` order) if the quick rules prove
    them valid: every identifier already in `known`, the source in `sources`, an aware
    UTC datetime or a canonical time whose second was seen, no attributes; else None."""
    # A node sends few combinations of identifiers: one lookup proves all eleven known.
    combination = (
        tenant,
        model,
        provider,
        operation,
        project,
        agent,
        user,
        api_key,
        region,
        node,
        source,
    )
    if combination not in _combinations:
        if not (
            known.issuperset((tenant, model, provider, operation))
            and known_or_none.issuperset((project, agent, user, api_key, region, node))
            and source in known_sources
        ):
            return None
        if len(_combinations) >= 65_536:  # high-cardinality ids (user_id): start over
            _combinations.clear()
        _combinations.add(combination)
    if not (
        version.__class__ is int
        and version == SCHEMA_VERSION
        and event_id.__class__ is str
        and len(event_id) <= 128
        and event_id.isascii()
        and (event_id.isalnum() or IDENT(event_id) is not None)
        and attributes.__class__ is dict
        and not attributes
    ):
        return None
    if when.__class__ is datetime and when.tzinfo is UTC:  # the SDK's datetime.now(UTC)
        since = when - EPOCH  # whole units in three small-int steps: ~1/3 cheaper than // ONE_MS
        ms = since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000
    elif when.__class__ is str and len(when) == 24 and when[19] == "." and when[23] == "Z":
        base_ms = seconds.get(when[:19])  # seconds of canonical times validated before
        frac = when[20:23]
        if base_ms is None or not (frac.isascii() and frac.isdigit()):
            return None
        ms = base_ms + int(frac)
    else:
        return None
    if not (
        earliest_ms <= ms <= latest_ms
        and inputs.__class__ is int
        and outputs.__class__ is int
        and reads.__class__ is int
        and creations.__class__ is int
        and reasoning.__class__ is int
        and reads >= 0
        and creations >= 0
        and reads + creations <= inputs <= MAX_TOKENS  # so inputs >= 0 too
        and 0 <= reasoning <= outputs <= MAX_TOKENS
    ):
        return None
    return tenant, (  # bulk.ROW_FIELDS order
        event_id,
        source,
        ms,
        model,
        provider,
        operation,
        inputs,
        outputs,
        reads,
        creations,
        reasoning,
        project,
        agent,
        user,
        api_key,
        region,
        node,
    )
