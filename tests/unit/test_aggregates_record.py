"""`window_totals_record` gives byte for byte the `WindowTotals` model's key and value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tokenops.schemas.aggregates import COUNT_FIELDS, WindowTotals, window_totals_record

identifiers = st.text(min_size=1, max_size=20).filter(lambda s: "|" not in s)
counts = st.integers(min_value=0, max_value=2**62)


def _model(
    tenant_id: str, model: str, start: int, size: int, values: list[int], emitted: int
) -> WindowTotals:
    return WindowTotals(
        tenant_id=tenant_id,
        model=model,
        window_start_ms=start,
        window_size_s=size,
        emitted_at_ms=emitted,
        **dict(zip(COUNT_FIELDS, values, strict=True)),
    )


@given(
    identifiers,
    identifiers,
    counts,
    st.integers(min_value=1, max_value=86_400),
    st.lists(counts, min_size=8, max_size=8),
    st.integers(min_value=1, max_value=1000),
    counts,
)
def test_the_record_equals_the_models_bytes(
    tenant_id: str,
    model: str,
    start: int,
    size: int,
    values: list[int],
    revision: int,
    emitted: int,
) -> None:
    totals = [*values, revision]
    key, value = window_totals_record(tenant_id, model, start, size, totals, emitted)
    expected = _model(tenant_id, model, start, size, totals, emitted)
    assert key == expected.key.encode()
    assert value == expected.to_bytes()
    assert WindowTotals.from_bytes(value) == expected


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
        window_totals_record("t", "m", start, size, values, emitted)
