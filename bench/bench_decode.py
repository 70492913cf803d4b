"""Events/s decoded by `decode_record` from batch records, next to orjson alone.

`python -m bench.bench_decode [events_per_record] [records] [--write]` builds batch
records the way the SDK does (simulator events, one tenant per record) and measures on
one core, in the same run, the median of 5 rounds of:

1. `orjson.loads` of each record (no validation, no objects): the parsing ceiling;
2. `decode_record`: every rule of the contract checked, one `UsageEvent` per event.

Figures are CPU time (`time.process_time`), so other load on the machine inflates them
less than wall time would. `--write` rewrites the "Event decoding" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson

from tokenops.producers.batcher import batch_record
from tokenops.producers.simulator import SimulationConfig, Simulator
from tokenops.schemas import BATCH_HEADERS, decode_record
from tokenops.schemas.codec import encode_fields

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Event decoding"


def records(per_record: int, count: int) -> list[bytes]:
    config = SimulationConfig(tenants=20, rate=1e9, duration_s=per_record * count / 1e9, seed=2)
    by_tenant: dict[str, list[bytes]] = defaultdict(list)
    out = []
    for emission in Simulator(config).emissions():
        assert emission.fields is not None
        tenant, encoded = encode_fields(emission.fields, max_future_skew_s=1e9)
        group = by_tenant[tenant]
        group.append(encoded)
        if len(group) == per_record:
            out.append(batch_record(tenant, group)[1])
            by_tenant[tenant] = []
    return out


def rate(decode: Callable[[bytes], int], values: list[bytes]) -> float:
    rounds = []
    for _ in range(5):
        began, events = time.process_time(), 0
        for value in values:
            events += decode(value)
        rounds.append(events / (time.process_time() - began))
    return statistics.median(rounds)


def main(per_record: int = 500, count: int = 200, write: bool = False) -> None:
    values = records(per_record, count)
    decode_record(values[0], BATCH_HEADERS)  # the decoder's caches, as in a running worker
    ceiling = rate(lambda v: len(orjson.loads(v)["events"]), values)
    decoded = rate(lambda v: len(decode_record(v, BATCH_HEADERS)), values)
    size = sum(map(len, values)) // (per_record * len(values))
    section = "\n".join(
        [
            SECTION,
            "",
            f"`python -m bench.bench_decode {per_record} {count}`: {len(values)} batch records "
            f"of {per_record} simulator events (~{size} bytes per event), one core, CPU time, "
            f"median of 5 rounds; shared 2-core machine under load (load average "
            f"{os.getloadavg()[0]:.1f}).",
            "",
            "| decoder | events/s | vs orjson |",
            "| --- | ---: | ---: |",
            f"| orjson.loads only (baseline: no checks, no objects) | {ceiling:,.0f} | 1.00 |",
            f"| decode_record: validated UsageEvents | {decoded:,.0f} | {decoded / ceiling:.2f} |",
            "",
        ]
    )
    print(section)
    if write:
        write_section(section)


def write_section(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        DOC.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    DOC.write_text("".join(lines[:start]) + section + "\n" + "".join(lines[end:]))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--write"]
    per_record, count = (numbers + [500, 200][len(numbers) :])[:2]
    main(per_record, count, write="--write" in sys.argv)
