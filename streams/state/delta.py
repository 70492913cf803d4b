"""The state change of one batch of one partition: what the changelog and the store hold.

A `StateDelta` carries absolute values only (window totals, watermark, next input
offset), so applying it twice is harmless; `start_offset` lets a replay check that deltas
follow each other. A delta is written to the changelog after the batch's outputs are
acknowledged and before the local store is updated.

Changelog record keys: `claim` (a worker took the partition over; only deltas of the
latest claimant count), `delta`, and `delta-part`. Values are JSON. A delta whose JSON
is larger than the part bound (below the changelog topic's `max.message.bytes`) travels
as consecutive `delta-part` records instead (`delta_records`): each holds a one-line
JSON head (owner, start offset, part index, part count) and a slice of the delta's
JSON. A reader applies the delta only when every part arrived in order with nothing
between them (`DeltaParts`); parts cut short by a crash or a claim are dropped, exactly
like a delta that was never written, and the batch is replayed from its input.

A dedup key is `source NUL id` (exact, no hash: neither field may hold NUL or newline);
the keys first seen in a batch travel grouped by event-time bucket, newline-joined.

A window row is `[tenant, model, region, start, totals]` (`"v": 2`); a delta of the
version before region (`"v": 1`, rows `[tenant, model, start, totals]`) reads as region
'', so a worker upgraded over an existing changelog replays it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tokenops.streams.windows import NO_TIME, Totals, WindowId

CLAIM_KEY = b"claim"
DELTA_KEY = b"delta"
PART_KEY = b"delta-part"
# The default part bound: well below the broker's default max.message.bytes (1 MiB), so
# the changelog topic needs no raised limit. The worker lowers it for smaller topics.
DEFAULT_PART_BYTES = 512 * 1024
_PART_HEAD_BYTES = 256  # room kept in each part for its head line
_RECORD_OVERHEAD_BYTES = 4096  # key, record and record-batch framing, with room to spare


def part_bytes_below(max_message_bytes: int) -> int:
    """The part bound for a changelog topic whose `max.message.bytes` is given."""
    bound = min(DEFAULT_PART_BYTES, max_message_bytes - _RECORD_OVERHEAD_BYTES)
    if bound < 4 * _PART_HEAD_BYTES:
        raise ValueError(f"max.message.bytes {max_message_bytes} is too small for the changelog")
    return bound


WindowRow = tuple[str, str, str, int, Totals]  # tenant_id, model, region, start, totals


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
                "v": 2,
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
            open=list(map(_window_row, d["open"])),
            closed=list(map(_window_row, d["closed"])),
            unopened=list(map(_window_id, d["unopened"])),
            dedup={bucket: keys for bucket, keys in d["dedup"]},
            processors=d["proc"],
        )


def _window_row(row: list[Any]) -> WindowRow:
    if len(row) == 4:  # a "v": 1 delta: no region
        return row[0], row[1], "", row[2], row[3]
    return row[0], row[1], row[2], row[3], row[4]


def _window_id(window: list[Any]) -> WindowId:
    if len(window) == 3:  # a "v": 1 delta: no region
        return window[0], window[1], "", window[2]
    return window[0], window[1], window[2], window[3]


def claim_bytes(owner: str) -> bytes:
    return orjson.dumps({"v": 1, "owner": owner})


def claim_owner(value: bytes) -> str:
    owner: str = orjson.loads(value)["owner"]
    return owner


def delta_records(delta: StateDelta, part_bytes: int) -> list[tuple[bytes, bytes]]:
    """The changelog (key, value) records of `delta`, none with a value over `part_bytes`:
    one `delta` record if it fits, else `delta-part` records to write in this order."""
    value = delta.to_bytes()
    if len(value) <= part_bytes:
        return [(DELTA_KEY, value)]
    step = part_bytes - _PART_HEAD_BYTES
    if step < _PART_HEAD_BYTES:
        raise ValueError(f"part_bytes {part_bytes} is too small for a delta part")
    slices = [value[i : i + step] for i in range(0, len(value), step)]
    records = []
    for i, piece in enumerate(slices):
        head = orjson.dumps(
            {
                "v": 1,
                "owner": delta.owner,
                "start": delta.start_offset,
                "part": i,
                "parts": len(slices),
            }
        )
        if len(head) >= _PART_HEAD_BYTES:
            raise ValueError(f"owner {delta.owner[:40]!r}... is too long for a part head")
        records.append((PART_KEY, head + b"\n" + piece))
    return records


class DeltaParts:
    """Reassembles `delta-part` records read in changelog order.

    `add(value)` returns the whole delta's JSON when its last part arrives, else None.
    Any other record in between (`interrupt()`: a claim or a whole delta) drops the parts
    gathered so far: those were written by a batch that never completed."""

    def __init__(self) -> None:
        self._head: dict[str, Any] | None = None
        self._pieces: list[bytes] = []

    def add(self, value: bytes) -> bytes | None:
        line, _, piece = value.partition(b"\n")
        head = orjson.loads(line)
        index, expected = head["part"], self._head
        follows = expected is not None and (
            index == len(self._pieces)
            and (head["owner"], head["start"], head["parts"])
            == (expected["owner"], expected["start"], expected["parts"])
        )
        if not follows:
            self.interrupt()
            if index != 0:
                return None  # the tail of a delta whose start was dropped
            self._head = head
        self._pieces.append(piece)
        if len(self._pieces) < head["parts"]:
            return None
        whole = b"".join(self._pieces)
        self.interrupt()
        return whole

    def interrupt(self) -> None:
        self._head, self._pieces = None, []

    @property
    def pending(self) -> bool:
        return self._head is not None
