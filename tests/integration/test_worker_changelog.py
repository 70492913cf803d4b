"""Changelog recovery on the real broker: claims fence a stale owner's deltas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tokenops.settings import KafkaSettings
from tokenops.streams.publisher import BatchPublisher
from tokenops.streams.state.changelog import ChangelogRecovery
from tokenops.streams.state.delta import (
    CLAIM_KEY,
    DELTA_KEY,
    StateDelta,
    claim_bytes,
    delta_records,
    part_bytes_below,
)
from tokenops.streams.state.store import PartitionStore
from tokenops.streams.topics import max_message_bytes

pytestmark = pytest.mark.integration
T0 = 1_750_000_020_000


def _open(path: Path) -> PartitionStore:
    return PartitionStore(path, bucket_ms=3_600_000, window_ms=60_000)


def _delta(owner: str, start: int, nxt: int, count: int) -> bytes:
    totals = [count, 0, 0, 0, 0, count, T0, T0, 0]
    return StateDelta(owner, start, nxt, open=[("acme", "m1", "", T0, totals)]).to_bytes()


def test_a_stale_owner_cannot_change_the_state_after_a_new_claim(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic("changelog", partitions=1)
    publisher = BatchPublisher(kafka_settings, client_id="test")
    publisher.publish(
        [],
        [
            (topic, 0, CLAIM_KEY, claim_bytes("a")),
            (topic, 0, DELTA_KEY, _delta("a", 0, 10, 10)),
            (topic, 0, CLAIM_KEY, claim_bytes("b")),  # b took over at offset 10
            (topic, 0, DELTA_KEY, _delta("a", 10, 20, 20)),  # a, not knowing yet: ignored
            (topic, 0, DELTA_KEY, _delta("b", 10, 15, 15)),
        ],
    )
    recovery = ChangelogRecovery(kafka_settings, topic, publisher)
    store, owner = recovery.recover(0, _open, tmp_path / "fresh")
    assert store.meta["owner"] == owner not in ("a", "b")
    assert store.meta["next_offset"] == 15
    assert store.open_windows()[T0][("acme", "m1", "")][5] == 15
    store.close()

    # a local store that ran ahead with a stale owner's delta is rebuilt from the log
    stale = _open(tmp_path / "stale")
    stale.set_claim("a", 2)
    stale.apply(StateDelta.from_bytes(_delta("a", 0, 10, 10)), 2, "a")
    stale.apply(StateDelta.from_bytes(_delta("a", 10, 20, 20)), 4, "a")
    stale.close()
    publisher.publish([], [(topic, 0, DELTA_KEY, _delta(owner, 15, 16, 16))])
    store, _ = recovery.recover(0, _open, tmp_path / "stale")
    assert store.meta["next_offset"] == 16
    assert store.open_windows()[T0][("acme", "m1", "")][5] == 16
    store.close()
    publisher.close()


def test_a_delta_larger_than_the_topic_limit_is_written_in_parts_and_replayed_exactly(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """The changelog topic keeps the broker's default max.message.bytes (1 MiB); a
    batch of 200,000 unique ids makes a delta of about 5 MB."""
    topic = new_topic("changelog", partitions=1)
    limit = max_message_bytes(kafka_settings, [topic])
    assert limit <= 1_048_588  # not raised
    bound = part_bytes_below(limit)
    publisher = BatchPublisher(kafka_settings, client_id="test", batch_bytes=bound)
    keys = "\n".join(f"//node/1\x00ev-{i:09d}" for i in range(200_000))
    big = StateDelta("a", 0, 1000, dedup={T0 // 3_600_000: keys})
    parts = delta_records(big, bound)
    assert len(big.to_bytes()) > limit and all(len(v) <= bound for _, v in parts)
    after = StateDelta.from_bytes(_delta("a", 1000, 1001, 7))
    torn = delta_records(StateDelta("a", 1001, 2000, dedup={1: keys}), bound)
    publisher.publish(
        [],
        [
            (topic, 0, CLAIM_KEY, claim_bytes("a")),
            *((topic, 0, k, v) for k, v in parts),
            (topic, 0, DELTA_KEY, after.to_bytes()),
            # "a" crashed after two parts of its next delta: that batch never completed
            *((topic, 0, k, v) for k, v in torn[:2]),
        ],
    )
    recovery = ChangelogRecovery(kafka_settings, topic, publisher)
    store, _ = recovery.recover(0, _open, tmp_path / "fresh")
    assert store.meta["next_offset"] == 1001  # the torn delta does not count
    assert store.seen(["//node/1\x00ev-000000000", "//node/1\x00ev-000199999"]) == [True, True]
    assert store.open_windows()[T0][("acme", "m1", "")][5] == 7
    store.close()
    publisher.close()
