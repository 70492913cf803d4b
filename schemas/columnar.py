"""The contract's rules column by column, in C loops: the fast path of every decoder.

`checked_columns` is the one fast check, over events given as columns: the CloudEvents
of a record or of many one-event records (`quick_cloudevents`), a v2 batch's columns and
the SDK's `send_many` all go through it. It returns the columns, or None: the caller
goes event by event, which names the broken field. It accepts only what every per-event
rule accepts: identifiers already seen by the careful path, canonical times, no
attributes, every field in range; hypothesis tests check it against the careful path.
Each check runs over a whole column with `map`, `set` and `re` (one regex pass over the
joined ids and times), so the interpreter runs a few dozen bytecodes per batch instead
of per event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import repeat
from operator import add, eq, floordiv, itemgetter, le, sub
from typing import Any

from tokenops.schemas.event import EPOCH, MAX_TOKENS, ONE_MS, SCHEMA_VERSION
from tokenops.schemas.validate import FIELDS, IDS, known, known_or_none, learn, learn_sources
from tokenops.schemas.validate import sources as known_sources
from tokenops.schemas.wire import EVENT_TYPE

_CORE = frozenset({"specversion", "type", "source", "id", "time", "data"})
_IDENTITY = frozenset({"id", "source", "time"})
_DATA_FIELDS = frozenset(FIELDS) - {"id", "source", "time"}
# Canonical times YYYY-MM-DDTHH:MM:SS.mmmZ (ASCII digits only), joined: one regex pass.
_CANONICAL_TIMES = re.compile(
    r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)+"
).fullmatch
_OPTIONAL = ("project_id", "agent_id", "user_id", "api_key_id", "region", "node_id")
_INT = frozenset({int})
_DICT = frozenset({dict})


def quick_cloudevents(
    items: list[Any], earliest_ms: int, latest_ms: list[int]
) -> tuple[list[Any], list[Any]] | None:
    """(tenant column, the other `EventColumns` columns in field order) of these decoded
    CloudEvents, of any tenants, event i at most `latest_ms[i]`; or None: decode them one
    by one, which names the broken field. One record's events, or one event of each of
    many single-event records: either way one pass per column."""
    try:
        return _quick_cloudevents(items, earliest_ms, latest_ms)
    except (TypeError, ValueError, AttributeError, KeyError):
        return None  # unhashable, wrong type, impossible date...: the careful way decides


def _quick_cloudevents(
    items: list[Any], earliest_ms: int, latest_ms: list[int]
) -> tuple[list[Any], list[Any]] | None:
    n = len(items)
    if not all(map(eq, map(dict.keys, items), repeat(_CORE, n))):
        return None
    datas = list(map(itemgetter("data"), items))
    if not (
        set(map(itemgetter("specversion"), items)) == {"1.0"}
        and set(map(itemgetter("type"), items)) == {EVENT_TYPE}
        and set(map(type, datas)) == _DICT
        and all(map(_DATA_FIELDS.issuperset, datas))
        and not any(map(dict.__contains__, datas, repeat("attributes", n)))
    ):
        return None

    def column(name: str, default: Any = None) -> list[Any]:
        if name in _IDENTITY:  # in the CloudEvent, not in its data
            return list(map(itemgetter(name), items))
        return list(map(dict.get, datas, repeat(name, n), repeat(default, n)))

    checked = checked_columns(column, n, earliest_ms, latest_ms, version_default=None)
    return None if checked is None else checked[:2]


Column = Callable[..., list[Any]]  # column(name, default=None): one field's values


def checked_columns(
    column: Column, n: int, earliest_ms: int, latest_ms: list[int], *, version_default: Any
) -> tuple[list[Any], list[Any], list[Any]] | None:
    """The one fast check of the contract's rules, over `n` events given as columns
    (`column(name, default)`, no attributes): (tenant column, the other `EventColumns`
    columns in field order, the times as given), or None: the careful path decides.
    Times are canonical strings or aware UTC datetimes; event i may be at most
    `latest_ms[i]` (each record is judged by its own event clock). `version_default`
    stands for an absent `schema_version` (None: it is required)."""
    versions = column("schema_version", version_default)
    ids, sources, times = column("id"), column("source"), column("time")
    tenants, models, providers = column("tenant_id"), column("model"), column("provider")
    operations = column("operation", "chat")
    optional = [column(name) for name in _OPTIONAL]
    if not (
        set(map(type, versions)) == _INT
        and set(versions) == {SCHEMA_VERSION}
        and identifiers_known(tenants, ids, sources, models, providers, operations, optional)
    ):
        return None
    kinds = set(map(type, times))
    if kinds == {str} and set(map(len, times)) == {24} and canonical_times("".join(times)):
        millis = times_ms(times, n)  # ValueError on an impossible date (2026-02-30)
    elif kinds == {datetime} and {t.tzinfo for t in times} == {UTC}:  # the SDK's own
        millis = list(map(floordiv, map(sub, times, repeat(EPOCH, n)), repeat(ONE_MS, n)))
    else:
        return None
    tokens = [
        column("input_tokens"),
        column("output_tokens"),
        column("cache_read_input_tokens", 0),
        column("cache_creation_input_tokens", 0),
        column("reasoning_output_tokens", 0),
    ]
    if not (
        in_range(millis, tokens, earliest_ms, max(latest_ms))
        and (max(millis) <= min(latest_ms) or all(map(le, millis, latest_ms)))
    ):
        return None
    return tenants, [ids, sources, millis, models, providers, operations, *tokens, *optional], times


def canonical_times(joined: str) -> bool:
    """Whether 24-character times, joined, are all `YYYY-MM-DDTHH:MM:SS.mmmZ`: one regex
    pass in C over the whole batch (3x cheaper than slicing by position)."""
    return _CANONICAL_TIMES(joined) is not None


def times_ms(times: list[str], n: int) -> list[int]:
    """Epoch ms of canonical times; ValueError on an impossible date (2026-02-30)."""
    moments = map(datetime.fromisoformat, times)
    return list(map(floordiv, map(sub, moments, repeat(EPOCH, n)), repeat(ONE_MS, n)))


def identifiers_known(
    tenants: Any, ids: list[Any], sources: list[Any], models: list[Any],
    providers: list[Any], operations: list[Any], optional: list[list[Any]],
) -> bool:  # fmt: skip
    """Whether every identifier and source of these columns matches its pattern (new ones
    are learned first, see `validate.learn`) and the ids are all well-formed."""
    learn(tenants, models, providers, operations, *optional)
    learn_sources(sources)
    joined_ids = "\n".join(ids)
    return (
        known.issuperset(tenants)
        and known.issuperset(models)
        and known.issuperset(providers)
        and known.issuperset(operations)
        and all(map(known_or_none.issuperset, optional))
        and known_sources.issuperset(sources)
        and joined_ids.count("\n") == len(ids) - 1
        and IDS(joined_ids) is not None
    )


def in_range(millis: list[int], tokens: Any, earliest_ms: int, latest_ms: int) -> bool:
    """Whether the times are within bounds and the five token columns (`TOKEN_TYPES`
    order) hold integers within the contract's limits and cross-field rules."""
    inputs, outputs, reads, creations, reasonings = tokens
    return (
        earliest_ms <= min(millis)
        and max(millis) <= latest_ms
        and all(_INT.issuperset(map(type, c)) for c in tokens)
        and min(map(min, tokens)) >= 0
        and max(inputs) <= MAX_TOKENS
        and max(outputs) <= MAX_TOKENS
        and all(map(le, map(add, reads, creations), inputs))
        and all(map(le, reasonings, outputs))
    )
