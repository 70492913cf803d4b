-- Cluster variant of migrations/0007: `region` joins the window's identity (the sorting
-- key of the replicated local tables; a metadata-only change, replicated through
-- ZooKeeper), and the Distributed tables gain the column so inserts and reads carry it.
-- No DEFAULT clause: MODIFY ORDER BY may append only a column added in the same ALTER
-- without one; a String column is '' for older rows and inserts that leave it out.
ALTER TABLE window_totals_local ON CLUSTER tokenops
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) AFTER model,
    MODIFY ORDER BY (tenant_id, model, window_size_s, window_start, region);

ALTER TABLE window_totals ON CLUSTER tokenops
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) AFTER model;

CREATE OR REPLACE VIEW window_totals_latest ON CLUSTER tokenops AS
SELECT
    tenant_id, model, region, window_start, window_size_s,
    input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens,
    reasoning_output_tokens, event_count, first_event_time, last_event_time, revision,
    emitted_at
FROM window_totals FINAL;

ALTER TABLE invoice_adjustments_local ON CLUSTER tokenops
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) AFTER model,
    MODIFY ORDER BY (tenant_id, model, window_start, window_size_s, revision, new_event_count, region);

ALTER TABLE invoice_adjustments ON CLUSTER tokenops
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) AFTER model;
