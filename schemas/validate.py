"""The contract's rules one field at a time, without pydantic, naming the broken field.

`validate_fields` accepts and rejects exactly what `UsageEvent.model_validate` does (a
hypothesis test compares them on valid and mutated events) and names the same field.
Identifiers and sources that pass their pattern are remembered in bounded sets, which
the fast checks (`columnar.py`, `quick.py`) use to prove later events valid with
lookups instead of pattern matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    ATTRIBUTE_KEY_PATTERN,
    ATTRIBUTE_VALUE_PATTERN,
    DEFAULT_MAX_FUTURE_SKEW_S,
    IDENTIFIER_PATTERN,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_TOKENS,
    SCHEMA_VERSION,
    SOURCE_PATTERN,
    UsageEvent,
    parse_time,
    time_bounds_ms,
    time_error,
    time_field,
    to_epoch_ms,
)

MISSING: Any = object()
FIELDS = tuple(UsageEvent.model_fields)
OPTIONAL_IDS = ("project_id", "agent_id", "user_id", "api_key_id", "region", "node_id")
DATA_FIELDS = frozenset(FIELDS) - {"id", "source", "time"}
IDENT = re.compile(IDENTIFIER_PATTERN[1:-1]).fullmatch
# Many identifiers joined with newlines (which no identifier holds), checked in one pass.
IDS = re.compile(rf"{IDENTIFIER_PATTERN[1:-1]}(?:\n{IDENTIFIER_PATTERN[1:-1]})*").fullmatch
_SOURCE = re.compile(SOURCE_PATTERN[1:-1]).fullmatch
_ATTR_KEY = re.compile(ATTRIBUTE_KEY_PATTERN[1:-1]).fullmatch
_ATTR_VALUE = re.compile(ATTRIBUTE_VALUE_PATTERN[1:-1]).fullmatch
_CACHE_LIMIT = 65_536
known: set[str] = {"chat"}  # identifiers that already matched IDENTIFIER_PATTERN
known_or_none: set[str | None] = {"chat", None}  # the same, plus None (optional ids)
sources: set[str] = set()  # sources that already matched SOURCE_PATTERN
seconds: dict[str, int] = {}  # 'YYYY-MM-DDTHH:MM:SS' of canonical times seen -> epoch ms
_new = object.__new__
_set = object.__setattr__
_ALL_SET = set(FIELDS)


def _ident(name: str, value: Any, pattern: Any = IDENT, cache: set[str] | None = known) -> str:
    if value.__class__ is str:
        if cache is not None and value in cache:
            return value
        if pattern(value) is not None:
            if cache is not None:
                _remember(cache, value)
            return value
        raise InvalidEventError(name, value, "does not match " + pattern.__self__.pattern)
    if value is MISSING:
        raise InvalidEventError(name, None, "is required")
    raise InvalidEventError(name, value, "must be a string")


def learn(*columns: Iterable[Any]) -> None:
    """Remember the identifiers of these columns that match IDENTIFIER_PATTERN and are
    not known yet, so a record with a new tenant or model still takes the quick path.
    Values that do not match stay unknown: the quick check fails on them and the careful
    path names the field. Raises TypeError on an unhashable value (callers fall back)."""
    for column in columns:
        for value in set(column).difference(known):
            if value.__class__ is str and IDENT(value) is not None:
                _remember(known, value)


def learn_sources(column: Iterable[Any]) -> None:
    """`learn` for sources (SOURCE_PATTERN)."""
    for value in set(column).difference(sources):
        if value.__class__ is str and _SOURCE(value) is not None:
            _remember(sources, value)


def _remember(cache: set[str], value: str) -> None:
    if len(cache) >= _CACHE_LIMIT:  # high-cardinality ids (user_id): start over
        cache.clear()
        cache.add("chat")
        if cache is known:
            known_or_none.clear()
            known_or_none.update(("chat", None))
    cache.add(value)
    if cache is known:
        known_or_none.add(value)


def _count(name: str, value: Any) -> int:
    if value.__class__ is int and 0 <= value <= MAX_TOKENS:
        return value
    if value is MISSING:
        raise InvalidEventError(name, None, "is required")
    raise InvalidEventError(name, value, f"must be an integer from 0 to {MAX_TOKENS}")


def _attributes(value: Any) -> dict[str, str]:
    if value.__class__ is not dict:
        raise InvalidEventError("attributes", value, "must be an object of strings")
    if not value:
        return {}
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidEventError("attributes", value, f"has more than {MAX_ATTRIBUTES} entries")
    for key, item in value.items():
        if key.__class__ is not str or _ATTR_KEY(key) is None:
            raise InvalidEventError("attributes", key, "key must match " + ATTRIBUTE_KEY_PATTERN)
        if item.__class__ is not str or _ATTR_VALUE(item) is None:
            raise InvalidEventError("attributes", item, "value: at most 256 printable chars")
    if len(orjson.dumps(value)) > MAX_ATTRIBUTES_BYTES:
        raise InvalidEventError("attributes", value, f"exceed {MAX_ATTRIBUTES_BYTES} bytes")
    return dict(value)


def model_of(fields: dict[str, Any]) -> UsageEvent:
    """The model holding these already validated fields, as pydantic would build it."""
    event: UsageEvent = _new(UsageEvent)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", _ALL_SET)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def validate_fields(
    data: Mapping[str, Any],
    event_id: Any,
    source: Any,
    when: Any,
    earliest_ms: int,
    latest_ms: int,
) -> UsageEvent:
    """The `UsageEvent` of these fields; `data` holds every field but id, source and time.

    Pass `MISSING` for an absent id, source or time. Raises `InvalidEventError` naming the
    first field, in model order, that breaks a rule (then the first unknown key).
    """
    get = data.get
    version = get("schema_version", SCHEMA_VERSION)
    if version.__class__ is not int or version != SCHEMA_VERSION:
        raise InvalidEventError("schema_version", version, "unknown schema_version")
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    out["id"] = _ident("id", event_id, cache=None)
    out["source"] = _ident("source", source, _SOURCE, sources)
    if when is MISSING:
        raise InvalidEventError("time", None, "is required")
    try:
        moment: datetime = parse_time(when)
    except ValueError as exc:
        raise InvalidEventError("time", when, str(exc)) from None
    ms = to_epoch_ms(moment)
    if not earliest_ms <= ms <= latest_ms:
        problem = time_error(ms, earliest_ms, latest_ms) or ""
        raise InvalidEventError(time_field(ms, latest_ms), when, problem)
    out["time"] = moment
    if when.__class__ is str and len(when) == 24 and when.endswith("Z") and when[19] == ".":
        if len(seconds) >= _CACHE_LIMIT:
            seconds.clear()
        seconds[when[:19]] = ms - ms % 1000  # the canonical form matched RFC3339 above
    out["tenant_id"] = _ident("tenant_id", get("tenant_id", MISSING))
    for name in OPTIONAL_IDS:
        value = get(name)
        out[name] = None if value is None else _ident(name, value)
    out["model"] = _ident("model", get("model", MISSING))
    out["provider"] = _ident("provider", get("provider", MISSING))
    operation = get("operation", MISSING)
    out["operation"] = "chat" if operation is MISSING else _ident("operation", operation)
    out["input_tokens"] = total_in = _count("input_tokens", get("input_tokens", MISSING))
    out["output_tokens"] = total_out = _count("output_tokens", get("output_tokens", MISSING))
    read = _count("cache_read_input_tokens", get("cache_read_input_tokens", 0))
    out["cache_read_input_tokens"] = read
    created = _count("cache_creation_input_tokens", get("cache_creation_input_tokens", 0))
    if read + created > total_in:
        raise InvalidEventError(
            "cache_creation_input_tokens", created, "cache read + creation exceed input_tokens"
        )
    out["cache_creation_input_tokens"] = created
    reasoning = _count("reasoning_output_tokens", get("reasoning_output_tokens", 0))
    if reasoning > total_out:
        raise InvalidEventError("reasoning_output_tokens", reasoning, "exceed output_tokens")
    out["reasoning_output_tokens"] = reasoning
    attributes = get("attributes", MISSING)
    out["attributes"] = {} if attributes is MISSING else _attributes(attributes)
    if not data.keys() <= DATA_FIELDS:
        for key in data:
            if key not in DATA_FIELDS:
                raise InvalidEventError(str(key), data[key], "is not a field of UsageEvent")
    out["time_ms"] = ms  # fills UsageEvent's cached_property
    return model_of(out)


def build_event(
    fields: Mapping[str, Any], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> UsageEvent:
    """`UsageEvent(**fields)` without pydantic: the same rules, the same errors."""
    data = dict(fields)
    data.setdefault("schema_version", SCHEMA_VERSION)
    event_id, source = data.pop("id", MISSING), data.pop("source", MISSING)
    when = data.pop("time", MISSING)
    earliest, latest = time_bounds_ms({"max_future_skew_s": max_future_skew_s})
    return validate_fields(data, event_id, source, when, earliest, latest)
