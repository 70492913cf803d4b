"""Tenant billing time zones: local days and months as UTC ranges.

A tenant is billed per day and month of its own time zone (`TOKENOPS_CLICKHOUSE_TIME_ZONES`,
default UTC). A local day or month is a UTC range whose ends are local midnights; with
DST a day lasts 23 or 25 hours. Ranges are computed here in Python, with zoneinfo, and
queries take them as plain UTC bounds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tokenops.errors import TokenopsError
from tokenops.quotas.book import load_quota_file


def zone(name: str) -> tzinfo:
    """The IANA zone `name`; an unknown name is a one-line error."""
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TokenopsError(
            f"unknown time zone {name!r}", hint="use an IANA name, e.g. Asia/Shanghai"
        ) from None


def local_midnight(day: date, name: str) -> datetime:
    """The UTC instant at which `day` starts in zone `name`."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(name)).astimezone(UTC)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_range(month: date, name: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the calendar month holding `month`, in zone `name`."""
    first = month.replace(day=1)
    return local_midnight(first, name), local_midnight(next_month(first), name)


def day_range(day: date, name: str) -> tuple[datetime, datetime]:
    return local_midnight(day, name), local_midnight(day + timedelta(days=1), name)


def local_date(moment: datetime, name: str) -> date:
    return moment.astimezone(zone(name)).date()


def whole_utc_hours(*moments: datetime) -> bool:
    """True when every moment is on a UTC hour: hourly rollups then cover a range exactly.

    Zones with a :30 or :45 offset (Asia/Kolkata, Asia/Kathmandu) start their days
    mid-hour, so their ranges are summed from the window totals instead.
    """
    return all(int(m.timestamp()) % 3600 == 0 for m in moments)


def quota_zones(path: Path) -> dict[str, str]:
    """tenant -> the `timezone` of its quotas in a quota file (the one `tokenops quota set`
    publishes), so quotas and invoices count the same local days and months. A tenant
    whose quotas name different zones is an error: which one bills is not for us to guess."""
    zones: dict[str, set[str]] = {}
    for quota in load_quota_file(path):
        zones.setdefault(quota.tenant_id, set()).add(quota.timezone)
    mixed = sorted(tenant for tenant, names in zones.items() if len(names) > 1)
    if mixed:
        raise ValueError(
            f"quotas of {', '.join(mixed)} name several time zones; set the billing zone "
            "in TOKENOPS_CLICKHOUSE_TIME_ZONES"
        )
    return {tenant: names.pop() for tenant, names in zones.items()}
