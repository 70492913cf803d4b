"""`quick_row`: one event's fields proven valid with a few lookups, `send`'s per-event cost.

`checked_row` takes the fields as keyword arguments, each with its default, so
`checked_row(earliest_ms, latest_ms, **fields)` reads a whole event dict in one C-level
call: no per-field lookups, no merged dict. A key that is not a field never gets there
(`quick_row` checks the keys first). The rules are those of `validate.validate_fields`
for the common shape; anything else returns None and the careful path decides, naming
the broken field.
"""

from __future__ import annotations

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
NO_ATTRIBUTES: dict[str, str] = {}
# Every field with its default; MISSING for a required one, which then fails its check.
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
# Identifier combinations (tenant ... node, source) whose every identifier was known.
_combinations: set[tuple[Any, ...]] = set()


def quick_row(fields: Any, earliest_ms: int, latest_ms: int) -> tuple[str, Row] | None:
    """(tenant, row) of a common valid event, proven valid with lookups; None: ask
    `validate_fields`, which decides (and names the broken field). Raises TypeError on
    an unhashable value, which callers treat as None. Anything may be passed, but only
    plain dicts of fields are read (a subclass may answer a missing key)."""
    if fields.__class__ is not dict or not _FIELDS.issuperset(fields):
        return None
    return checked_row(earliest_ms, latest_ms, **fields)


def checked_row(
    earliest_ms: int, latest_ms: int, /, *, schema_version: Any = SCHEMA_VERSION,
    tenant_id: Any = MISSING, id: Any = MISSING, source: Any = MISSING, time: Any = MISSING,
    model: Any = MISSING, provider: Any = MISSING, operation: Any = "chat",
    input_tokens: Any = MISSING, output_tokens: Any = MISSING,
    cache_read_input_tokens: Any = 0, cache_creation_input_tokens: Any = 0,
    reasoning_output_tokens: Any = 0, project_id: Any = None, agent_id: Any = None,
    user_id: Any = None, api_key_id: Any = None, region: Any = None, node_id: Any = None,
    attributes: Any = NO_ATTRIBUTES,
) -> tuple[str, Row] | None:  # fmt: skip
    """(tenant, row) of an event's fields if the quick rules prove them valid: every
    identifier already in `known`, the source in `sources`, an aware UTC datetime or a
    canonical time whose second was seen, no attributes; else None."""
    version, tenant, event_id, when = schema_version, tenant_id, id, time
    inputs, outputs = input_tokens, output_tokens
    reads, creations = cache_read_input_tokens, cache_creation_input_tokens
    reasoning = reasoning_output_tokens
    project, agent, user, api_key, region_, node = (
        project_id, agent_id, user_id, api_key_id, region, node_id
    )  # fmt: skip
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
        region_,
        node,
        source,
    )
    if combination not in _combinations:
        if not (
            known.issuperset((tenant, model, provider, operation))
            and known_or_none.issuperset((project, agent, user, api_key, region_, node))
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
        region_,
        node,
    )
