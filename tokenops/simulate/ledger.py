"""The simulator's ground truth: exact expected totals, and every fault it injected.

    ledger = Ledger.load("ledger.json")
    ledger.expected_windows(60)     # {(tenant, model, window_start_ms): ExpectedTotals}
    ledger.expected_by_tenant()     # {tenant: ExpectedTotals}
    ledger.malformed_values()       # the exact bytes of every malformed record sent
    ledger.compare(events, 60)      # [] when events (duplicates included) match exactly

Totals count each unique event (`source` + `id`) once, late ones in the window of their
event time. They are kept per (tenant, model, second), so any window of whole seconds
can be derived exactly. The file is JSON; malformed values are base64.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from tokenops.schemas import TOKEN_TYPES, UsageEvent
from tokenops.schemas.event import EPOCH, ONE_MS

LEDGER_VERSION = 1
BUCKET_MS = 1000
Key = tuple[str, str, int]


class ExpectedTotals(NamedTuple):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0
    event_count: int = 0


def _add(a: ExpectedTotals, b: Iterable[int]) -> ExpectedTotals:
    return ExpectedTotals(*(x + y for x, y in zip(a, b, strict=True)))


@dataclass(frozen=True)
class MalformedRecord:
    kind: str
    key: bytes
    value: bytes
    partition: int | None = None
    offset: int | None = None


@dataclass
class Ledger:
    """What a simulation sent. `buckets` maps (tenant, model, second start ms) to totals."""

    config: dict[str, Any] = field(default_factory=dict)
    topic: str = ""
    records_sent: int = 0
    completed: bool = True
    buckets: dict[Key, ExpectedTotals] = field(default_factory=dict)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    late: list[tuple[str, str, int]] = field(default_factory=list)  # source, id, delay ms
    malformed: list[MalformedRecord] = field(default_factory=list)
    _sums: dict[Key, list[int]] = field(default_factory=dict, repr=False, compare=False)

    def count(self, event: UsageEvent) -> None:
        """Add one unique event (call once per source + id)."""
        d = event.__dict__
        self._add(d["tenant_id"], d["model"], event.time_ms, d)

    def __post_init__(self) -> None:
        self._sums.update((key, list(totals)) for key, totals in self.buckets.items())

    def count_fields(self, fields: dict[str, Any]) -> None:
        """`count` for the fields of a valid event (an aware UTC `time` datetime)."""
        ms = (fields["time"] - EPOCH) // ONE_MS
        self._add(fields["tenant_id"], fields["model"], ms, fields)

    def _add(self, tenant: str, model: str, ms: int, tokens: dict[str, Any]) -> None:
        """One event's tokens (absent token types are 0) into its second's running sums."""
        key = (tenant, model, ms - ms % BUCKET_MS)
        sums = self._sums.get(key)
        if sums is None:
            sums = self._sums[key] = [0] * 6
            self.buckets[key] = ExpectedTotals()
        for i, name in enumerate(TOKEN_TYPES):
            sums[i] += tokens.get(name) or 0
        sums[5] += 1

    def _settle(self) -> None:
        """Fold the running sums of `count` into `buckets`."""
        for key, sums in self._sums.items():
            self.buckets[key] = ExpectedTotals(*sums)

    @property
    def unique_events(self) -> int:
        self._settle()
        return sum(t.event_count for t in self.buckets.values())

    def expected_windows(self, window_size_s: int = 60) -> dict[Key, ExpectedTotals]:
        """Totals per (tenant, model, window_start_ms) of tumbling windows from the epoch."""
        self._settle()
        size_ms = window_size_s * 1000
        windows: dict[Key, ExpectedTotals] = {}
        for (tenant, model, start), totals in self.buckets.items():
            key = (tenant, model, start - start % size_ms)
            windows[key] = _add(windows.get(key, ExpectedTotals()), totals)
        return windows

    def expected_by_tenant(self) -> dict[str, ExpectedTotals]:
        self._settle()
        tenants: dict[str, ExpectedTotals] = defaultdict(ExpectedTotals)
        for (tenant, _, _), totals in self.buckets.items():
            tenants[tenant] = _add(tenants[tenant], totals)
        return dict(tenants)

    def malformed_values(self) -> list[bytes]:
        return [m.value for m in self.malformed]

    def compare(self, events: Iterable[UsageEvent], window_size_s: int = 60) -> list[str]:
        """Differences between these events (deduplicated) and the ledger; [] if exact."""
        seen: set[tuple[str, str]] = set()
        got = Ledger()
        for event in events:
            if (event.source, event.id) not in seen:
                seen.add((event.source, event.id))
                got.count(event)
        expected, actual = self.expected_windows(window_size_s), got.expected_windows(window_size_s)
        problems = []
        for key in sorted(expected.keys() | actual.keys()):
            want, have = expected.get(key), actual.get(key)
            if want != have:
                problems.append(f"window {key}: expected {want}, found {have}")
        return problems

    # -- file -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        self._settle()
        return {
            "version": LEDGER_VERSION,
            "config": self.config,
            "topic": self.topic,
            "completed": self.completed,
            "records_sent": self.records_sent,
            "unique_events": self.unique_events,
            "bucket_ms": BUCKET_MS,
            "columns": ["tenant_id", "model", "bucket_start_ms", *TOKEN_TYPES, "event_count"],
            "buckets": [[*key, *totals] for key, totals in sorted(self.buckets.items())],
            "faults": {
                "duplicates": [list(d) for d in self.duplicates],
                "late": [list(x) for x in self.late],
                "malformed": [
                    {
                        "kind": m.kind,
                        "key": m.key.decode("utf-8", "replace"),
                        "value_b64": base64.b64encode(m.value).decode(),
                        "partition": m.partition,
                        "offset": m.offset,
                    }
                    for m in self.malformed
                ],
            },
        }

    def save(self, path: Path | str) -> None:
        Path(path).write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: Path | str) -> Ledger:
        raw = orjson.loads(Path(path).read_bytes())
        faults = raw["faults"]
        return cls(
            config=raw["config"],
            topic=raw["topic"],
            records_sent=raw["records_sent"],
            completed=raw["completed"],
            buckets={(r[0], r[1], r[2]): ExpectedTotals(*r[3:]) for r in raw["buckets"]},
            duplicates=[(s, i) for s, i in faults["duplicates"]],
            late=[(s, i, d) for s, i, d in faults["late"]],
            malformed=[
                MalformedRecord(
                    m["kind"],
                    m["key"].encode(),
                    base64.b64decode(m["value_b64"]),
                    m["partition"],
                    m["offset"],
                )
                for m in faults["malformed"]
            ],
        )
