"""The contract's rules without pydantic: the stream worker's decoder and the SDK's hot path.

`validate_fields` accepts and rejects exactly what `UsageEvent.model_validate` does (a
hypothesis test compares them on valid and mutated events) and names the same field, at
a fraction of the cost: identifiers seen before are looked up in a bounded set instead of
matched again, and the model is built without re-validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    to_epoch_ms,
)

MISSING: Any = object()
FIELDS = tuple(UsageEvent.model_fields)
_OPTIONAL_IDS = ("project_id", "agent_id", "user_id", "api_key_id", "region", "node_id")
_TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens")
_DATA_FIELDS = frozenset(FIELDS) - {"id", "source", "time"}
_IDENT = re.compile(IDENTIFIER_PATTERN[1:-1]).fullmatch
_SOURCE = re.compile(SOURCE_PATTERN[1:-1]).fullmatch
_ATTR_KEY = re.compile(ATTRIBUTE_KEY_PATTERN[1:-1]).fullmatch
_ATTR_VALUE = re.compile(ATTRIBUTE_VALUE_PATTERN[1:-1]).fullmatch
_CACHE_LIMIT = 65_536
_known: set[str] = {"chat"}  # identifiers that already matched IDENTIFIER_PATTERN
_sources: set[str] = set()  # sources that already matched SOURCE_PATTERN
_seconds: dict[str, int] = {}  # 'YYYY-MM-DDTHH:MM:SS' of canonical times seen -> epoch ms
_ONE = SCHEMA_VERSION
_new = object.__new__
_set = object.__setattr__
_ALL_SET = set(FIELDS)


def _ident(name: str, value: Any, pattern: Any = _IDENT, cache: set[str] | None = _known) -> str:
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


def _remember(cache: set[str], value: str) -> None:
    if len(cache) >= _CACHE_LIMIT:  # high-cardinality ids (user_id): start over
        cache.clear()
        cache.add("chat")
    cache.add(value)


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
    try:
        event = _quick(data, event_id, source, when, earliest_ms, latest_ms)
    except (TypeError, AttributeError, ValueError):  # e.g. an unhashable value: not quick
        event = None
    if event is None:
        event = _careful(data, event_id, source, when, earliest_ms, latest_ms)
    return event


def _quick(
    data: Mapping[str, Any],
    event_id: Any,
    source: Any,
    when: Any,
    earliest_ms: int,
    latest_ms: int,
) -> UsageEvent | None:
    """The common valid event, proven valid with set lookups; None means "ask _careful".

    Every identifier must already be in `_known` (put there by `_careful` after its
    pattern matched), the time must be canonical (`2026-01-31T12:00:00.000Z`) with its
    second already seen, and the keys a subset of the fields. Anything else, valid or
    not, goes the careful way, which names the broken field.
    """
    known = _known
    get = data.get
    tenant, model, provider = get("tenant_id"), get("model"), get("provider")
    operation = get("operation", "chat")
    project, agent, user = get("project_id"), get("agent_id"), get("user_id")
    key, region, node = get("api_key_id"), get("region"), get("node_id")
    if not (
        get("schema_version", _ONE) is _ONE
        and tenant in known
        and model in known
        and provider in known
        and operation in known
        and source in _sources
        and (project is None or project in known)
        and (agent is None or agent in known)
        and (user is None or user in known)
        and (key is None or key in known)
        and (region is None or region in known)
        and (node is None or node in known)
        and event_id.__class__ is str
        and len(event_id) <= 128
        and event_id.isascii()
        and (event_id.isalnum() or _IDENT(event_id) is not None)
        and data.keys() <= _DATA_FIELDS
        and when.__class__ is str
        and len(when) == 24
        and when[23] == "Z"
        and when[19] == "."
    ):
        return None
    base_ms = _seconds.get(when[:19])
    frac = when[20:23]
    if base_ms is None or not (frac.isascii() and frac.isdigit()):
        return None
    ms = base_ms + int(frac)
    i, o = get("input_tokens"), get("output_tokens")
    cr, cc = get("cache_read_input_tokens", 0), get("cache_creation_input_tokens", 0)
    r = get("reasoning_output_tokens", 0)
    attributes = get("attributes", MISSING)
    if not (
        earliest_ms <= ms <= latest_ms
        and i.__class__ is o.__class__ is cr.__class__ is cc.__class__ is r.__class__ is int
        and 0 <= i <= MAX_TOKENS
        and 0 <= o <= MAX_TOKENS
        and cr >= 0
        and cc >= 0
        and cr + cc <= i
        and 0 <= r <= o
        and (attributes is MISSING or (attributes.__class__ is dict and not attributes))
    ):
        return None
    event: UsageEvent = _new(UsageEvent)
    _set(
        event,
        "__dict__",
        {
            "schema_version": SCHEMA_VERSION,
            "id": event_id,
            "source": source,
            "time": datetime.fromisoformat(when),
            "tenant_id": tenant,
            "project_id": project,
            "agent_id": agent,
            "user_id": user,
            "api_key_id": key,
            "region": region,
            "node_id": node,
            "model": model,
            "provider": provider,
            "operation": operation,
            "input_tokens": i,
            "output_tokens": o,
            "cache_read_input_tokens": cr,
            "cache_creation_input_tokens": cc,
            "reasoning_output_tokens": r,
            "attributes": {},
            "time_ms": ms,
        },
    )
    _set(event, "__pydantic_fields_set__", _ALL_SET)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def _careful(
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
    out["source"] = _ident("source", source, _SOURCE, _sources)
    if when is MISSING:
        raise InvalidEventError("time", None, "is required")
    try:
        moment: datetime = parse_time(when)
    except ValueError as exc:
        raise InvalidEventError("time", when, str(exc)) from None
    ms = to_epoch_ms(moment)
    if not earliest_ms <= ms <= latest_ms:
        raise InvalidEventError("time", when, time_error(ms, earliest_ms, latest_ms) or "")
    out["time"] = moment
    if when.__class__ is str and len(when) == 24 and when.endswith("Z") and when[19] == ".":
        if len(_seconds) >= _CACHE_LIMIT:
            _seconds.clear()
        _seconds[when[:19]] = ms - ms % 1000  # the canonical form matched RFC3339 above
    out["tenant_id"] = _ident("tenant_id", get("tenant_id", MISSING))
    for name in _OPTIONAL_IDS:
        value = get(name)
        out[name] = None if value is None else _ident(name, value)
    out["model"] = _ident("model", get("model", MISSING))
    out["provider"] = _ident("provider", get("provider", MISSING))
    operation = get("operation", MISSING)
    out["operation"] = "chat" if operation is MISSING else _ident("operation", operation)
    out["input_tokens"] = total_in = _count("input_tokens", get("input_tokens", MISSING))
    out["output_tokens"] = total_out = _count("output_tokens", get("output_tokens", MISSING))
    read = out["cache_read_input_tokens"] = _count(_TOKENS[2], get(_TOKENS[2], 0))
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
    if not data.keys() <= _DATA_FIELDS:
        for key in data:
            if key not in _DATA_FIELDS:
                raise InvalidEventError(str(key), data[key], "is not a field of UsageEvent")
    out["time_ms"] = ms  # fills the cached_property
    event: UsageEvent = _new(UsageEvent)
    _set(event, "__dict__", out)
    _set(event, "__pydantic_fields_set__", _ALL_SET)
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def build_event(
    fields: Mapping[str, Any], *, max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S
) -> UsageEvent:
    """`UsageEvent(**fields)` at a fraction of the cost; same rules, same errors."""
    data = dict(fields)
    event_id, source = data.pop("id", MISSING), data.pop("source", MISSING)
    when = data.pop("time", MISSING)
    earliest, latest = time_bounds_ms({"max_future_skew_s": max_future_skew_s})
    return validate_fields(data, event_id, source, when, earliest, latest)
