"""The stream worker (`tokenops worker`): exact event-time window totals per tenant and model.

Flow of one batch of one input partition (see docs/streams.md for the semantics):

    usage records --Faust take_events--> PartitionState.process
        decode (dead-letter the bad record whole) -> dedup (source + id) -> windows
        -> partition processors (quotas) -> outputs + one StateDelta
    BatchPublisher: outputs acked -> THEN the delta's changelog record acked
    PartitionStore: the delta applied atomically to RocksDB (with the next input offset)

Modules: `windows` (pure window/watermark/correction logic), `partition` (one batch),
`routing` (where a record counts, and its clock), `state/` (`delta`, `store`,
`changelog`: state change, local state, recovery and claims), `publisher`, `worker`
(partitions, batches, idle ticks), `app` and `batch_consumer` (Faust wiring),
`credentials` (Faust's broker credentials), `topics` (the changelog topic), `metrics`,
`deadletter` (building a dead letter; the header names are `tokenops.deadletters`),
`signing` and `keyring` (signed records), `processors` (the extension point),
`quota_processor` and `quota_metrics` (the quota evaluator as a processor), `settings`,
`errors`. It imports the contract, `tokenops.quotas` and tokenops core; never a sink.

Extension point: a `PartitionProcessor` (processors.py) sees every accepted event of
its partition in offset order and keeps its state inside the worker's exactly-once
state. Pass factories to `create_app(..., processors=[factory])`; per partition:

    processor = factory(partition)
    processor.load(state)                    # {key: JSON value}, {} when fresh
    outputs, delta = processor.apply(events, now_ms=now_ms)
        # outputs: [OutputRecord(topic, key, value, headers)], published and acked
        # before the delta is durable; delta: {key: new JSON value | None (delete)}

`apply` must be deterministic given state and events; its outputs may be published
again after a crash (same key), its state changes count exactly once.
"""

from tokenops.deadletters import DLQ_HEADERS
from tokenops.streams.processors import OutputRecord, PartitionProcessor, ProcessorFactory

__all__ = ["DLQ_HEADERS", "OutputRecord", "PartitionProcessor", "ProcessorFactory"]
