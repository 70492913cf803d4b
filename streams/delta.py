"""The state change of one batch of one partition: what the changelog and the store hold.

A `StateDelta` carries absolute values only (window totals, watermark, next input
offset), so applying it twice is harmless; `start_offset` lets a replay check that deltas
follow each other. One delta is one changelog record, written after the batch's outputs
are acknowledged and before the local store is updated.

Changelog record keys: `claim` (a worker took the partition over; only deltas of the
latest claimant count) and `delta`. Values are JSON. A dedup key is `source NUL id`
(exact, no hash: neither field may hold NUL or newline); the keys first seen in a batch
travel grouped by event-time bucket, newline-joined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenops.streams.windows import NO_TIME, Totals, WindowId

CLAIM_KEY = b"claim"
DELTA_KEY = b"delta"

WindowRow = tuple[str, str, int, Totals]


@dataclass
class StateDelta:
    owner: str
    start_offset: int
    next_offset: int
    watermark_ms: int = NO_TIME
    max_event_ms: int = NO_TIME
    expire_before_ms: int = NO_TIME  # dedup buckets and closed windows ending at or before
    open: list[WindowRow] = field(default_factory=list)  # upserts of open windows
    closed: list[WindowRow] = field(default_factory=list)  # upserts of closed windows
    unopened: list[WindowId] = field(default_factory=list)  # open windows that closed
    dedup: dict[int, str] = field(default_factory=dict)  # bucket -> "key\nkey..." first seen
    processors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": 1,
                "owner": self.owner,
                "start": self.start_offset,
                "next": self.next_offset,
                "wm": self.watermark_ms,
                "max": self.max_event_ms,
                "expire": self.expire_before_ms,
                "open": self.open,
                "closed": self.closed,
                "unopened": self.unopened,
                "dedup": [[bucket, keys] for bucket, keys in self.dedup.items()],
                "proc": self.processors,
            }
        )

    @classmethod
    def from_bytes(cls, value: bytes) -> StateDelta:
        d = orjson.loads(value)
        return cls(
            owner=d["owner"],
            start_offset=d["start"],
            next_offset=d["next"],
            watermark_ms=d["wm"],
            max_event_ms=d["max"],
            expire_before_ms=d["expire"],
            open=[(t, m, s, v) for t, m, s, v in d["open"]],
            closed=[(t, m, s, v) for t, m, s, v in d["closed"]],
            unopened=[(t, m, s) for t, m, s in d["unopened"]],
            dedup={bucket: keys for bucket, keys in d["dedup"]},
            processors=d["proc"],
        )


def claim_bytes(owner: str) -> bytes:
    return orjson.dumps({"v": 1, "owner": owner})


def claim_owner(value: bytes) -> str:
    owner: str = orjson.loads(value)["owner"]
    return owner
