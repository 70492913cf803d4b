"""The Prometheus sink's state before it was bounded (up to commit 6d5857b): a baseline.

`ExporterState` here kept every tenant's counters, windows and buckets, folding tenants
beyond the label cap into `other` only when scraped; `bench/bench_prometheus_scrape.py`
measures it next to `tokenops.sinks.prometheus.state` in the same run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tokenops.quotas.book import QuotaBook
from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals
from tokenops.schemas.quota import QuotaAlert
from tokenops.sinks.prometheus.quotas import BUCKET_MS, QuotaGauges, QuotaSample, Window

OTHER = "other"


@dataclass
class ExporterState:
    max_tenants: int = 500
    max_models: int = 100
    correction_horizon_ms: int = 2 * 86_400_000
    usage_retention_ms: int = 62 * 86_400_000
    quotas: QuotaGauges = field(default_factory=QuotaGauges)
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
    _windows: dict[str, dict[tuple[str, int, int], Window]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _dead_letter_ids: set[tuple[str, str, str]] = field(default_factory=set)
    _buckets: dict[str, dict[tuple[str, int], list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
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

    @property
    def book(self) -> QuotaBook:
        return self.quotas.book

    def on_quota(self, key: bytes | None, value: bytes | None) -> None:
        tenant = self.quotas.on_quota(key, value)
        if value and len(self._tenants) < self.max_tenants:
            self._tenants.add(tenant)  # tenants with quotas are labelled first

    def on_alert(self, alert: QuotaAlert) -> None:
        self.counts["quota_alerts"] += 1
        self.quotas.on_alert(alert)

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
        windows[window_id] = Window(totals.revision, totals.event_count, new)
        # Counters stay per tenant; labels are applied when scraped (`labelled_tokens`).
        tenant, model = totals.tenant_id, self.model_label(totals.model)
        self.tenant_label(tenant)
        self._seen[tenant] += sum(added)
        for name, amount in zip(TOKEN_TYPES, added, strict=True):
            self.tokens[(tenant, model, name)] += amount
        self.events[(tenant, model)] += totals.event_count - (old.event_count if old else 0)
        self.last_event_ms = max(self.last_event_ms, totals.last_event_time_ms)
        self.quotas.on_window(totals, added)
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
        return self.quotas.samples(now_ms, self._tenants, self._windows, self._buckets)
