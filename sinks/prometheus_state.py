"""What the Prometheus sink knows, rebuilt from the compacted topics on every start.

`ExporterState` is pure: records go in through `on_*`, metric values come out of
`snapshot()`. Window totals are absolute per key, so the state keeps each window's latest
revision (for `correction_horizon_ms`) and adds only the difference a new revision makes:
replaying the compacted aggregates topic from the beginning gives the same counters as
before a restart. Quota usage is summed from 15-minute buckets (every IANA offset is a
multiple of 15 minutes, so they tile any local day or month) kept for `usage_retention_ms`.
Quota alerts raise a quota's ratio at once, before the window holding the crossing closes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals
from tokenops.schemas.quota import QuotaAlert, QuotaDefinition
from tokenops.streams.quota_book import QuotaBook

OTHER = "other"
BUCKET_MS = 15 * 60_000


@dataclass
class _Window:
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


@dataclass
class ExporterState:
    max_tenants: int = 500
    max_models: int = 100
    correction_horizon_ms: int = 2 * 86_400_000
    usage_retention_ms: int = 62 * 86_400_000
    book: QuotaBook = field(default_factory=QuotaBook)
    tokens: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    close_delays_s: list[float] = field(default_factory=list)  # drained by the collector
    last_event_ms: int = 0
    bootstrapping: bool = False  # while True, only quota tenants get labels (see below)
    _tenants: set[str] = field(default_factory=set)
    _seen: Counter[str] = field(default_factory=Counter)  # tokens per tenant, for ranking
    _models: set[str] = field(default_factory=set)
    # tenant -> (model, window_start_ms, window_size_s) -> latest revision seen
    _windows: dict[str, dict[tuple[str, int, int], _Window]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _dead_letter_ids: set[tuple[str, str, str]] = field(default_factory=set)
    _buckets: dict[str, dict[tuple[str, int], list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _alerts: dict[tuple[str, str], QuotaAlert] = field(default_factory=dict)
    # (tenant, quota) -> (start, end, usage) of the period last scraped, kept up to date
    _usage_cache: dict[tuple[str, str], tuple[int, int, float]] = field(default_factory=dict)
    _newest_window_ms: int = 0

    def tenant_label(self, tenant: str) -> str:
        """The tenant's label value: itself while fewer than `max_tenants` are labelled."""
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < self.max_tenants and not self.bootstrapping:
            self._tenants.add(tenant)
            return tenant
        return OTHER

    def finish_bootstrap(self) -> None:
        """Label tenants after replaying the topics: quota tenants, then the largest.

        Ranking by tokens (ties by name) makes the labelled set independent of the order
        in which partitions were read, so a restart labels the same tenants again.
        """
        self.bootstrapping = False
        ranked = sorted(self._seen.items(), key=lambda item: (-item[1], item[0]))
        for tenant, _ in ranked:
            if len(self._tenants) >= self.max_tenants:
                break
            self._tenants.add(tenant)

    def model_label(self, model: str) -> str:
        if model in self._models or len(self._models) < self.max_models:
            self._models.add(model)
            return model
        return OTHER

    @property
    def collapsed_tenants(self) -> int:
        return sum(1 for tenant in self._seen if tenant not in self._tenants)

    def labelled_tokens(self) -> Counter[tuple[str, str, str]]:
        """Token counters by (tenant label, model label, type): the rest summed as other."""
        out: Counter[tuple[str, str, str]] = Counter()
        for (tenant, model, name), value in self.tokens.items():
            out[(tenant if tenant in self._tenants else OTHER, model, name)] += value
        return out

    def labelled_events(self) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for (tenant, model), value in self.events.items():
            out[(tenant if tenant in self._tenants else OTHER, model)] += value
        return out

    def on_quota(self, key: bytes | None, value: bytes | None) -> None:
        self.book.apply_record(key, value)
        tenant, _, name = (key or b"").decode().partition("|")
        self._usage_cache.pop((tenant, name), None)  # a changed quota is summed afresh
        if value:
            for quota in self.book.for_tenant((key or b"").decode().split("|", 1)[0]):
                if len(self._tenants) < self.max_tenants:  # quota tenants are labelled first
                    self._tenants.add(quota.tenant_id)

    def on_alert(self, alert: QuotaAlert) -> None:
        self.counts["quota_alerts"] += 1
        current = self._alerts.get((alert.tenant_id, alert.quota))
        if current is None or (alert.period_start_ms, alert.usage) > (
            current.period_start_ms,
            current.usage,
        ):
            self._alerts[(alert.tenant_id, alert.quota)] = alert

    def on_dead_letter(self, reason: str, origin: tuple[str, str, str] | None = None) -> None:
        """Count a dead letter once per origin (topic, partition, offset), by reason kind."""
        if origin is not None:
            if origin in self._dead_letter_ids:
                return  # re-published after a worker crash
            self._dead_letter_ids.add(origin)
        # Reasons are free text with values in them; their kind is the part before ':'.
        kind = reason.split(":", 1)[0].strip()[:60] or "unknown"
        if kind not in self.dead_letters and len(self.dead_letters) >= 20:
            kind = OTHER
        self.dead_letters[kind] += 1

    def on_window(self, totals: WindowTotals) -> None:
        new = tuple(totals.tokens()[name] for name in TOKEN_TYPES)
        windows = self._windows[totals.tenant_id]
        window_id = (totals.model, totals.window_start_ms, totals.window_size_s)
        old = windows.get(window_id)
        if old is not None and (totals.revision, totals.event_count) <= (
            old.revision,
            old.event_count,
        ):
            self.counts["stale_revisions"] += 1
            return
        if old is None and totals.revision > 1:
            self.counts["corrections"] += 1
            if totals.window_start_ms < self._newest_window_ms - self.correction_horizon_ms:
                self.counts["uncounted_corrections"] += 1  # its earlier revision is forgotten
                return
        elif old is not None:
            self.counts["corrections"] += 1
        else:
            self.close_delays_s.append(max(0, totals.emitted_at_ms - totals.window_end_ms) / 1000)
        previous = old.tokens if old is not None else (0,) * len(TOKEN_TYPES)
        added = [n - p for n, p in zip(new, previous, strict=True)]
        windows[window_id] = _Window(totals.revision, totals.event_count, new)
        # Counters stay per tenant; labels are applied when scraped (`labelled_tokens`).
        tenant, model = totals.tenant_id, self.model_label(totals.model)
        self.tenant_label(tenant)
        self._seen[tenant] += sum(added)
        for name, amount in zip(TOKEN_TYPES, added, strict=True):
            self.tokens[(tenant, model, name)] += amount
        self.events[(tenant, model)] += totals.event_count - (old.event_count if old else 0)
        self.last_event_ms = max(self.last_event_ms, totals.last_event_time_ms)
        self._add_to_cached_usage(totals, added)
        bucket = totals.window_start_ms - totals.window_start_ms % BUCKET_MS
        cell = self._buckets[totals.tenant_id].setdefault((totals.model, bucket), [0] * 5)
        for i, amount in enumerate(added):
            cell[i] += amount
        if totals.window_start_ms > self._newest_window_ms:
            self._newest_window_ms = totals.window_start_ms

    def evict(self) -> None:
        """Forget windows past the correction horizon and buckets past the usage retention."""
        horizon = self._newest_window_ms - self.correction_horizon_ms
        for windows in self._windows.values():
            for old_id in [w for w in windows if w[1] < horizon]:
                del windows[old_id]
        retention = self._newest_window_ms - self.usage_retention_ms
        for buckets in self._buckets.values():
            for old_bucket in [k for k in buckets if k[1] < retention]:
                del buckets[old_bucket]

    def quota_samples(self, now_ms: int) -> list[QuotaSample]:
        """Usage ratio and limit of every quota of a labelled tenant, in the current period."""
        samples = []
        for quota in self.book:
            if quota.tenant_id not in self._tenants:
                continue
            usage = float(self._usage(quota, now_ms))
            alert = self._alerts.get((quota.tenant_id, quota.name))
            start, end = quota.period_bounds(now_ms)
            if quota.period == "minute":
                start -= 60_000  # the last closed minute still counts for a rate
            if alert is not None and alert.period_start_ms >= start and alert.period_end_ms <= end:
                usage = max(usage, float(alert.usage))
            limit = float(quota.limit)
            sample = QuotaSample(
                quota.tenant_id, quota.name, quota.period, usage / limit, limit, end
            )
            samples.append(sample)
        return samples

    def _add_to_cached_usage(self, totals: WindowTotals, added: list[int]) -> None:
        for quota in self.book.for_tenant(totals.tenant_id):
            cached = self._usage_cache.get((quota.tenant_id, quota.name))
            if cached is None or not cached[0] <= totals.window_start_ms < cached[1]:
                continue
            if quota.model is None or quota.model == totals.model:
                usage = float(quota.usage_of(dict(zip(TOKEN_TYPES, added, strict=True))))
                self._usage_cache[(quota.tenant_id, quota.name)] = (*cached[:2], cached[2] + usage)

    def _usage(self, quota: QuotaDefinition, now_ms: int) -> float:
        """The quota's usage in its current period, summed once per period, then kept."""
        start, end = quota.period_bounds(now_ms)
        if quota.period == "minute":  # windows close after the minute: the newest closed one
            start, end = start - 60_000, start
        cached = self._usage_cache.get((quota.tenant_id, quota.name))
        if cached is not None and cached[:2] == (start, end):
            return cached[2]
        if quota.period == "minute":
            usage = self._minute_usage(quota, start, end)
        else:
            usage = self._bucket_usage(quota, start, end)
        self._usage_cache[(quota.tenant_id, quota.name)] = (start, end, usage)
        return usage

    def _bucket_usage(self, quota: QuotaDefinition, start: int, end: int) -> float:
        total = 0.0
        for (model, bucket), cell in self._buckets.get(quota.tenant_id, {}).items():
            if start <= bucket < end and (quota.model is None or quota.model == model):
                total += float(quota.usage_of(dict(zip(TOKEN_TYPES, cell, strict=True))))
        return total

    def _minute_usage(self, quota: QuotaDefinition, start: int, end: int) -> float:
        total = 0.0
        for (model, window_start, _size), window in self._windows.get(quota.tenant_id, {}).items():
            if start <= window_start < end and (quota.model is None or quota.model == model):
                tokens = dict(zip(TOKEN_TYPES, window.tokens, strict=True))
                total += float(quota.usage_of(tokens))
        return total
