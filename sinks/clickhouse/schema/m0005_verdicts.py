"""0005: the worker's verdicts: raw events keep every occurrence and the signing key id,
and the dead letters are stored beside them, so the billing view counts what the worker
counted."""

from tokenops.sinks.clickhouse.schema.m0002_raw_events import EVENT_COLUMNS

SQL = f"""\
-- The worker is the one judge of what is counted; raw events follow its verdicts.
-- `raw_events` gains the signing key id and keeps every occurrence of an event (the
-- Kafka position joins the sort key), so the billing view can keep the FIRST occurrence,
-- as the worker's deduplication does, instead of whichever copy a merge left.
-- `dead_letters` holds the worker's dead letters of the usage topic; the billing view
-- leaves their records out and `raw_events_rejected` shows them with the reason.
ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS key_id String DEFAULT '' AFTER attributes;

-- The sort key cannot take existing columns in place: the table is rebuilt from itself
-- in one atomic replace, which is safe to run again after a crash.
CREATE OR REPLACE TABLE raw_events
(
{EVENT_COLUMNS}
    key_id String DEFAULT '',
    kafka_partition UInt32,
    kafka_offset UInt64,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
-- Only a replay of the same record (same position) collapses; a second occurrence of
-- an id elsewhere is kept, for the views to judge.
ORDER BY (tenant_id, toStartOfHour(time), source, id, kafka_partition, kafka_offset)
AS SELECT * FROM raw_events;

CREATE TABLE IF NOT EXISTS dead_letters
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
ENGINE = ReplacingMergeTree
-- A worker replay may dead-letter a record again: one row per input position.
ORDER BY (topic, partition, offset);

-- What the worker counted: not dead-lettered, and the first occurrence of (source, id)
-- in its partition (the worker deduplicates per input partition, in offset order; the
-- sink stores only records in their tenant's home partition).
CREATE OR REPLACE VIEW raw_events_latest AS
SELECT * EXCEPT (kafka_partition, kafka_offset, inserted_at)
FROM raw_events FINAL
WHERE (kafka_partition, kafka_offset) NOT IN (SELECT partition, offset FROM dead_letters)
ORDER BY kafka_partition, kafka_offset
LIMIT 1 BY kafka_partition, source, id;

-- The events of dead-lettered records, with the worker's reason: never billed.
CREATE OR REPLACE VIEW raw_events_rejected AS
SELECT r.* EXCEPT (inserted_at), d.reason AS reason, d.field AS field,
    d.dead_lettered_at AS dead_lettered_at
FROM raw_events AS r FINAL
INNER JOIN (SELECT * FROM dead_letters FINAL) AS d
    ON r.kafka_partition = d.partition AND r.kafka_offset = d.offset;
"""
