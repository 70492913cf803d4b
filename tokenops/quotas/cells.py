"""The quota cells of one partition: usage and crossed thresholds per tenant, quota and
period, with the late horizon after which each is dropped.

A cell's key is `"<tenant>|<quota>|<period_start_ms>"`; its state value (`Cell.dump`) is
`{"usage": int | str, "crossed": [pct, ...], "end_ms": int}`, `usage` as
`tokenops.quotas.usage.dump` writes it (a decimal string for a cost budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenops.quotas import usage as units

_MINUTE_MS = 60_000


@dataclass(slots=True)
class Cell:
    usage: int  # tokens, or picos of the currency for a cost budget
    crossed: list[int]
    end_ms: int
    cost: bool = False

    def dump(self) -> dict[str, Any]:
        return {
            "usage": units.dump(self.usage, self.cost),
            "crossed": self.crossed[:],
            "end_ms": self.end_ms,
        }


@dataclass
class CellTable:
    """Every cell of a partition, and when each expires (its period's end plus horizon)."""

    late_horizon_ms: int
    rate_late_horizon_ms: int
    cells: dict[str, Cell] = field(default_factory=dict)
    # events counted, and events left out because their cell's horizon had passed
    stats: dict[str, int] = field(default_factory=lambda: {"events": 0, "late_ignored": 0})
    _expiry: dict[int, set[str]] = field(default_factory=dict)  # expiry ms -> cell keys

    def load(self, cells: dict[str, dict[str, Any]]) -> None:
        """Replace every cell with the dumped `cells` (as recovered from the changelog)."""
        self.cells.clear()
        self._expiry.clear()
        for key, value in cells.items():
            used, cost = units.load(value["usage"])
            crossed = [int(t) for t in value["crossed"]]
            cell = self.cells[key] = Cell(used, crossed, int(value["end_ms"]), cost)
            # A recovered cell does not name its quota's period; a minute cell spans 60 s.
            minute = cell.end_ms - int(key.rsplit("|", 1)[1]) == _MINUTE_MS
            horizon = self.rate_late_horizon_ms if minute else self.late_horizon_ms
            self._expire(key, cell.end_ms + horizon)

    def open(self, key: str, end_ms: int, horizon_ms: int, cost: bool) -> Cell:
        """The cell at `key`, created empty if new (expiring at `end_ms + horizon_ms`)."""
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell(0, [], end_ms, cost)
            self._expire(key, end_ms + horizon_ms)
        return cell

    def evict(self, watermark_ms: int) -> list[str]:
        """Drop the cells whose late horizon `watermark_ms` has passed (few distinct ends)."""
        gone: list[str] = []
        for at_ms in [at for at in self._expiry if at < watermark_ms]:
            for key in self._expiry.pop(at_ms):
                if self.cells.pop(key, None) is not None:
                    gone.append(key)
        return gone

    def _expire(self, key: str, at_ms: int) -> None:
        self._expiry.setdefault(at_ms, set()).add(key)
