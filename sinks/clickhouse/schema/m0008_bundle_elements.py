"""0008: the records of a worker's bundle are stored, and dead-lettered, one by one:
`kafka_element` in raw events, `element` in dead letters, and the views that join them."""

SQL = """\
-- A worker forwards the records that landed away from their tenant's home partition in
-- bundles: one usage record holding several (docs/streams.md, "Home partition"). The sink
-- stores each element's events at the bundle's position and the element's index in it
-- (`kafka_element`; 0 for every other record), and the worker's dead letter of one element
-- names that index (`element`), so the views leave out exactly that element, and two
-- elements of one bundle never replace each other.
--
-- Each column joins its table's sorting key in the same ALTER that adds it, without a
-- default expression (see 0007_window_region.sql): rows written before are element 0.
ALTER TABLE raw_events
    ADD COLUMN IF NOT EXISTS kafka_element UInt32 AFTER kafka_offset,
    MODIFY ORDER BY (tenant_id, toStartOfHour(time), source, id, kafka_partition, kafka_offset, kafka_element);

ALTER TABLE dead_letters
    ADD COLUMN IF NOT EXISTS element UInt32 AFTER offset,
    MODIFY ORDER BY (topic, partition, offset, element);

CREATE OR REPLACE VIEW raw_events_latest AS
SELECT * EXCEPT (kafka_partition, kafka_offset, kafka_element, inserted_at)
FROM raw_events FINAL
WHERE (kafka_partition, kafka_offset, kafka_element)
    NOT IN (SELECT partition, offset, element FROM dead_letters)
ORDER BY kafka_partition, kafka_offset, kafka_element
LIMIT 1 BY kafka_partition, source, id;

CREATE OR REPLACE VIEW raw_events_rejected AS
SELECT r.* EXCEPT (inserted_at), d.reason AS reason, d.field AS field,
    d.dead_lettered_at AS dead_lettered_at
FROM raw_events AS r FINAL
INNER JOIN (SELECT * FROM dead_letters FINAL) AS d
    ON r.kafka_partition = d.partition AND r.kafka_offset = d.offset
    AND r.kafka_element = d.element;
"""
