"""Quota gauges of the Prometheus sink: each quota's usage ratio in its current period.

Usage comes from closed windows: summed once per period from the state's 15-minute
buckets (minute quotas: from the last closed minute's windows), then kept current by
adding each new window revision's change. A quota alert raises the ratio at once, before
the window holding the crossing closes (about a window plus the allowed lateness later).
Usage is kept in the quota's exact unit (`tokenops.quotas.usage`: tokens, or picos of a
budget's currency) and becomes a float only in the exported ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenops.quotas import usage as units
from tokenops.quotas.book import QuotaBook
from tokenops.schemas.aggregates import WindowTotals
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition

BUCKET_MS = 15 * 60_000
Windows = dict[str, dict[tuple[str, int, int, str], "Window"]]
Buckets = dict[str, dict[tuple[str, int], list[int]]]


@dataclass
class Window:
    revision: int
    event_count: int
    tokens: tuple[int, ...]


@dataclass
class QuotaSample:
    tenant: str
    quota: str
    period: str
    usage_ratio: float
    limit: float
    period_end_ms: int
    # The quota's alert thresholds in percent; exported so alert rules follow the quota.
    thresholds_pct: tuple[int, ...] = ()


@dataclass
class QuotaGauges:
    book: QuotaBook = field(default_factory=QuotaBook)
    # (tenant, quota) -> the newest alert (highest period, then usage)
    alerts: dict[tuple[str, str], QuotaAlert] = field(default_factory=dict)
    # (tenant, quota) -> (start, end, usage in the quota's unit) of the period last
    # scraped, kept up to date
    cache: dict[tuple[str, str], tuple[int, int, int]] = field(default_factory=dict)

    def on_quota(self, key: bytes | None, value: bytes | None) -> str:
        """Apply a quota-topic record; returns its tenant."""
        self.book.apply_record(key, value)
        tenant, _, name = (key or b"").decode().partition("|")
        self.cache.pop((tenant, name), None)  # a changed quota is summed afresh
        return tenant

    def on_alert(self, alert: QuotaAlert) -> None:
        current = self.alerts.get((alert.tenant_id, alert.quota))
        if current is None or (alert.period_start_ms, alert.usage) > (
            current.period_start_ms,
            current.usage,
        ):
            self.alerts[(alert.tenant_id, alert.quota)] = alert

    def on_window(self, totals: WindowTotals, added: list[int]) -> None:
        """Add a window revision's change to the cached periods it falls in."""
        for quota in self.book.for_tenant(totals.tenant_id):
            cached = self.cache.get((quota.tenant_id, quota.name))
            if cached is None or not cached[0] <= totals.window_start_ms < cached[1]:
                continue
            if quota.model is None or quota.model == totals.model:
                usage = units.usage_of(quota, added)
                self.cache[(quota.tenant_id, quota.name)] = (*cached[:2], cached[2] + usage)

    def samples(
        self, now_ms: int, labelled: set[str], windows: Windows, buckets: Buckets
    ) -> list[QuotaSample]:
        """Ratio and limit of every quota of a labelled tenant, in the period holding now."""
        samples = []
        for quota in self.book:
            if quota.tenant_id not in labelled:
                continue
            usage = self._usage(quota, now_ms, windows, buckets)
            alert = self.alerts.get((quota.tenant_id, quota.name))
            start, end = quota.period_bounds(now_ms)
            if quota.period == "minute":
                start -= 60_000  # the last closed minute still counts for a rate
            if alert is not None and alert.period_start_ms >= start and alert.period_end_ms <= end:
                usage = max(usage, units.exact(quota, alert.usage))
            sample = QuotaSample(
                quota.tenant_id,
                quota.name,
                quota.period,
                usage / units.exact(quota, quota.limit),  # int / int: one rounding, here
                float(quota.limit),
                end,
                tuple(quota.thresholds_pct),
            )
            samples.append(sample)
        return samples

    def _usage(
        self, quota: QuotaDefinition, now_ms: int, windows: Windows, buckets: Buckets
    ) -> int:
        """The quota's usage in its current period, summed once per period, then kept."""
        start, end = quota.period_bounds(now_ms)
        if quota.period == "minute":  # windows close after the minute: the newest closed one
            start, end = start - 60_000, start
        cached = self.cache.get((quota.tenant_id, quota.name))
        if cached is not None and cached[:2] == (start, end):
            return cached[2]
        total = 0
        if quota.period == "minute":
            for (model, window_start, _, _), window in windows.get(quota.tenant_id, {}).items():
                if start <= window_start < end and quota.model in (None, model):
                    total += units.usage_of(quota, window.tokens)
        else:
            for (model, bucket), cell in buckets.get(quota.tenant_id, {}).items():
                if start <= bucket < end and quota.model in (None, model):
                    total += units.usage_of(quota, cell)
        self.cache[(quota.tenant_id, quota.name)] = (start, end, total)
        return total
