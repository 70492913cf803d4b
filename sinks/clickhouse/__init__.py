"""The billing store: ClickHouse (or embedded chDB) tables, the sink that fills them, and
the reads for BI and billing. See docs/clickhouse.md and docs/bi.md."""

from tokenops.sinks.clickhouse.errors import ClickHouseError, StoreBusyError
from tokenops.sinks.clickhouse.settings import ClickHouseSettings
from tokenops.sinks.clickhouse.store import ClickHouseStore, open_store

__all__ = [
    "ClickHouseError",
    "ClickHouseSettings",
    "ClickHouseStore",
    "StoreBusyError",
    "open_store",
]
