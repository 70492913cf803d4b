-- Cluster variant of migrations/0002: raw events, sharded by tenant; a duplicate (same
-- source and id) carries the same tenant, so it lands on the same shard and collapses.
CREATE TABLE IF NOT EXISTS raw_events_local ON CLUSTER tokenops
(
    source String,
    id String,
    time DateTime64(3, 'UTC'),
    tenant_id String,
    project_id String DEFAULT '',
    agent_id String DEFAULT '',
    user_id String DEFAULT '',
    api_key_id String DEFAULT '',
    region LowCardinality(String) DEFAULT '',
    node_id String DEFAULT '',
    model LowCardinality(String),
    provider LowCardinality(String),
    operation LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    attributes Map(String, String),
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/raw_events', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (tenant_id, toStartOfHour(time), source, id);

CREATE TABLE IF NOT EXISTS raw_events ON CLUSTER tokenops AS raw_events_local
ENGINE = Distributed(tokenops, currentDatabase(), raw_events_local, cityHash64(tenant_id));

CREATE VIEW IF NOT EXISTS raw_events_latest ON CLUSTER tokenops AS
SELECT * EXCEPT (kafka_partition, kafka_offset, inserted_at) FROM raw_events FINAL;
