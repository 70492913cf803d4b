"""Which quota alerts the ledger says must fire, to check Alertmanager's answer against."""

from __future__ import annotations

from decimal import Decimal

from tokenops.schemas.quota import QuotaDefinition
from tokenops.simulate.ledger import Ledger

# An alert is (alertname, tenant, threshold_pct), as the quota rules of
# deploy/prometheus/rules/tokenops.rules.yml label it: one per crossed threshold.
Alert = tuple[str, str, str]


def alert_name(threshold_pct: int) -> str:
    """The rule that fires for a crossed threshold: a warning below 100 %, else exceeded."""
    return "TokenopsQuotaWarning" if threshold_pct < 100 else "TokenopsQuotaExceeded"


def expected_alerts(ledger: Ledger, quotas: list[QuotaDefinition]) -> set[Alert]:
    """The alerts whose threshold the ledger's usage of non-minute quotas reaches."""
    by_tenant = ledger.expected_by_tenant()
    expected = set()
    for quota in quotas:
        totals = by_tenant.get(quota.tenant_id)
        if totals is None or quota.period == "minute":
            continue
        used = Decimal(totals.input_tokens + totals.output_tokens)
        for pct in quota.thresholds_pct:
            if used * 100 >= quota.limit * pct:
                expected.add((alert_name(pct), quota.tenant_id, str(pct)))
    return expected


def fired(alerts: list[dict[str, str]]) -> set[Alert]:
    """The same triples from Alertmanager's label sets."""
    return {
        (a.get("alertname", ""), a.get("tenant", ""), a.get("threshold_pct", "")) for a in alerts
    }
