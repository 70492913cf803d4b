"""Where the time goes: the profile tables and a reading of one run's figures.

The reading states which stage limits the pipeline from the run's own numbers (the
stages' catch-up rates, the worker's profile); it never compares with fixed values
except the issue's four targets.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.pipeline_report import percentile, table

WORKER = "tokenops worker"
RAW, STREAMS = "raw confluent-kafka (a)", "Kafka Streams (b)"
RAW_ON = "tokenops worker + ClickHouse sink, raw events on"
RAW_OFF = "tokenops worker + ClickHouse sink, raw events off"


def med(values: list[float] | None) -> float:
    return statistics.median(values) if values else float("nan")


def _share(p: dict[str, Any], prefix: str) -> float:
    """The largest inclusive share of a function whose name starts with `prefix`."""
    return max((v for k, v in p.get("inclusive", []) if k.startswith(prefix)), default=0.0)


def reading(r: dict[str, Any]) -> list[str]:
    c, p, f = r.get("catchup") or {}, r.get("profile") or {}, r.get("freshness") or {}
    out: list[str] = []
    w, on, off = med(c.get(WORKER)), med(c.get(RAW_ON)), med(c.get(RAW_OFF))
    if c.get(WORKER) and c.get(RAW_ON) and c.get(RAW_OFF):
        if on >= 0.7 * w:
            lead = "The limiting stage is the worker."
        elif off >= 0.7 * w:
            lead = "The limiting stage is the ClickHouse sink writing raw events."
        else:
            lead = (
                "The limiting stage is the sink running beside the worker, with or without "
                "raw events."
            )
        out.append(
            f"**{lead}** On the same topic the worker alone counts {w:,.0f} events/s; with "
            f"the sink storing every raw event the pipeline finishes at {on:,.0f} events/s, "
            f"and at {off:,.0f} events/s when the sink stores window totals only. The "
            "worker, the sink and the broker share the machine's cores, so the end-to-end "
            "rate is bounded by their summed CPU per event, not by the slowest stage alone; "
            "`python -m bench.bench_clickhouse_sink` measures the sink alone."
        )
    if r.get("ramp") and c.get(WORKER):
        live = max(s["worker"] for s in r["ramp"])
        sink = max(s["sink"] for s in r["ramp"])
        out.append(
            f"**Live against catch-up:** in the ramp the worker counted at most {live:,.0f} "
            f"events/s and the sink wrote at most {sink:,.0f} raw events/s, against "
            f"{w:,.0f} events/s for the worker catching up. Live, a batch holds what "
            "arrived within `batch_within_s` (0.2 s), far fewer than the 500 records of a "
            "catch-up batch, so each batch's fixed work (RocksDB write, changelog and "
            "output produce, offset commit) is spread over fewer events; with the producer, "
            "the broker, the worker and the sink on the same 2 cores, they also take CPU "
            "from each other. The worker logs each batch's `process_s` and `publish_s` at "
            "DEBUG (`TOKENOPS_LOG_LEVEL=DEBUG`) to split the two."
        )
    if p.get("samples") and p.get("rate"):
        dedup = _share(p, "streams.store:PartitionStore.seen")
        per_cpu = p["rate"] / p["cpu_per_s"] if p["cpu_per_s"] else float("nan")
        out.append(
            f"**Inside the worker** (profile below): decoding and validating records "
            f"(`decode_columns`) takes {_share(p, 'schemas.decode:decode_columns'):.0%} of "
            f"the active samples, counting into windows (`PartitionState._count`) "
            f"{_share(p, 'streams.partition:PartitionState._count'):.0%}, the dedup check "
            f"against RocksDB (`PartitionStore.seen`) {dedup:.0%}. "
            f"The worker used {p['cpu_per_s']:.2f} CPU seconds per second while catching "
            f"up: {per_cpu:,.0f} events per CPU-second, an estimate of what one "
            "uncontended core would give it. Well under 1.0 on a busy machine means the "
            "process waited for a core (or for Kafka); the idle profile shows where. "
            "Threads blocked inside C calls (`consumer.poll` in `QuotaWatcher._run`, the "
            "event loop's `select`) can be sampled as active."
        )
        if per_cpu < 100_000:
            shares = {
                "decoding and validation": _share(p, "schemas.decode:decode_columns"),
                "the window counting and dedup loop": _share(
                    p, "streams.partition:PartitionState._count"
                ),
                "the dedup lookups": dedup,
            }
            largest = max(shares, key=shares.__getitem__)
            out.append(
                f"At {per_cpu:,.0f} events per CPU-second the worker cannot reach 100,000 "
                "events/s on one core whatever the sink does: its Python work per event "
                f"has to shrink first. The largest share is {largest} "
                f"({shares[largest]:.0%})."
            )
    if f.get("clickhouse"):
        out.append(
            f"**Window close to ClickHouse** (p99 {percentile(f['clickhouse'], 99):.2f} s): "
            "a window closes when the partition's watermark passes its end plus the lateness, "
            "which needs a later event on that partition (here the background load; an idle "
            "partition waits for `idle_timeout_s`). Then the worker's batch (up to "
            "`batch_within_s` 0.2 s), the aggregates record, the sink's batch "
            "(`batch_max_ms` 200 here, 1,000 by default) and the chDB insert with its rollups."
        )
    if f.get("alertmanager"):
        worker_s = max(f.get("quota_record") or [0.0])
        out.append(
            f"**Quota crossing to Alertmanager** (max {max(f['alertmanager']):.1f} s): the "
            f"worker writes the quota-alerts record within {worker_s:.1f} s; "
            "the rest is the production alerting path: one Prometheus scrape of the "
            "Prometheus sink (5 s), one rule evaluation (5 s) and Alertmanager's group_wait "
            "(5 s), so up to about 15 s plus the sink's read."
        )
    return out


def profile_section(r: dict[str, Any]) -> list[str]:
    p = r.get("profile")
    if not p or not p.get("samples"):
        return []
    incl = [[f"`{k}`", f"{v:.0%}"] for k, v in p["inclusive"]]
    leaves = [[f"`{k}`", f"{v:.0%}"] for k, v in p["leaves"]]
    return [
        "### Where the worker's time goes",
        f"py-spy sampled every thread of one worker catching up {r['config']['events']:,} "
        f"events ({p['rate']:,.0f} events/s, {p['samples']:,} samples of active threads). "
        f"The worker process used **{p['cpu_per_s']:.2f} CPU seconds per second** "
        f"(of {r['machine']['cores']} cores).",
        table(["function (inclusive)", "share of samples"], incl),
        table(["hottest frames (self)", "share of samples"], leaves),
    ] + (
        [
            "Where the worker's threads wait (py-spy `--idle`, all threads, leaf frames):",
            table(
                ["frame (self, idle included)", "share of samples"],
                [[f"`{k}`", f"{v:.0%}"] for k, v in p.get("waiting", [])],
            ),
        ]
        if p.get("waiting")
        else []
    )
