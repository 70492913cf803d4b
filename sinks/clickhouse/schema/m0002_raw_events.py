"""0002: every accepted usage event, for audit and reconciliation."""

# An event's own columns, as declared here; 0005 rebuilds `raw_events` with them (and
# the signing key id after them) and takes this text.
EVENT_COLUMNS = """\
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
    attributes Map(String, String),"""

SQL = f"""\
-- Every accepted usage event, for audit and reconciliation. Duplicates (same source and
-- id) collapse at merge time; read through `raw_events_latest` (FINAL) or count distinct.
-- The retention TTL is applied by `tokenops clickhouse migrate` from
-- TOKENOPS_CLICKHOUSE_RAW_EVENTS_RETENTION_DAYS.
CREATE TABLE IF NOT EXISTS raw_events
(
{EVENT_COLUMNS}
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
-- A duplicate carries the same tenant and time as its original, so they may lead the key.
ORDER BY (tenant_id, toStartOfHour(time), source, id);

CREATE VIEW IF NOT EXISTS raw_events_latest AS
SELECT * EXCEPT (kafka_partition, kafka_offset, inserted_at) FROM raw_events FINAL;
"""
