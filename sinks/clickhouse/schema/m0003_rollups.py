"""0003: hour, day and month rollups by tenant and model, and the views that read them.

The three grains are one table shape; they differ only in the bucket column, its type
and the partitioning, so the shape is written once below.
"""

from tokenops.sinks.clickhouse.schema.m0001_window_totals import COUNTERS


def _rollup(table: str, bucket: str, bucket_type: str, partition_by: str | None) -> str:
    partition = f"PARTITION BY {partition_by}\n" if partition_by else ""
    return f"""\
CREATE TABLE IF NOT EXISTS {table}
(
    tenant_id String,
    model LowCardinality(String),
    {bucket} {bucket_type},
{COUNTERS}
    window_count UInt64,
    computed_at DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
{partition}ORDER BY (tenant_id, model, {bucket});
"""


def _latest(view: str, table: str) -> str:
    return f"""\
CREATE VIEW IF NOT EXISTS {view} AS
SELECT * EXCEPT (computed_at) FROM {table} FINAL;
"""


_HEADER = """\
-- Hour, day and month rollups by tenant and model, UTC buckets.
-- The sink RECOMPUTES every bucket a batch touched from its source (hour from
-- window_totals FINAL, day from hours, month from days) and inserts the absolute result
-- with `computed_at` as the version. A corrected window therefore replaces, never adds
-- to, its buckets, and a replay recomputes the same numbers. Read through the views
-- (FINAL) below. No summing engine anywhere: a replayed row would be added again.
"""

SQL = _HEADER + "\n".join(
    [
        _rollup("usage_hourly", "hour", "DateTime('UTC')", "toYYYYMM(hour)"),
        _rollup("usage_daily", "day", "Date", "toYear(day)"),
        _rollup("usage_monthly", "month", "Date", None),
        _latest("hourly_usage", "usage_hourly"),
        _latest("daily_usage", "usage_daily"),
        _latest("monthly_usage", "usage_monthly"),
    ]
)
