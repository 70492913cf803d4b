-- Hour, day and month rollups by tenant and model, UTC buckets.
-- The sink RECOMPUTES every bucket a batch touched from its source (hour from
-- window_totals FINAL, day from hours, month from days) and inserts the absolute result
-- with `computed_at` as the version. A corrected window therefore replaces, never adds
-- to, its buckets, and a replay recomputes the same numbers. Read through the views
-- (FINAL) below. No summing engine anywhere: a replayed row would be added again.
CREATE TABLE IF NOT EXISTS usage_hourly
(
    tenant_id String,
    model LowCardinality(String),
    hour DateTime('UTC'),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    event_count UInt64,
    window_count UInt64,
    computed_at DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, model, hour);

CREATE TABLE IF NOT EXISTS usage_daily
(
    tenant_id String,
    model LowCardinality(String),
    day Date,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    event_count UInt64,
    window_count UInt64,
    computed_at DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYear(day)
ORDER BY (tenant_id, model, day);

CREATE TABLE IF NOT EXISTS usage_monthly
(
    tenant_id String,
    model LowCardinality(String),
    month Date,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    event_count UInt64,
    window_count UInt64,
    computed_at DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (tenant_id, model, month);

CREATE VIEW IF NOT EXISTS hourly_usage AS
SELECT * EXCEPT (computed_at) FROM usage_hourly FINAL;

CREATE VIEW IF NOT EXISTS daily_usage AS
SELECT * EXCEPT (computed_at) FROM usage_daily FINAL;

CREATE VIEW IF NOT EXISTS monthly_usage AS
SELECT * EXCEPT (computed_at) FROM usage_monthly FINAL;
