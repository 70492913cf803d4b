"""0006: the finality of billing: partition watermarks, frozen invoices and the adjustments
late corrections to a closed month became."""

SQL = """\
-- Finality of billing (docs/bi.md "Final figures"): the partition watermarks the sink
-- saw, the invoices it froze when their month closed, and the adjustments that late
-- corrections to a closed month became.

-- One row per usage-topic partition and update; the highest watermark wins (read with
-- max()). A partition without events yet has a row at the epoch, so `as_of` (the lowest
-- watermark over all partitions) stays unknown until every partition has one.
CREATE TABLE IF NOT EXISTS partition_watermarks
(
    partition UInt32,
    partitions UInt32,
    watermark DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(watermark)
ORDER BY partition;

-- A closed month's invoice, frozen: `document` is the canonical JSON of its lines,
-- adjustments and totals, `content_hash` its SHA-256. Written once per tenant and month.
CREATE TABLE IF NOT EXISTS invoices
(
    tenant_id String,
    month Date,
    time_zone String,
    number String,
    content_hash String,
    document String,
    as_of DateTime64(3, 'UTC'),
    closed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, month);

-- A correction of a window in a closed month: the token and event deltas against what
-- the store held before it, billed on the tenant's next open invoice (`target_month`).
-- The key holds the new (revision, event_count), so a replayed correction collapses.
CREATE TABLE IF NOT EXISTS invoice_adjustments
(
    tenant_id String,
    target_month Date,
    original_number String,
    original_month Date,
    model LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_size_s UInt32,
    revision UInt32,
    new_event_count UInt64,
    event_count Int64,
    input_tokens Int64,
    output_tokens Int64,
    cache_read_input_tokens Int64,
    cache_creation_input_tokens Int64,
    reasoning_output_tokens Int64,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, model, window_start, window_size_s, revision, new_event_count);
"""
