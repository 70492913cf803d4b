-- Cluster variant of migrations/0005: the key id, every occurrence of an event kept
-- (the Kafka position joins the sort key), the worker's dead letters, and billing views
-- that follow its verdicts. The local table is rebuilt from itself in one atomic replace
-- under a ZooKeeper path of its own ({uuid}), so it never meets the old table's path.
ALTER TABLE raw_events_local ON CLUSTER tokenops
    ADD COLUMN IF NOT EXISTS key_id String DEFAULT '' AFTER attributes;

CREATE OR REPLACE TABLE raw_events_local ON CLUSTER tokenops
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
    key_id String DEFAULT '',
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/raw_events/{uuid}', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (tenant_id, toStartOfHour(time), source, id, kafka_partition, kafka_offset)
AS SELECT * FROM raw_events_local;

CREATE OR REPLACE TABLE raw_events ON CLUSTER tokenops AS raw_events_local
ENGINE = Distributed(tokenops, currentDatabase(), raw_events_local, cityHash64(tenant_id));

-- Sharded by partition: a record's dead letter and its raw events are both looked up
-- by position, from every shard (GLOBAL below).
CREATE TABLE IF NOT EXISTS dead_letters_local ON CLUSTER tokenops
(
    topic String,
    partition UInt32,
    offset UInt64,
    reason String,
    field LowCardinality(String),
    key String,
    dead_lettered_at DateTime64(3, 'UTC'),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/dead_letters', '{replica}')
ORDER BY (topic, partition, offset);

CREATE TABLE IF NOT EXISTS dead_letters ON CLUSTER tokenops AS dead_letters_local
ENGINE = Distributed(tokenops, currentDatabase(), dead_letters_local, partition);

CREATE OR REPLACE VIEW raw_events_latest ON CLUSTER tokenops AS
SELECT * EXCEPT (kafka_partition, kafka_offset, inserted_at)
FROM raw_events FINAL
WHERE (kafka_partition, kafka_offset) GLOBAL NOT IN (SELECT partition, offset FROM dead_letters)
ORDER BY kafka_partition, kafka_offset
LIMIT 1 BY kafka_partition, source, id;

CREATE OR REPLACE VIEW raw_events_rejected ON CLUSTER tokenops AS
SELECT r.* EXCEPT (inserted_at), d.reason AS reason, d.field AS field,
    d.dead_lettered_at AS dead_lettered_at
FROM raw_events AS r FINAL
GLOBAL INNER JOIN (SELECT * FROM dead_letters FINAL) AS d
    ON r.kafka_partition = d.partition AND r.kafka_offset = d.offset;
