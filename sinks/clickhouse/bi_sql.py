"""`tokenops sql`: any read-only query against the billing store, even while the sink
holds the embedded store.

chDB allows one process per store, so while `tokenops sink clickhouse` runs, BI queries
are forwarded to it (its listener's `/v1/sql`, with its run token) and run there on the store it
holds; otherwise they run in the CLI's own process. Either way ClickHouse itself enforces
read-only (`readonly=1`: no writes, no DDL, no settings changes) and a time limit.
Values are bound parameters (`{tenant:String}`), never pasted into the SQL.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from tokenops.errors import TokenopsError

READ_ONLY = {"readonly": 1, "max_execution_time": 60}
PARAM_PREFIX = "param_"  # how the endpoint's query string carries bound parameters


def run_sql(client: Client, sql: str, parameters: dict[str, str]) -> dict[str, Any]:
    """{"columns": [...], "rows": [[...], ...]} with JSON-safe values (Decimals as text)."""
    if not sql.strip():
        raise TokenopsError("empty SQL", hint='e.g. tokenops sql "SELECT count() FROM daily_usage"')
    try:
        result = client.query(sql, parameters=parameters, settings=READ_ONLY)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenopsError(f"the query failed: {first[:500]}") from exc
    return {
        "columns": list(result.column_names),
        "rows": [[_plain(v) for v in row] for row in result.result_rows],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
