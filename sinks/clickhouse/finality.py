"""How final billing figures are: `as_of`, open windows, `final`.

The sink records each usage-topic partition's watermark (`partition_watermarks`, see
`watermarks.py`): the highest event time it stored there minus the allowed lateness, as
the worker computes it. `as_of` is the lowest over ALL partitions: every window ending
at or before it has closed, so totals up to `as_of` change only by late corrections
(which become adjustments once their month closed). Unknown (None) until every
partition has a watermark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Finality:
    as_of: datetime | None = None  # totals of windows ending by then are final
    open_windows: int | None = None  # windows in the range not closed yet (None: unknown)
    final: bool = False  # an invoice: its month closed; usage: as_of passed the range

    def to_json(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "open_windows": self.open_windows,
            "final": self.final,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Finality:
        as_of = data.get("as_of")
        open_windows = data.get("open_windows")
        return cls(
            datetime.fromisoformat(as_of) if isinstance(as_of, str) else None,
            int(open_windows) if isinstance(open_windows, int) else None,
            bool(data.get("final")),
        )


def as_of(client: Client) -> datetime | None:
    """The lowest partition watermark, or None while some partition has none."""
    rows = client.query(
        "SELECT count(), min(w), max(n) FROM (SELECT partition, max(watermark) AS w,"
        " max(partitions) AS n FROM partition_watermarks GROUP BY partition)"
    ).result_rows
    count, lowest, partitions = rows[0]
    if not count or count < partitions or lowest is None:
        return None
    moment = lowest if lowest.tzinfo else lowest.replace(tzinfo=UTC)
    return None if moment <= EPOCH else moment


def open_windows(
    client: Client, tenant: str, start: datetime, end: datetime, after: datetime
) -> int:
    """Windows of `tenant` in [start, end) holding stored events at or after `after`
    (the watermark): the worker has not closed them, so their totals are still coming."""
    size = (
        client.query(
            "SELECT any(window_size_s) FROM window_totals WHERE tenant_id = {t:String}",
            parameters={"t": tenant},
        ).result_rows[0][0]
        or 60
    )
    return int(
        client.query(
            f"""SELECT count(DISTINCT model,
                intDiv(toUnixTimestamp64Milli(time), {int(size) * 1000}))
            FROM raw_events_latest WHERE tenant_id = {{t:String}}
              AND time >= greatest({{start:DateTime64(3, 'UTC')}},
                  toDateTime64({{after:DateTime64(3, 'UTC')}}, 3, 'UTC') - {int(size)})
              AND time < {{end:DateTime64(3, 'UTC')}}""",
            parameters={"t": tenant, "start": start, "end": end, "after": after},
        ).result_rows[0][0]
    )


def of_range(
    client: Client, tenant: str, start: datetime, end: datetime, *, closed: bool | None = None
) -> Finality:
    """The finality of `tenant`'s totals in [start, end). `closed` (invoices) decides
    `final`; otherwise the range is final once `as_of` passed its end."""
    moment = as_of(client)
    if moment is None:
        return Finality(None, None, bool(closed))
    pending = open_windows(client, tenant, start, end, moment) if moment < end else 0
    final = closed if closed is not None else (moment >= end and pending == 0)
    return Finality(moment, pending, final)
