"""The contract's rules, once: per event (naming the broken field) and per column.

Two ways to apply the same rules, and no third:

- `check_fields` is the careful way, one event at a time: it returns the event's values
  as a `Row` (`ROW_FIELDS` order) or raises `InvalidEventError` naming the first field,
  in `UsageEvent` field order, that breaks a rule (then the first unknown key). It is
  also the SDK's `send` check (`quick_row`), so its common case is kept to set lookups.
- `checked_columns` is the fast way, over many events given as columns: a few C-level
  passes per column (`map`, `set`, one regex over the joined ids, a lookup of each
  time's second). It returns the columns or None, and on None the caller goes event
  by event with `check_fields`, which names the field. It accepts only what `check_fields` accepts.

The patterns, limits and time rules themselves live in `event.py`, where the public
pydantic model and the JSON Schemas read them too. Identifiers, sources and seconds
that passed their pattern are remembered in `_SEEN` (a `Seen`, private to this module),
so later events are proven valid with lookups instead of pattern matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from itertools import chain, compress, repeat
from operator import add, floordiv, is_, itemgetter, le, sub
from typing import Any

import orjson

from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.event import (
    ATTRIBUTE_KEY_PATTERN,
    ATTRIBUTE_VALUE_PATTERN,
    EPOCH,
    IDENTIFIER_PATTERN,
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_BYTES,
    MAX_TOKENS,
    ONE_MS,
    SCHEMA_VERSION,
    SOURCE_PATTERN,
    UsageEvent,
    parse_time,
    time_error,
    time_field,
    to_epoch_ms,
)

MISSING: Any = object()  # an absent required field: it fails its rule as "is required"
FIELDS = tuple(UsageEvent.model_fields)
OPTIONAL_IDS = ("project_id", "agent_id", "user_id", "api_key_id", "region", "node_id")
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
)
# One event's values in the order of EventColumns' list fields (the tenant and the
# attributes travel apart: the tenant is one per record, attributes are rare).
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
Row = tuple[Any, ...]
NO_ATTRIBUTES: dict[str, str] = {}  # shared, never mutated: copy before handing it out
IDENTITY = frozenset({"id", "source", "time"})  # in the CloudEvent, not in its data
DATA_FIELDS = frozenset(FIELDS) - IDENTITY
_FIELDS = frozenset(FIELDS)

IDENT = re.compile(IDENTIFIER_PATTERN[1:-1]).fullmatch
# Many identifiers joined with newlines (which no identifier holds), checked in one pass.
_IDS = re.compile(rf"{IDENTIFIER_PATTERN[1:-1]}(?:\n{IDENTIFIER_PATTERN[1:-1]})*").fullmatch
_SOURCE = re.compile(SOURCE_PATTERN[1:-1]).fullmatch
_ATTR_KEY = re.compile(ATTRIBUTE_KEY_PATTERN[1:-1]).fullmatch
_ATTR_VALUE = re.compile(ATTRIBUTE_VALUE_PATTERN[1:-1]).fullmatch
_INT = frozenset({int})
# A canonical time is its second (`Seen.seconds`' key) and one of these 1,000 tails.
_SECOND_OF = itemgetter(slice(0, 19))
_TAIL_OF = itemgetter(slice(19, None))
_MS_OF_TAIL = {f".{ms:03d}Z": ms for ms in range(1000)}


class Seen:
    """Values that already matched their pattern, so the next event with them is proven
    valid with a set lookup. Bounded: a set that reaches `limit` (high-cardinality ids,
    e.g. user_id) starts over. Only this module reads or changes it."""

    def __init__(self, limit: int = 65_536) -> None:
        self.limit = limit
        self.ids: set[str | None] = {"chat", None}  # None: an absent optional identifier
        self.sources: set[str] = set()
        self.seconds: dict[str, int] = {}  # 'YYYY-MM-DDTHH:MM:SS' of canonical times -> ms

    def learn_ids(self, *columns: Iterable[Any]) -> None:
        """Remember the identifiers of these columns that match IDENTIFIER_PATTERN, so a
        record with a new tenant or model still takes the fast way. Values that do not
        match stay unknown: the fast check fails on them and the careful way names the
        field. Raises TypeError on an unhashable value."""
        for column in columns:
            for value in set(column).difference(self.ids):
                if value.__class__ is str and IDENT(value) is not None:
                    self.remember(self.ids, value)

    def learn_sources(self, column: Iterable[Any]) -> None:
        """`learn_ids` for sources (SOURCE_PATTERN)."""
        for value in set(column).difference(self.sources):
            if value.__class__ is str and _SOURCE(value) is not None:
                self.remember(self.sources, value)

    def remember(self, known: set[Any], value: str) -> None:
        """Add a value that matched its pattern to `known` (`ids` or `sources`)."""
        if len(known) >= self.limit:
            known.clear()
            if known is self.ids:
                known.update(("chat", None))
        known.add(value)

    def second(self, text: str, ms: int) -> None:
        """Remember the second of a canonical time that passed the RFC 3339 rule."""
        if len(self.seconds) >= self.limit:
            self.seconds.clear()
        self.seconds[text[:19]] = ms - ms % 1000


_SEEN = Seen()


# -- one event, naming the broken field ----------------------------------------------


def check_fields(
    fields: Mapping[str, Any], earliest_ms: int, latest_ms: int
) -> tuple[str, Row, dict[str, str]]:
    """(tenant, row, attributes) of the event `UsageEvent(**fields)` would be, its time
    within [earliest_ms, latest_ms]; or `InvalidEventError` naming the first field, in
    model order, that breaks a rule, then the first key that is not a field. The
    attributes may be the shared `NO_ATTRIBUTES`: never mutate them."""
    if fields.__class__ is not dict:
        fields = dict(fields)
    if _FIELDS.issuperset(fields):
        return _checked(earliest_ms, latest_ms, **fields)
    checked = _checked(earliest_ms, latest_ms, **{k: v for k, v in fields.items() if k in _FIELDS})
    for key, value in fields.items():
        if key not in _FIELDS:
            raise InvalidEventError(str(key), value, "is not a field of UsageEvent")
    return checked  # unreachable: some key was not a field


def quick_row(fields: Any, earliest_ms: int, latest_ms: int) -> tuple[str, Row] | None:
    """(tenant, row) of a valid event without attributes given as a plain dict; None for
    anything else, which the caller then takes through `check_fields` (it names the
    broken field, or keeps the attributes). The SDK's `send` calls this per event."""
    if fields.__class__ is not dict or not _FIELDS.issuperset(fields):
        return None
    try:
        tenant, row, attributes = _checked(earliest_ms, latest_ms, **fields)
    except InvalidEventError:
        return None
    return None if attributes else (tenant, row)


def _checked(
    earliest_ms: int, latest_ms: int, /, *, schema_version: Any = SCHEMA_VERSION,
    id: Any = MISSING, source: Any = MISSING, time: Any = MISSING, tenant_id: Any = MISSING,
    project_id: Any = None, agent_id: Any = None, user_id: Any = None,
    api_key_id: Any = None, region: Any = None, node_id: Any = None,
    model: Any = MISSING, provider: Any = MISSING, operation: Any = "chat",
    input_tokens: Any = MISSING, output_tokens: Any = MISSING,
    cache_read_input_tokens: Any = 0, cache_creation_input_tokens: Any = 0,
    reasoning_output_tokens: Any = 0, attributes: Any = NO_ATTRIBUTES,
) -> tuple[str, Row, dict[str, str]]:  # fmt: skip
    """The rules in model order. The fields come as keyword arguments, each with its
    default, so one C-level call reads a whole event dict; a value already seen passes
    with one lookup and only a miss calls the rule that names it."""
    if schema_version.__class__ is not int or schema_version != SCHEMA_VERSION:
        raise InvalidEventError("schema_version", schema_version, "unknown schema_version")
    if not (
        id.__class__ is str
        and len(id) <= 128
        and id.isascii()
        and (id.isalnum() or IDENT(id) is not None)
    ):
        _identifier("id", id)
    if source.__class__ is not str or source not in _SEEN.sources:
        _source(source)
    if time.__class__ is datetime and time.tzinfo is UTC:  # the SDK's datetime.now(UTC)
        since = time - EPOCH  # whole units in small-int steps: cheaper than // ONE_MS
        ms = since.days * 86_400_000 + since.seconds * 1000 + since.microseconds // 1000
    else:
        ms = _time_ms(time)
    if not earliest_ms <= ms <= latest_ms:
        problem = time_error(ms, earliest_ms, latest_ms) or ""
        raise InvalidEventError(time_field(ms, latest_ms), time, problem)
    ids = _SEEN.ids  # holds None, which passes where the identifier is optional
    if not (
        (tenant_id.__class__ is str and tenant_id in ids)
        and (project_id is None or (project_id.__class__ is str and project_id in ids))
        and (agent_id is None or (agent_id.__class__ is str and agent_id in ids))
        and (user_id is None or (user_id.__class__ is str and user_id in ids))
        and (api_key_id is None or (api_key_id.__class__ is str and api_key_id in ids))
        and (region is None or (region.__class__ is str and region in ids))
        and (node_id is None or (node_id.__class__ is str and node_id in ids))
        and (model.__class__ is str and model in ids)
        and (provider.__class__ is str and provider in ids)
        and (operation.__class__ is str and operation in ids)
    ):
        _identifiers(
            ("tenant_id", tenant_id, True),
            ("project_id", project_id, False),
            ("agent_id", agent_id, False),
            ("user_id", user_id, False),
            ("api_key_id", api_key_id, False),
            ("region", region, False),
            ("node_id", node_id, False),
            ("model", model, True),
            ("provider", provider, True),
            ("operation", operation, True),
        )
    reads, creations = cache_read_input_tokens, cache_creation_input_tokens
    reasoning = reasoning_output_tokens
    if not (
        input_tokens.__class__ is int
        and output_tokens.__class__ is int
        and reads.__class__ is int
        and creations.__class__ is int
        and reasoning.__class__ is int
        and reads >= 0
        and creations >= 0
        and reads + creations <= input_tokens <= MAX_TOKENS  # so input_tokens >= 0 too
        and 0 <= reasoning <= output_tokens <= MAX_TOKENS
    ):
        _counts(input_tokens, output_tokens, reads, creations, reasoning)
    if attributes is not NO_ATTRIBUTES:
        attributes = _attributes(attributes)
    return tenant_id, (
        id, source, ms, model, provider, operation, input_tokens, output_tokens,
        reads, creations, reasoning,
        project_id, agent_id, user_id, api_key_id, region, node_id,
    ), attributes  # fmt: skip


def _identifier(name: str, value: Any) -> None:
    """The identifier rule for a value not seen yet: learn it, or raise naming `name`."""
    if value.__class__ is str:
        if IDENT(value) is None:
            raise InvalidEventError(name, value, "does not match " + IDENTIFIER_PATTERN)
        if name != "id":  # ids are unique per event: remembering them only evicts
            _SEEN.remember(_SEEN.ids, value)
        return
    if value is MISSING:
        raise InvalidEventError(name, None, "is required")
    raise InvalidEventError(name, value, "must be a string")


def _source(value: Any) -> None:
    if value.__class__ is str:
        if _SOURCE(value) is None:
            raise InvalidEventError("source", value, "does not match " + SOURCE_PATTERN)
        _SEEN.remember(_SEEN.sources, value)
        return
    if value is MISSING:
        raise InvalidEventError("source", None, "is required")
    raise InvalidEventError("source", value, "must be a string")


def _time_ms(value: Any) -> int:
    """Epoch ms of an RFC 3339 string or aware datetime (the time rule of `event.py`);
    a canonical string whose second was seen is read with one lookup."""
    if (
        value.__class__ is str
        and len(value) == 24
        and value[19] == "."
        and value[23] == "Z"
        and (base := _SEEN.seconds.get(value[:19])) is not None
        and value[20:23].isascii()
        and value[20:23].isdigit()
    ):
        return base + int(value[20:23])
    if value is MISSING:
        raise InvalidEventError("time", None, "is required")
    try:
        ms = to_epoch_ms(parse_time(value))
    except ValueError as exc:
        raise InvalidEventError("time", value, str(exc)) from None
    if value.__class__ is str and len(value) == 24 and value.endswith("Z") and value[19] == ".":
        _SEEN.second(value, ms)  # the canonical form, which parse_time just matched
    return ms


def _identifiers(*named: tuple[str, Any, bool]) -> None:
    """The identifier rule, in model order, for values not all seen yet: learns the
    valid ones and raises for the first broken one."""
    for name, value, required in named:
        if value is not None or required:
            _identifier(name, value)


def _counts(inputs: Any, outputs: Any, reads: Any, creations: Any, reasoning: Any) -> None:
    """Raises for the first broken token rule, in model order."""
    for name, value in (
        ("input_tokens", inputs),
        ("output_tokens", outputs),
        ("cache_read_input_tokens", reads),
        ("cache_creation_input_tokens", creations),
    ):
        _count(name, value)
    if reads + creations > inputs:
        raise InvalidEventError(
            "cache_creation_input_tokens", creations, "cache read + creation exceed input_tokens"
        )
    _count("reasoning_output_tokens", reasoning)
    if reasoning > outputs:
        raise InvalidEventError("reasoning_output_tokens", reasoning, "exceed output_tokens")


def _count(name: str, value: Any) -> None:
    """The token count rule: an integer from 0 to MAX_TOKENS."""
    if value.__class__ is int and 0 <= value <= MAX_TOKENS:
        return
    if value is MISSING:
        raise InvalidEventError(name, None, "is required")
    raise InvalidEventError(name, value, f"must be an integer from 0 to {MAX_TOKENS}")


def _attributes(value: Any) -> dict[str, str]:
    if value.__class__ is not dict:
        raise InvalidEventError("attributes", value, "must be an object of strings")
    if not value:
        return NO_ATTRIBUTES
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


# -- many events, column by column ----------------------------------------------------

Column = Callable[..., list[Any]]  # column(name, default=None): one field's values


def checked_columns(
    column: Column, n: int, earliest_ms: int, latest_ms: list[int], *, version_default: Any
) -> tuple[list[Any], list[Any]] | None:
    """The fast check of the rules over `n` events given as columns (`column(name,
    default)`, no attributes): (tenant column, the other `EventColumns` columns in
    `ROW_FIELDS` order), or None: go event by event with `check_fields`. Times are
    canonical strings or aware UTC datetimes; event i may be at most `latest_ms[i]`
    (each record is judged by its own event clock). `version_default` stands for an
    absent `schema_version` (None: it is required). Never raises."""
    try:
        return _checked_columns(column, n, earliest_ms, latest_ms, version_default)
    except (TypeError, ValueError, AttributeError, KeyError, InvalidEventError):
        return None  # unhashable, wrong type, impossible date...: the careful way decides


def _checked_columns(
    column: Column, n: int, earliest_ms: int, latest_ms: list[int], version_default: Any
) -> tuple[list[Any], list[Any]] | None:
    versions = column("schema_version", version_default)
    ids, sources, times = column("id"), column("source"), column("time")
    tenants, models, providers = column("tenant_id"), column("model"), column("provider")
    operations = column("operation", "chat")
    optional = [column(name) for name in OPTIONAL_IDS]
    if not (
        set(map(type, versions)) == _INT
        and set(versions) == {SCHEMA_VERSION}
        and _identifiers_valid(tenants, ids, sources, models, providers, operations, optional)
    ):
        return None
    kinds = set(map(type, times))
    if kinds == {str}:
        millis = _canonical_millis(times)
        if millis is None:
            return None
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
        _in_range(millis, tokens, earliest_ms, max(latest_ms))
        and (max(millis) <= min(latest_ms) or all(map(le, millis, latest_ms)))
    ):
        return None
    return tenants, [ids, sources, millis, models, providers, operations, *tokens, *optional]


def _canonical_millis(times: list[str]) -> list[int] | None:
    """Epoch ms of canonical times (YYYY-MM-DDTHH:MM:SS.mmmZ), or None if any is not one.
    Each time is its second, read with one lookup in `_SEEN.seconds`, plus its `.mmmZ`
    tail: a second not seen yet is learned first through the time rule (`_time_ms`, on
    the second's `.000Z`), so the rule runs once per distinct second, not per event.
    Raises InvalidEventError when a second breaks the rule (then the careful way names it)."""
    seconds = _SEEN.seconds
    try:  # every second seen and every tail canonical: one pass, no list in between
        return list(
            map(
                add,
                map(seconds.__getitem__, map(_SECOND_OF, times)),
                map(_MS_OF_TAIL.__getitem__, map(_TAIL_OF, times)),
            )
        )
    except KeyError:
        pass
    prefixes = list(map(_SECOND_OF, times))
    bases = list(map(seconds.get, prefixes))
    if None in bases:
        for prefix in set(compress(prefixes, map(is_, bases, repeat(None)))):
            _time_ms(prefix + ".000Z")  # learns the second (`Seen.second`), or raises
        bases = list(map(seconds.get, prefixes))
        if None in bases:  # `seconds` started over while learning: take the careful way
            return None
    fractions = list(map(_MS_OF_TAIL.get, map(_TAIL_OF, times)))
    if None in fractions:
        return None
    return list(map(add, bases, fractions))


def _identifiers_valid(
    tenants: Any, ids: list[Any], sources: list[Any], models: list[Any],
    providers: list[Any], operations: list[Any], optional: list[list[Any]],
) -> bool:  # fmt: skip
    """Whether every identifier and source of these columns matches its pattern (new ones
    are learned first) and the ids are all well-formed. Each column is made a set once:
    its values repeat (tenants, models, sources), so the checks run on few values."""
    required = [set(tenants), set(models), set(providers), set(operations)]
    distinct = [*required, *map(set, optional)]
    known, sources_known = _SEEN.ids, _SEEN.sources
    if not all(map(known.issuperset, distinct)):
        _SEEN.learn_ids(*distinct)
    source_set = set(sources)
    if not sources_known.issuperset(source_set):
        _SEEN.learn_sources(source_set)
    joined_ids = "\n".join(ids)
    return (
        all(map(known.issuperset, distinct))
        and not any(map(set.__contains__, required, repeat(None)))
        and sources_known.issuperset(source_set)
        and joined_ids.count("\n") == len(ids) - 1
        and _IDS(joined_ids) is not None
    )


def _in_range(millis: list[int], tokens: Any, earliest_ms: int, latest_ms: int) -> bool:
    """Whether the times are within bounds and the five token columns (`TOKEN_COLUMNS`
    order) hold integers within the contract's limits and cross-field rules."""
    inputs, outputs, reads, creations, reasonings = tokens
    return (
        earliest_ms <= min(millis)
        and max(millis) <= latest_ms
        and set(map(type, chain(*tokens))) == _INT
        and min(reads) >= 0  # inputs >= reads + creations and outputs >= reasonings,
        and min(creations) >= 0  # checked below, then are not negative either
        and min(reasonings) >= 0
        and max(inputs) <= MAX_TOKENS
        and max(outputs) <= MAX_TOKENS
        and all(map(le, map(add, reads, creations), inputs))
        and all(map(le, reasonings, outputs))
    )
