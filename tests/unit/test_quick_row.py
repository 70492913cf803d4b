"""`quick_row`, the SDK's per-event check, against the careful path.

Whatever shape an event's dict has, and in whatever order shapes come, `quick_row`
either proves the event valid and returns exactly the row the careful path makes of it,
or returns None and leaves the decision to `validate_fields`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_event_contract import NOW_MS, SKEW_S, junk, valid_fields
from tokenops.schemas import InvalidEventError, UsageEvent
from tokenops.schemas.bulk import event_row, fields_row
from tokenops.schemas.quick import quick_row

EARLIEST_MS = 1_577_836_800_000  # 2020-01-01
LATEST_MS = NOW_MS + int(SKEW_S * 1000)


def careful(fields: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    tenant, row, _ = event_row(UsageEvent(**fields))
    return tenant, row


def valid_shapes(fields: dict[str, Any], drop: list[bool]) -> dict[str, Any]:
    """The fields without some of the optional ones that hold their default."""
    optional = {
        "operation": "chat",
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "reasoning_output_tokens": 0,
        "project_id": None,
        "agent_id": None,
        "user_id": None,
        "api_key_id": None,
        "region": None,
        "node_id": None,
        "attributes": {},
        "schema_version": 1,
    }
    kept = dict(fields)
    for (name, default), gone in zip(optional.items(), drop, strict=False):
        if gone and kept.get(name, default) == default:
            kept.pop(name, None)
        elif not gone and name not in kept:
            kept[name] = default
    return kept


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(valid_fields(), st.lists(st.booleans(), min_size=12, max_size=12)),
        min_size=1,
        max_size=12,
    ),
)
def test_any_sequence_of_shapes_gives_the_careful_rows(
    events: list[tuple[dict[str, Any], list[bool]]],
) -> None:
    """Shapes of the same size and of other sizes, in any order: every event read by
    a quick reader is the careful path's row; once learned, a common event is quick."""
    for fields, drop in events:
        shaped = valid_shapes(fields, drop)
        expected = careful(shaped)
        assert fields_row(shaped, EARLIEST_MS, LATEST_MS)[:2] == expected
        found = quick_row(shaped, EARLIEST_MS, LATEST_MS)
        assert found is None or found == expected
        if not shaped.get("attributes"):  # identifiers learned by fields_row above
            assert quick_row(shaped, EARLIEST_MS, LATEST_MS) == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_fields(), st.sampled_from(["input_tokens", "id", "time", "model", "x"]), junk)
def test_a_broken_field_is_never_quick(fields: dict[str, Any], name: str, value: Any) -> None:
    """After the valid event taught the reader its shape, the same shape with one
    broken value is not quick; the careful path rejects it (which field it names is
    test_event_contract's business)."""
    fields_row(fields, EARLIEST_MS, LATEST_MS)
    broken = {**fields, name: value}
    try:
        expected: Any = careful(broken)
    except Exception:
        expected = None
    try:
        found = quick_row(broken, EARLIEST_MS, LATEST_MS)
    except TypeError:  # an unhashable value: callers take the careful path
        found = None
    assert found is None or found == expected
    if expected is None:
        assert found is None
        with pytest.raises(InvalidEventError):
            fields_row(broken, EARLIEST_MS, LATEST_MS)


def common(i: int) -> dict[str, Any]:
    return {
        "id": f"evt-{i}",
        "source": "//node/us-east-1/gpu-17",
        "time": "2026-06-01T12:05:00.001Z",
        "tenant_id": "acme",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 10,
        "output_tokens": 5,
    }


def test_dict_subclasses_and_unknown_keys_go_the_careful_way() -> None:
    fields_row(common(0), EARLIEST_MS, 10**15)
    answering: defaultdict[str, Any] = defaultdict(int, common(1))
    assert quick_row(answering, EARLIEST_MS, 10**15) is None
    assert "cache_read_input_tokens" not in answering  # nothing was read by default
    unknown = {**common(2), "input_token": 3}
    assert quick_row(unknown, EARLIEST_MS, 10**15) is None
    with pytest.raises(InvalidEventError) as info:
        fields_row(unknown, EARLIEST_MS, 10**15)
    assert info.value.field == "input_token"
