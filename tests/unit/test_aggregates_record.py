"""`window_totals_record` gives byte for byte the `WindowTotals` model's key and value,
region included; a record of the version before region still decodes, as region ''."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tokenops.schemas.aggregates import (
    COUNT_FIELDS,
    WindowTotals,
    window_key,
    window_totals_record,
)

identifiers = st.text(min_size=1, max_size=20).filter(lambda s: "|" not in s)
regions = st.one_of(st.just(""), identifiers)
counts = st.integers(min_value=0, max_value=2**62)


def _model(
    tenant_id: str,
    model: str,
    region: str,
    start: int,
    size: int,
    values: list[int],
    emitted: int,
) -> WindowTotals:
    return WindowTotals(
        tenant_id=tenant_id,
        model=model,
        region=region,
        window_start_ms=start,
        window_size_s=size,
        emitted_at_ms=emitted,
        **dict(zip(COUNT_FIELDS, values, strict=True)),
    )


@given(
    identifiers,
    identifiers,
    regions,
    counts,
    st.integers(min_value=1, max_value=86_400),
    st.lists(counts, min_size=8, max_size=8),
    st.integers(min_value=1, max_value=1000),
    counts,
)
def test_the_record_equals_the_models_bytes(
    tenant_id: str,
    model: str,
    region: str,
    start: int,
    size: int,
    values: list[int],
    revision: int,
    emitted: int,
) -> None:
    totals = [*values, revision]
    key, value = window_totals_record(tenant_id, model, region, start, size, totals, emitted)
    expected = _model(tenant_id, model, region, start, size, totals, emitted)
    assert key == expected.key.encode()
    assert value == expected.to_bytes()
    assert WindowTotals.from_bytes(value) == expected
    fields = key.decode().split("|")
    assert fields[:4] == [tenant_id, model, str(start), str(size)]
    assert fields[4:] == ([region] if region else [])


@pytest.mark.parametrize(
    ("start", "size", "values", "emitted"),
    [
        (0, 60, [-1, 0, 0, 0, 0, 1, 5, 5, 1], 1),  # negative tokens
        (0, 60, [0, 0, 0, 0, 0, 1, 5, 5, 0], 1),  # revision 0
        (-60_000, 60, [0, 0, 0, 0, 0, 1, 5, 5, 1], 1),  # negative window start
        (0, 0, [0, 0, 0, 0, 0, 1, 5, 5, 1], 1),  # empty window
        (0, 60, [0, 0, 0, 0, 0, 1, 5, 5, 1], -1),  # negative emission time
    ],
)
def test_values_the_model_refuses_raise_as_before(
    start: int, size: int, values: list[int], emitted: int
) -> None:
    with pytest.raises(ValidationError):
        window_totals_record("t", "m", "west", start, size, values, emitted)


# A record as the version before region wrote it (no `region` field), from its code.
_BEFORE_REGION = (
    b"tenant-1|gpt-x|1750000020000|60",
    b'{"schema_version":1,"tenant_id":"tenant-1","model":"gpt-x",'
    b'"window_start_ms":1750000020000,"window_size_s":60,"input_tokens":10,'
    b'"output_tokens":5,"cache_read_input_tokens":1,"cache_creation_input_tokens":0,'
    b'"reasoning_output_tokens":2,"event_count":3,"first_event_time_ms":1750000020001,'
    b'"last_event_time_ms":1750000079999,"revision":1,"emitted_at_ms":1750000090000}',
)


def test_a_record_of_the_version_before_region_decodes_as_region_empty() -> None:
    key, value = _BEFORE_REGION
    totals = WindowTotals.from_bytes(value)
    assert totals.region == ""
    assert totals.key.encode() == key
    # and a region-less window is written byte for byte as before: compaction keeps
    # replacing the windows an upgraded worker re-emits, and older readers read them
    counts = [10, 5, 1, 0, 2, 3, 1750000020001, 1750000079999, 1]
    assert window_totals_record(
        "tenant-1", "gpt-x", "", 1750000020000, 60, counts, 1750000090000
    ) == (
        key,
        value,
    )


def test_two_regions_of_one_window_are_two_keys() -> None:
    keys = {window_key("t", "m", 0, 60, region) for region in ("", "west", "east")}
    assert keys == {"t|m|0|60", "t|m|0|60|west", "t|m|0|60|east"}
    _, value = window_totals_record("t", "m", "west", 0, 60, [0] * 8 + [1], 0)
    assert orjson.loads(value)["region"] == "west"
    assert WindowTotals.from_bytes(value).region == "west"
