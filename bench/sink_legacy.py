"""The ClickHouse sink before the columnar decode, runnable: the benchmark's baseline.

`python -m bench.sink_legacy sink clickhouse` runs the real sink CLI with the per-event
decode (tests/oracles/sink_per_event.py, what `sinks/clickhouse/decoding.py` did up to
commit 60448fd) swapped in (inline decoding only), so the benchmark measures the old and
the new sink on the same topic in the same run.
"""

from __future__ import annotations

import sys

from tests.oracles.sink_per_event import decode_chunk
from tokenops.sinks.clickhouse import decoding


def main() -> None:
    from tokenops.cli import main as cli

    decoding.decode_chunk = decode_chunk  # EventDecoder.submit looks it up at call time
    sys.argv[0] = "tokenops"
    cli()


if __name__ == "__main__":
    main()
