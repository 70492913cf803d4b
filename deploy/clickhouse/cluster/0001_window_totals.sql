-- Cluster variant of migrations/0001: a ReplicatedReplacingMergeTree per shard
-- (`window_totals_local`) and a Distributed table with the single-node name
-- (`window_totals`), sharded by tenant so every revision of a window lands on one shard
-- and FINAL (applied per shard) stays exact. Needs a cluster named `tokenops` in
-- remote_servers and the {shard} and {replica} macros on every node.
CREATE TABLE IF NOT EXISTS window_totals_local ON CLUSTER tokenops
(
    tenant_id String,
    model LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_size_s UInt32,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    event_count UInt64,
    first_event_time DateTime64(3, 'UTC'),
    last_event_time DateTime64(3, 'UTC'),
    revision UInt32,
    emitted_at DateTime64(3, 'UTC'),
    version UInt64 MATERIALIZED bitShiftLeft(toUInt64(revision), 40) + least(event_count, 1099511627775),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/window_totals', '{replica}', version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, model, window_size_s, window_start);

CREATE TABLE IF NOT EXISTS window_totals ON CLUSTER tokenops AS window_totals_local
ENGINE = Distributed(tokenops, currentDatabase(), window_totals_local, cityHash64(tenant_id));

CREATE VIEW IF NOT EXISTS window_totals_latest ON CLUSTER tokenops AS
SELECT
    tenant_id, model, window_start, window_size_s,
    input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens,
    reasoning_output_tokens, event_count, first_event_time, last_event_time, revision,
    emitted_at
FROM window_totals FINAL;
