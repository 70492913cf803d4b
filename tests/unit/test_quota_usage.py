"""Usage is computed once (`tokenops.quotas.usage`), in one exact unit, by every reader."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.test_prometheus_state import MINUTE, NOW, registry_for, totals
from tokenops.quotas import usage as units
from tokenops.schemas.quota import QuotaDefinition
from tokenops.sinks.prometheus.state import ExporterState

BUDGET = QuotaDefinition(
    tenant_id="a",
    name="budget",
    period="day",
    limit=Decimal("0.9"),
    prices_per_million={"input_tokens": Decimal("1"), "output_tokens": Decimal("2.000001")},
    currency="USD",
)


def test_cost_is_integer_picos_and_converts_back_exactly() -> None:
    used = units.usage_of(BUDGET, [100_000, 3, 0, 0, 0])  # 0.1 + 3 * 0.000002000001
    assert used == 100_000 * 10**6 + 3 * 2_000_001
    assert units.to_decimal(BUDGET, used) == Decimal("0.100006000003")
    assert units.load(units.dump(used, cost=True)) == (used, True)
    assert units.exact(BUDGET, BUDGET.limit) == 9 * 10**11


def test_token_quota_counts_its_token_types_only() -> None:
    quota = QuotaDefinition(tenant_id="a", name="t", period="day", limit=10)
    assert units.weights(quota) == (1, 1)  # input + output; trailing columns left out
    assert units.usage_of(quota, [5, 7, 100, 100, 100]) == 12


def test_gauge_reaches_exactly_one_when_a_budget_is_spent() -> None:
    """0.1 + 0.1 + 0.7 USD of a 0.9 USD budget is 100 %: as floats it summed to
    0.8999999999999999 and the gauge stayed below 1, so a `>= 1` alert rule never fired."""
    state = ExporterState()
    state.on_quota(BUDGET.key.encode(), BUDGET.to_bytes())
    for minutes_ago, tokens in ((90, 100_000), (60, 100_000), (30, 700_000)):
        state.on_window(totals("a", NOW - minutes_ago * MINUTE, tokens))
    registry = registry_for(state)
    labels = {"tenant": "a", "quota": "budget", "period": "day"}
    assert registry.get_sample_value("tokenops_quota_usage_ratio", labels) == 1.0
