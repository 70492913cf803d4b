"""What the Prometheus sink knows, rebuilt from the compacted topics on every start.

`ExporterState` is pure: records go in through `on_*`, the collector reads the counters
and `quota_samples()`. Window totals are absolute per key, so the state keeps each window's latest
revision (for `correction_horizon_ms`) and adds only the difference a new revision makes:
replaying the compacted aggregates topic from the beginning gives the same counters as
before a restart. Token usage is also kept in 15-minute buckets for `usage_retention_ms`
(every IANA offset is a multiple of 15 minutes, so they tile any local day or month), from
which `QuotaGauges` sums each quota's current period.

Memory is bounded by the label cap, whatever the tenant churn. Per-tenant counters,
window revisions and buckets exist only for labelled tenants and, while the topics are
replayed, for at most `CANDIDATES_PER_LABEL x 2 x max_tenants` candidates for a label
(trimmed to the largest half when full). Any other tenant is folded into `other` when
seen: its tokens and events go to `other`'s counters, its window revisions to a FIFO of
`OTHER_WINDOWS_PER_LABEL x max_tenants` entries (a correction to a window older than
one dropped from it is not counted: `uncounted_corrections`), and its name into a
fixed-size distinct count. Dead-letter origins are remembered for the last
`DEAD_LETTER_IDS` dead letters.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field

from tokenops.deadletters import dead_letter_label
from tokenops.quotas.book import QuotaBook
from tokenops.schemas.aggregates import TOKEN_TYPES, WindowTotals
from tokenops.schemas.quota import QuotaAlert
from tokenops.sinks.prometheus.distinct import DistinctCount
from tokenops.sinks.prometheus.quotas import BUCKET_MS, QuotaGauges, QuotaSample, Window

OTHER = "other"
CANDIDATES_PER_LABEL = 4
OTHER_WINDOWS_PER_LABEL = 100
DEAD_LETTER_IDS = 100_000

# model, window_start_ms, window_size_s, region: two regions' windows are two windows
WindowId = tuple[str, int, int, str]


@dataclass
class ExporterState:
    max_tenants: int = 500
    max_models: int = 100
    correction_horizon_ms: int = 2 * 86_400_000
    usage_retention_ms: int = 62 * 86_400_000
    quotas: QuotaGauges = field(default_factory=QuotaGauges)
    dead_letters: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    close_delays_s: list[float] = field(default_factory=list)  # drained by the collector
    last_event_ms: int = 0
    bootstrapping: bool = False  # while True, only quota tenants get labels (see below)
    _tenants: set[str] = field(default_factory=set)
    # While bootstrapping: tokens of tenants that may still get a label, for ranking.
    _candidates: dict[str, int] = field(default_factory=dict)
    _models: set[str] = field(default_factory=set)
    # owner (a labelled tenant, a candidate, or OTHER) -> (model label, type) -> tokens
    _tokens: defaultdict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    _events: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    _folded: DistinctCount = field(default_factory=DistinctCount)
    # labelled tenant or candidate -> window id -> latest revision seen
    _windows: defaultdict[str, dict[WindowId, Window]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    # (tenant, *window id) -> latest revision, for folded tenants; oldest first
    _other_windows: OrderedDict[tuple[str, str, int, int, str], Window] = field(
        default_factory=OrderedDict
    )
    _other_forgotten_ms: int = -1  # the newest window start dropped from _other_windows
    _dead_letter_ids: OrderedDict[tuple[str, ...], None] = field(default_factory=OrderedDict)
    _buckets: defaultdict[str, dict[tuple[str, int], list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _newest_window_ms: int = 0

    def _owner(self, tenant: str) -> str:
        """Whose counters hold `tenant`'s usage: its own while it has a label (or may get
        one during the replay), else OTHER's; labels go to new tenants while room is left."""
        if tenant in self._tenants or tenant in self._candidates:
            return tenant
        if self.bootstrapping:
            if len(self._candidates) >= 2 * CANDIDATES_PER_LABEL * self.max_tenants:
                self._keep_candidates(CANDIDATES_PER_LABEL * self.max_tenants)
            self._candidates[tenant] = 0
            return tenant
        if len(self._tenants) < self.max_tenants:
            self._tenants.add(tenant)
            return tenant
        self._folded.add(tenant)
        return OTHER

    def finish_bootstrap(self) -> None:
        """Label tenants after replaying the topics: quota tenants, then the largest.

        Ranking by tokens (ties by name) makes the labelled set independent of the order
        in which partitions were read, so a restart labels the same tenants again (exactly
        while the candidates were never trimmed, i.e. up to 8 x `max_tenants` tenants).
        """
        self.bootstrapping = False
        room = max(0, self.max_tenants - len(self._tenants))
        for tenant in self._keep_candidates(room):
            self._tenants.add(tenant)
        self._candidates.clear()

    def _keep_candidates(self, keep: int) -> list[str]:
        """Keep the `keep` largest candidates, fold the others; returns those kept."""
        ranked = sorted(self._candidates.items(), key=lambda item: (-item[1], item[0]))
        for tenant, _ in ranked[keep:]:
            self._fold(tenant)
        return [tenant for tenant, _ in ranked[:keep]]

    def _fold(self, tenant: str) -> None:
        """Move a candidate's usage into OTHER's counters and forget its structures."""
        del self._candidates[tenant]
        if tenant in self._tenants:
            return  # labelled meanwhile (a quota arrived): keeps its own counters
        self._folded.add(tenant)
        self._tokens[OTHER].update(self._tokens.pop(tenant, Counter()))
        self._events[OTHER].update(self._events.pop(tenant, Counter()))
        for window_id, window in self._windows.pop(tenant, {}).items():
            self._remember_other((tenant, *window_id), window)
        self._buckets.pop(tenant, None)

    def _remember_other(self, key: tuple[str, str, int, int, str], window: Window) -> None:
        self._other_windows[key] = window
        while len(self._other_windows) > OTHER_WINDOWS_PER_LABEL * self.max_tenants:
            (_, _, start, _, _), _ = self._other_windows.popitem(last=False)
            self._other_forgotten_ms = max(self._other_forgotten_ms, start)

    def model_label(self, model: str) -> str:
        if model in self._models or len(self._models) < self.max_models:
            self._models.add(model)
            return model
        return OTHER

    @property
    def collapsed_tenants(self) -> int:
        """Distinct tenants folded into `other` (an estimate beyond a few hundred)."""
        return self._folded.estimate()

    def labelled_tokens(self) -> Counter[tuple[str, str, str]]:
        """Token counters by (tenant label, model label, type): the rest summed as other."""
        out: Counter[tuple[str, str, str]] = Counter()
        for owner, counters in self._tokens.items():
            tenant = owner if owner in self._tenants else OTHER
            for (model, name), value in counters.items():
                out[(tenant, model, name)] += value
        return out

    def labelled_events(self) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for owner, counters in self._events.items():
            tenant = owner if owner in self._tenants else OTHER
            for model, value in counters.items():
                out[(tenant, model)] += value
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

    def on_dead_letter(self, field: str | None, origin: tuple[str, ...] | None = None) -> None:
        """Count a dead letter once per origin (topic, partition, offset), by its
        `tokenops.dlq.field` header, bounded as the worker's metric is."""
        if origin is not None:
            if origin in self._dead_letter_ids:
                return  # re-published after a worker crash (soon after: ids are recent)
            self._dead_letter_ids[origin] = None
            if len(self._dead_letter_ids) > DEAD_LETTER_IDS:
                self._dead_letter_ids.popitem(last=False)
        self.dead_letters[dead_letter_label(field)] += 1

    def on_window(self, totals: WindowTotals) -> None:
        new = tuple(totals.tokens()[name] for name in TOKEN_TYPES)
        owner = self._owner(totals.tenant_id)
        window_id = (totals.model, totals.window_start_ms, totals.window_size_s, totals.region)
        other_key = (totals.tenant_id, *window_id)
        old = self._windows[owner].get(window_id) if owner != OTHER else None
        if old is None and other_key in self._other_windows:
            owner, old = OTHER, self._other_windows[other_key]  # folded earlier: stays there
        if old is not None and (totals.revision, totals.event_count) <= (
            old.revision,
            old.event_count,
        ):
            self.counts["stale_revisions"] += 1
            return
        if old is None and totals.revision > 1:
            self.counts["corrections"] += 1
            forgotten = totals.window_start_ms < self._newest_window_ms - self.correction_horizon_ms
            if (owner == OTHER or not self.bootstrapping) and (
                totals.window_start_ms <= self._other_forgotten_ms
            ):
                forgotten = True  # its earlier revision may have left the bounded FIFO
            if forgotten:
                self.counts["uncounted_corrections"] += 1  # its earlier revision is forgotten
                return
        elif old is not None:
            self.counts["corrections"] += 1
        else:
            self.close_delays_s.append(max(0, totals.emitted_at_ms - totals.window_end_ms) / 1000)
        previous = old.tokens if old is not None else (0,) * len(TOKEN_TYPES)
        added = [n - p for n, p in zip(new, previous, strict=True)]
        window = Window(totals.revision, totals.event_count, new)
        model = self.model_label(totals.model)
        tokens = self._tokens[owner]
        for name, amount in zip(TOKEN_TYPES, added, strict=True):
            tokens[(model, name)] += amount
        self._events[owner][model] += totals.event_count - (old.event_count if old else 0)
        self.last_event_ms = max(self.last_event_ms, totals.last_event_time_ms)
        self.quotas.on_window(totals, added)
        if owner == OTHER:
            self._remember_other(other_key, window)
        else:
            self._windows[owner][window_id] = window
            if owner in self._candidates:
                self._candidates[owner] += sum(added)
            bucket = totals.window_start_ms - totals.window_start_ms % BUCKET_MS
            cell = self._buckets[owner].setdefault((totals.model, bucket), [0] * 5)
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
        for old_key in [k for k in self._other_windows if k[2] < horizon]:
            del self._other_windows[old_key]  # past the horizon, as `forgotten` treats them
        retention = self._newest_window_ms - self.usage_retention_ms
        for buckets in self._buckets.values():
            for old_bucket in [k for k in buckets if k[1] < retention]:
                del buckets[old_bucket]

    def quota_samples(self, now_ms: int) -> list[QuotaSample]:
        """Usage ratio and limit of every quota of a labelled tenant, in the current period."""
        return self.quotas.samples(now_ms, self._tenants, self._windows, self._buckets)
