"""What signed records cost: events/s of the worker's decode with and without the check.

`python -m bench.bench_signing [events_per_record] [records]` builds batch records from
simulator events (as `bench_decode` does), signs each like the producer SDK, and
measures on one core, in the same run, the median of 5 rounds of:

1. `decode_record` alone: the baseline, what an unsigned pipeline pays;
2. `decode_record` + `SignatureCheck` (enforce): what the worker pays per record;
3. the producer's `RecordSigner.headers`: what a signing node pays per record.

CPU time (`time.process_time`); figures taken while other work ran on the machine are
noted as such in docs/security.md.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from bench.bench_decode import records
from tokenops.producers.signing import RecordSigner
from tokenops.producers.spool import SpooledRecord
from tokenops.schemas import BATCH_CONTENT_TYPE, BATCH_HEADERS, decode_record
from tokenops.schemas.signing import SIGNATURE_HEADER, Keyring, SignatureCheck, SigningKey

SECRET = b"bench-secret-0123456789abcdef"


def rate(events: int, step: Callable[[], None]) -> float:
    rounds = []
    for _ in range(5):
        started = time.process_time()
        step()
        rounds.append(events / max(time.process_time() - started, 1e-9))
    return statistics.median(rounds)


def main() -> None:
    per_record = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    values = records(per_record, count)
    events = sum(len(decode_record(v, BATCH_HEADERS)) for v in values)
    signer = RecordSigner("bench-1", SECRET, 300.0)
    spooled = [SpooledRecord(0, b"t", BATCH_CONTENT_TYPE, v) for v in values]
    signed = [[*BATCH_HEADERS, *signer.headers(r)] for r in spooled]
    assert all(h[-1][0] == SIGNATURE_HEADER for h in signed)
    check = SignatureCheck(Keyring({"bench-1": SigningKey(SECRET, ("*",))}), enforce=True)

    def plain() -> None:
        for v in values:
            decode_record(v, BATCH_HEADERS)

    def verified() -> None:
        for v, h in zip(values, signed, strict=True):
            check(decode_record(v, h), h)

    def signing() -> None:
        for r in spooled:
            signer.headers(r)

    base, worker, producer = rate(events, plain), rate(events, verified), rate(events, signing)
    print(f"{count} records x {per_record} events, one core, events/s (median of 5):")
    print(f"  decode_record (baseline)          {base:>12,.0f}")
    print(f"  decode_record + verify (worker)   {worker:>12,.0f}  ({worker / base:.0%})")
    print(f"  sign (producer SDK, per record)   {producer:>12,.0f}")


if __name__ == "__main__":
    main()
