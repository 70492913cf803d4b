"""Recovering a partition's state: local store, then the changelog tail, then a claim.

The changelog topic has one partition per input partition and holds, in order, `claim`
records (a worker took the partition) and `delta` records (one per batch). Replay rule,
the same for every reader: a delta counts only if its owner made the latest claim before
it AND it starts where the state's next input offset is. A worker that lost the
partition without noticing (a zombie) can therefore append deltas that nobody applies.

Recovery: apply the tail after the local store's position; write our claim; read again
up to the claim (deltas the previous owner appended meanwhile are legitimately its own).
If the local store disagrees with the log (a delta of the current owner does not follow
on), the store is wiped and the whole changelog replayed.

A delta written as `delta-part` records (`delta.py`) counts as one delta at the offset of
its last part; an incomplete run of parts (the writer crashed, or a claim came between)
counts as nothing, like a delta that was never written.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

from confluent_kafka import Consumer, TopicPartition

from tokenops.settings import KafkaSettings
from tokenops.streams.errors import StateError
from tokenops.streams.publisher import BatchPublisher
from tokenops.streams.state.delta import (
    CLAIM_KEY,
    PART_KEY,
    DeltaParts,
    StateDelta,
    claim_bytes,
    claim_owner,
)
from tokenops.streams.state.store import PartitionStore

logger = logging.getLogger(__name__)


class _Diverged(Exception):
    pass


class ChangelogRecovery:
    def __init__(self, kafka: KafkaSettings, topic: str, publisher: BatchPublisher) -> None:
        self.kafka, self.topic, self.publisher = kafka, topic, publisher

    def recover(
        self, partition: int, open_store: Callable[[Path], PartitionStore], path: Path
    ) -> tuple[PartitionStore, str]:
        """Bring the store at `path` up to date and claim the partition: (store, owner)."""
        store: PartitionStore = open_store(path)
        try:
            self._replay(partition, store, until=None)
        except _Diverged:
            logger.warning(
                "local state diverges from the changelog, rebuilding partition=%d", partition
            )
            store.close()
            PartitionStore.wipe(path)
            store = open_store(path)
            try:
                self._replay(partition, store, until=None)
            except _Diverged as exc:
                store.close()
                raise StateError(
                    partition,
                    "the changelog is inconsistent: a delta of the current owner does not "
                    "follow on from the state before it",
                    hint="a worker that stalled past the session timeout kept writing; "
                    "see docs/streams.md, Limits",
                ) from exc
        owner = uuid.uuid4().hex
        claim = (self.topic, partition, CLAIM_KEY, claim_bytes(owner))
        claim_offset = self.publisher.publish([], [claim])[0]
        self._replay(partition, store, until=claim_offset)
        if store.meta.get("owner") != owner:
            raise StateError(partition, "our claim was not found in the changelog")
        logger.info(
            "recovered partition=%d next_offset=%d changelog_next=%d",
            partition,
            store.meta.get("next_offset", 0),
            store.meta.get("changelog_next", 0),
        )
        return store, owner

    def _replay(self, partition: int, store: PartitionStore, until: int | None) -> None:
        tp = TopicPartition(self.topic, partition)
        consumer = Consumer(
            {
                **self.kafka.librdkafka(),
                "group.id": f"{self.topic}.recovery",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.max.bytes": 64_000_000,
            }
        )
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            end = high if until is None else until + 1
            start = store.meta.get("changelog_next", 0)
            if start < low:
                if start > 0:
                    logger.error(
                        "changelog records %d..%d expired before recovery partition=%d",
                        start,
                        low - 1,
                        partition,
                    )
                start = low
            if start >= end:
                return
            consumer.assign([TopicPartition(self.topic, partition, start)])
            position = start
            unverified = until is None and "owner" in store.meta  # state from disk
            parts = DeltaParts()
            while position < end:
                for message in consumer.consume(min(10_000, end - position), timeout=1.0):
                    if message.error():
                        continue
                    offset = cast(int, message.offset())
                    position = offset + 1
                    if offset >= end:
                        continue
                    key, value = cast(bytes, message.key()), cast(bytes, message.value())
                    if key == PART_KEY:
                        whole = parts.add(value)
                        if whole is None:
                            continue
                        value = whole
                    elif parts.pending:
                        logger.warning(
                            "dropping an incomplete multi-part delta partition=%d offset=%d",
                            partition,
                            offset,
                        )
                        parts.interrupt()
                    self._apply(partition, store, key, value, position, unverified)
                    unverified = unverified and key != CLAIM_KEY
        finally:
            consumer.close()

    def _apply(
        self,
        partition: int,
        store: PartitionStore,
        key: bytes,
        value: bytes,
        nxt: int,
        unverified: bool,
    ) -> None:
        """Apply one record; `unverified`: the store came from disk and no claim was read
        since, so a delta of another owner means the store missed a claim."""
        if key == CLAIM_KEY:
            store.set_claim(claim_owner(value), nxt)
            return
        delta = StateDelta.from_bytes(value)
        owner = store.meta.get("owner")
        if delta.owner != owner and unverified:
            # a local store that never saw the claim before this delta: it may hold
            # deltas the log does not count (its owner stalled); rebuild it from the log
            raise _Diverged()
        if owner is None:  # the first claim expired with the retention: trust the log
            owner = delta.owner
        if delta.owner != owner:
            logger.warning(
                "ignoring a delta of a former owner partition=%d offset=%d", partition, nxt - 1
            )
            store.set_claim(owner or "", nxt)
            return
        expected = store.meta.get("next_offset")
        if expected is not None and delta.start_offset != expected:
            raise _Diverged()
        store.apply(delta, nxt, delta.owner)
