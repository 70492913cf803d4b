"""0001: the worker's window totals and the view that reads their latest revision."""

# A window's token counters and event count, as declared here; the rollups of 0003 hold
# the same columns and take this text.
COUNTERS = """\
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    event_count UInt64,"""

SQL = f"""\
-- The worker's window totals: one row per (tenant, model, window) and revision.
-- Rows hold ABSOLUTE totals; the latest revision wins (ties: more events), so replays and
-- re-emissions are harmless. ReplacingMergeTree removes superseded rows only when parts
-- merge: always read through `window_totals_latest` (FINAL) or argMax(..., version).
CREATE TABLE IF NOT EXISTS window_totals
(
    tenant_id String,
    model LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_size_s UInt32,
{COUNTERS}
    first_event_time DateTime64(3, 'UTC'),
    last_event_time DateTime64(3, 'UTC'),
    revision UInt32,
    emitted_at DateTime64(3, 'UTC'),
    -- revision first, event_count breaks ties (a re-close after a crash may repeat a
    -- revision with more events)
    version UInt64 MATERIALIZED bitShiftLeft(toUInt64(revision), 40) + least(event_count, 1099511627775),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, model, window_size_s, window_start);

CREATE VIEW IF NOT EXISTS window_totals_latest AS
SELECT
    tenant_id, model, window_start, window_size_s,
    input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens,
    reasoning_output_tokens, event_count, first_event_time, last_event_time, revision,
    emitted_at
FROM window_totals FINAL;
"""
