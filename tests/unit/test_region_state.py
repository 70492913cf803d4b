"""Region in the worker's state: a changelog delta and a local store written by the
version before region still read back, as region '', so a worker upgrades in place."""

from __future__ import annotations

import struct
from pathlib import Path

from tokenops.streams.state.delta import StateDelta
from tokenops.streams.state.store import PartitionStore

T0 = 1_750_000_020_000
TOTALS = [10, 5, 0, 0, 0, 2, T0 + 1, T0 + 2, 1]

# A delta as the version before region wrote it (`"v": 1`, rows without region).
_DELTA_BEFORE_REGION = (
    b'{"v":1,"owner":"o1","start":7,"next":9,"wm":5,"max":6,"expire":1,'
    b'"open":[["acme","m1",1750000020000,[10,5,0,0,0,2,1750000020001,1750000020002,0]]],'
    b'"closed":[["acme","m2",1750000020000,[10,5,0,0,0,2,1750000020001,1750000020002,1]]],'
    b'"unopened":[["acme","m2",1750000020000]],"dedup":[],"proc":{}}'
)


def test_a_delta_of_the_version_before_region_reads_as_region_empty() -> None:
    delta = StateDelta.from_bytes(_DELTA_BEFORE_REGION)
    assert delta.open == [("acme", "m1", "", T0, [*TOTALS[:8], 0])]
    assert delta.closed == [("acme", "m2", "", T0, TOTALS)]
    assert delta.unopened == [("acme", "m2", "", T0)]


def test_a_delta_round_trips_its_regions() -> None:
    delta = StateDelta(
        "o1",
        7,
        9,
        open=[("acme", "m1", "west", T0, TOTALS), ("acme", "m1", "", T0, TOTALS)],
        closed=[("acme", "m1", "east", T0, TOTALS)],
        unopened=[("acme", "m1", "east", T0)],
    )
    assert StateDelta.from_bytes(delta.to_bytes()) == delta


def test_the_store_keeps_regions_apart_and_reads_keys_written_before_region(
    tmp_path: Path,
) -> None:
    store = PartitionStore(tmp_path / "p0", bucket_ms=3_600_000, window_ms=60_000)
    # an open and a closed window as the version before region stored them
    start = struct.pack(">q", T0)
    store.db[b"o" + start + b"acme|m1"] = struct.pack(">9q", *TOTALS)
    store.db[b"c" + start + b"acme|m2"] = struct.pack(">9q", *TOTALS)
    assert store.open_windows() == {T0: {("acme", "m1", ""): TOTALS}}
    assert store.closed_window(("acme", "m2", "", T0)) == TOTALS
    assert store.closed_window(("acme", "m2", "west", T0)) is None
    delta = StateDelta(
        "o1",
        0,
        1,
        open=[("acme", "m1", "west", T0, [1] * 9), ("acme", "m1", "", T0, [2] * 9)],
        closed=[("acme", "m2", "west", T0, [3] * 9)],
    )
    store.apply(delta, 1, "o1")
    assert store.open_windows() == {
        T0: {("acme", "m1", ""): [2] * 9, ("acme", "m1", "west"): [1] * 9}
    }
    assert store.closed_window(("acme", "m2", "", T0)) == TOTALS
    assert store.closed_window(("acme", "m2", "west", T0)) == [3] * 9
    store.close()
