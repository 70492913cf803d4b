"""0007: region joins the identity (and sorting key) of window totals and invoice
adjustments."""

SQL = """\
-- Region is part of a window's identity (the worker keys windows by tenant, model,
-- region and window; '' for events without a region). Two regions' windows of one
-- tenant and model must never replace each other, so `region` joins the sorting key,
-- which is what ReplacingMergeTree replaces by.
--
-- `MODIFY ORDER BY` changes only metadata, and may append only a column added in the
-- same ALTER, without a default expression (ClickHouse docs, "Manipulating Key
-- Expressions"): so `region` has no DEFAULT clause. A String column's implicit default
-- is '' all the same: rows written before this migration, and inserts that leave the
-- column out, are region ''. Running the ALTER again is a no-op (the column exists and
-- the key is already this one), as migrations must be.
ALTER TABLE window_totals
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) AFTER model,
    MODIFY ORDER BY (tenant_id, model, window_size_s, window_start, region);

CREATE OR REPLACE VIEW window_totals_latest AS
SELECT
    tenant_id, model, region, window_start, window_size_s,
    input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens,
    reasoning_output_tokens, event_count, first_event_time, last_event_time, revision,
    emitted_at
FROM window_totals FINAL;

-- A correction's adjustment names its window, region included: two regions' corrections
-- of one window with the same (revision, event_count) are two adjustments.
ALTER TABLE invoice_adjustments
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) AFTER model,
    MODIFY ORDER BY (tenant_id, model, window_start, window_size_s, revision, new_event_count, region);
"""
