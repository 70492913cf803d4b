-- Cluster variant of migrations/0003: the rollups, sharded by tenant like their sources.

CREATE TABLE IF NOT EXISTS usage_hourly_local ON CLUSTER tokenops
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/usage_hourly', '{replica}', computed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, model, hour);

CREATE TABLE IF NOT EXISTS usage_hourly ON CLUSTER tokenops AS usage_hourly_local
ENGINE = Distributed(tokenops, currentDatabase(), usage_hourly_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS usage_daily_local ON CLUSTER tokenops
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/usage_daily', '{replica}', computed_at)
PARTITION BY toYear(day)
ORDER BY (tenant_id, model, day);

CREATE TABLE IF NOT EXISTS usage_daily ON CLUSTER tokenops AS usage_daily_local
ENGINE = Distributed(tokenops, currentDatabase(), usage_daily_local, cityHash64(tenant_id));

CREATE TABLE IF NOT EXISTS usage_monthly_local ON CLUSTER tokenops
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/usage_monthly', '{replica}', computed_at)
ORDER BY (tenant_id, model, month);

CREATE TABLE IF NOT EXISTS usage_monthly ON CLUSTER tokenops AS usage_monthly_local
ENGINE = Distributed(tokenops, currentDatabase(), usage_monthly_local, cityHash64(tenant_id));

CREATE VIEW IF NOT EXISTS hourly_usage ON CLUSTER tokenops AS
SELECT * EXCEPT (computed_at) FROM usage_hourly FINAL;

CREATE VIEW IF NOT EXISTS daily_usage ON CLUSTER tokenops AS
SELECT * EXCEPT (computed_at) FROM usage_daily FINAL;

CREATE VIEW IF NOT EXISTS monthly_usage ON CLUSTER tokenops AS
SELECT * EXCEPT (computed_at) FROM usage_monthly FINAL;
