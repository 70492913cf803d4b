"""An invoice's region lines share the cents of their model line rounded once, so the
total does not depend on how many regions a model was used in."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from tokenops.sinks.clickhouse.region_lines import CENT, region_lines

UNIT = Decimal("2.5")


def _row(
    region: str, exact: Decimal, model: str = "m1"
) -> tuple[str, str, str, str, Decimal, int, Decimal]:
    return (region, model, "input_tokens", "USD", UNIT, 1, exact)


def test_half_cents_in_three_regions_bill_the_rounded_sum_not_three_roundings() -> None:
    rows = [_row(r, Decimal("0.005")) for r in ("west", "east", "central")]
    lines = region_lines(rows)
    # each region alone would round to 0.01 (0.03 in all); the model line is 0.015 -> 0.02
    assert [(x.region, x.amount) for x in lines] == [
        ("central", Decimal("0.01")),
        ("east", Decimal("0.01")),
        ("west", Decimal("0.00")),
    ]


exacts = st.decimals(min_value=0, max_value=1000, places=15, allow_nan=False)


@given(st.lists(st.tuples(st.sampled_from(["", "a", "b", "c", "d"]), exacts), max_size=12))
def test_each_models_region_lines_add_up_to_its_line_rounded_once(
    shares: list[tuple[str, Decimal]],
) -> None:
    merged: dict[str, Decimal] = {}
    for region, exact in shares:  # one row per region, as the query groups them
        merged[region] = merged.get(region, Decimal(0)) + exact
    lines = region_lines([_row(region, exact) for region, exact in merged.items()])
    total = sum(merged.values(), Decimal(0)).quantize(CENT, rounding=ROUND_HALF_UP)
    assert sum((x.amount for x in lines), Decimal("0.00")) == (total if lines else 0)
    assert all(abs(x.amount - x.exact_amount) < CENT for x in lines)
    assert [x.region for x in lines] == sorted(merged)
