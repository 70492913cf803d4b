"""Daily token quotas for the demo's busiest tenants, sized to cross on purpose.

The simulator's traffic is known in distribution (Zipf tenants, log-normal tokens), so
the expected usage of tenant k is estimated up front: the busiest tenant gets a limit it
exceeds (warning and exceeded alerts), the second one a limit it passes 80% of (warning
only). The alerts themselves come from the running pipeline.
"""

from __future__ import annotations

import math
from decimal import Decimal

from tokenops.schemas.quota import QuotaDefinition
from tokenops.simulate.simulator import SimulationConfig

# Means of the simulator's log-normal token draws: exp(mu + sigma^2 / 2).
_MEAN_INPUT = 1500 * math.exp(0.5)
_MEAN_OUTPUT = 250 * math.exp(0.9**2 / 2)


def expected_tokens(config: SimulationConfig, rank: int) -> float:
    """Expected input + output tokens of the tenant of this Zipf rank (1 = busiest)."""
    weights = [1 / k**config.zipf_s for k in range(1, config.tenants + 1)]
    valid = 1 - config.malformed_share - config.duplicate_share
    events = config.total_records * valid * weights[rank - 1] / sum(weights)
    return float(events * (_MEAN_INPUT + _MEAN_OUTPUT))


def demo_quotas(config: SimulationConfig) -> list[QuotaDefinition]:
    plans = [(1, 0.6), (2, 1.15)]  # (rank, limit as a share of expected usage)
    return [
        QuotaDefinition(
            tenant_id=f"{config.tenant_prefix}{rank:03d}",
            name="daily-tokens",
            period="day",
            limit=Decimal(max(1000, round(expected_tokens(config, rank) * share, -3))),
        )
        for rank, share in plans
        if rank <= config.tenants
    ]
