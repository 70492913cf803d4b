"""Which quota alerts the ledger says must fire, to check Alertmanager's answer against."""

from __future__ import annotations

from decimal import Decimal

from tokenops.producers.ledger import Ledger
from tokenops.schemas.quota import QuotaDefinition

# The thresholds of deploy/prometheus/rules/tokenops.rules.yml's quota rules.
RULES = (("TokenopsQuotaWarning", Decimal("0.8")), ("TokenopsQuotaExceeded", Decimal("1")))


def expected_alerts(ledger: Ledger, quotas: list[QuotaDefinition]) -> set[tuple[str, str]]:
    """(alertname, tenant) pairs whose rule holds on the ledger's usage of daily quotas."""
    by_tenant = ledger.expected_by_tenant()
    expected = set()
    for quota in quotas:
        totals = by_tenant.get(quota.tenant_id)
        if totals is None:
            continue
        used = Decimal(totals.input_tokens + totals.output_tokens)
        for alertname, ratio in RULES:
            if used >= quota.limit * ratio:
                expected.add((alertname, quota.tenant_id))
    return expected
