"""A state delta too large for one changelog record: split into parts, reassembled whole."""

from __future__ import annotations

import pytest

from tokenops.streams.state.delta import (
    DELTA_KEY,
    PART_KEY,
    DeltaParts,
    StateDelta,
    delta_records,
    part_bytes_below,
)

T0 = 1_750_000_020_000


def _delta(keys: int, owner: str = "a" * 32, start: int = 7) -> StateDelta:
    dedup = {T0 // 3_600_000: "\n".join(f"//node/1\x00ev-{i:08d}" for i in range(keys))}
    totals = [keys, 0, 0, 0, 0, keys, T0, T0, 0]
    return StateDelta(
        owner, start, start + 10, open=[("acme", "m1", "west", T0, totals)], dedup=dedup
    )


def _reassemble(records: list[tuple[bytes, bytes]]) -> list[bytes]:
    parts, whole = DeltaParts(), []
    for key, value in records:
        if key == PART_KEY:
            done = parts.add(value)
            if done is not None:
                whole.append(done)
        else:
            parts.interrupt()
            whole.append(value)
    return whole


def test_a_small_delta_is_one_record() -> None:
    delta = _delta(10)
    assert delta_records(delta, 512 * 1024) == [(DELTA_KEY, delta.to_bytes())]


def test_a_large_delta_is_split_below_the_bound_and_reassembled_exactly() -> None:
    delta = _delta(100_000)  # about 2.5 MB of JSON
    bound = part_bytes_below(1_048_588)  # the broker's default max.message.bytes
    records = delta_records(delta, bound)
    assert len(records) > 4
    assert all(key == PART_KEY and len(value) <= bound for key, value in records)
    (whole,) = _reassemble(records)
    assert StateDelta.from_bytes(whole) == delta


def test_an_incomplete_run_of_parts_counts_as_nothing() -> None:
    first, second = _delta(50_000, owner="a" * 32), _delta(50_000, owner="b" * 32)
    a, b = delta_records(first, 64 * 1024), delta_records(second, 64 * 1024)
    claim = (b"claim", b"{}")
    # a crashed after two parts; b claimed and wrote its delta whole
    assert _reassemble([*a[:2], claim, *b]) == [b"{}", second.to_bytes()]
    # a part missing in the middle, or a tail without its start: dropped
    assert _reassemble([*a[:1], *a[2:]]) == []
    assert _reassemble(a[1:]) == []
    # parts of another delta starting before the first finished: only the second counts
    assert _reassemble([*a[:3], *b]) == [second.to_bytes()]


def test_the_bound_follows_the_topic_limit() -> None:
    assert part_bytes_below(1_048_588) == 512 * 1024
    assert part_bytes_below(200_000) < 200_000
    with pytest.raises(ValueError):
        part_bytes_below(2_000)
