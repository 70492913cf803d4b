"""`--format parquet`: rows written as Parquet by ClickHouse itself (chDB in process).

ClickHouse's Parquet writer, not a second library: the column types below are the
store's, so a BI tool reads Decimal amounts as decimals and counts as integers.
"""

from __future__ import annotations

from typing import Any

import chdb
import orjson

from tokenops.schemas import TOKEN_TYPES

INVOICE_STRUCTURE = (
    "kind String, model String, region String, token_type String, quantity Int64, "
    "unit_price_per_million Decimal(38, 9), currency String, amount Decimal(38, 2), "
    "original_invoice Nullable(String), window_start Nullable(String), "
    "event_count Nullable(Int64)"
)


def usage_structure(with_bucket: bool) -> str:
    counts = ", ".join(f"{name} UInt64" for name in (*TOKEN_TYPES, "event_count"))
    return ("bucket String, " if with_bucket else "") + f"model String, {counts}"


def to_parquet(rows: list[dict[str, Any]], structure: str) -> bytes:
    """`rows` as one Parquet file with the given ClickHouse column types."""
    data = b"\n".join(orjson.dumps(row, default=str) for row in rows).decode()
    # A string literal: backslashes and quotes escaped, so row values stay data.
    literal = "'" + data.replace("\\", "\\\\").replace("'", "\\'") + "'"
    sql = f"SELECT * FROM format(JSONEachRow, '{structure}', {literal})"
    return bytes(chdb.query(sql, "Parquet").bytes())  # type: ignore[no-untyped-call]
