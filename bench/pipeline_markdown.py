"""The text of the "Pipeline" section: tables of one `python -m bench` run."""

from __future__ import annotations

from typing import Any

from bench.pipeline_analysis import RAW, STREAMS, WORKER, profile_section, reading
from bench.pipeline_analysis import med as _med
from bench.pipeline_report import percentile, spread, table


def render(r: dict[str, Any]) -> str:
    m, cfg = r["machine"], r["config"]
    busy = float(m["load"].split()[0]) > int(m["cores"])
    parts = [
        f"`make bench` (`python -m bench{' --quick' if r['mode'] == 'quick' else ''}`), "
        f"{r['mode']} mode, {r['when']}. Machine: {m['cores']} cores ({m['cpu']}), load "
        f"average {m['load']} at the start and {m.get('load_after', '?')} at the end"
        + (
            ": **the machine was busy** (a load average above its core count at the start, "
            "from work before the run or beside it), so figures may be pessimistic and noisy."
            if busy
            else "."
        ),
        f"Versions: tokenops {m['tokenops']}, Python {m['python']}, faust-streaming "
        f"{m['faust-streaming']}, confluent-kafka {m['confluent-kafka']}, chDB {m['chdb']}, "
        f"Kafka {m['kafka']}, {m['java']}.",
        "Load: pre-encoded batch records (the exact bytes the producer SDK sends for a batch "
        "of one tenant: the v2 columnar batch of `encode_columns`, key = tenant, 100 events "
        "per record, 3 models), produced with raw confluent-kafka so the SDK's validation "
        "does not limit the pipeline (its own figures are in Producer above). Every event "
        "has a unique id. The baselines read the same records. "
        "Figures are the median with the spread (min to max) over the runs."
        + (
            " The figures combine this run with the runs started "
            + ", ".join(r["merged_from"])
            + " (medians and spreads over all of them; the profile is this run's)."
            if r.get("merged_from")
            else ""
        ),
    ]
    parts += _throughput(r, cfg)
    parts += _freshness(r)
    parts += _scale(r)
    parts += _guarantees(r)
    parts += _targets(r)
    parts += reading(r)
    parts += profile_section(r)
    if r.get("errors"):
        parts.append("Phases that failed in this run (no figures): " + "; ".join(
            f"{k}: `{v}`" for k, v in r["errors"].items()
        ))  # fmt: skip
    parts.append("![pipeline benchmark](benchmarks-pipeline.png)")
    return "\n\n".join(parts)


def _throughput(r: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    out = ["### Throughput"]
    if r.get("ramp"):
        rows = [
            [f"{s['offered']:,.0f}", f"{s['worker']:,.0f}", f"{s['sink']:,.0f}",
             f"{s['backlog']:,.0f}", "held" if s["sustained"] else "**lag grows**"]
            for s in r["ramp"]
        ]  # fmt: skip
        sustained = [max((s["offered"] for s in run if s["sustained"]), default=0.0)
                     for run in r["ramp_runs"]]  # fmt: skip
        r["sustained"] = sustained
        # the step (nominal rate) held in each run: a step holds when the pacer offered at
        # least 90 % of it and no backlog grew, so the target compares steps, not pacing
        rates = cfg["rates"]
        r["held_step"] = [max((rates[i] for i, s in enumerate(run) if s["sustained"]), default=0)
                          for run in r["ramp_runs"]]  # fmt: skip
        out.append(
            f"**Live, end to end** (producer -> `tokenops worker` -> `tokenops sink "
            f"clickhouse`, embedded chDB, raw events stored; event times are the send time; "
            f"each rate held for {cfg['step_s']} s, 1,000 tenants, 4 partitions, one process "
            f"each). Sustained: **{spread(sustained, ' events/s')}**, the highest rate at "
            "which neither the worker's nor the sink's backlog grew by more than 10 % of the "
            "step's events, measured 3 s after the step (batches in flight are not a growing "
            "backlog). Last run:"
        )
        header = ["offered events/s", "worker counted/s in the step",
                  "sink raw rows/s in the step", "backlog 3 s after", ""]  # fmt: skip
        out.append(table(header, rows))
    c = r.get("catchup")
    if c:
        w = _med(c.get(WORKER))
        rows = [[k, spread(v), f"{w / _med(v):.3f}" if k in (RAW, STREAMS) else ""]
                for k, v in c.items()]  # fmt: skip
        out.append(
            f"**Catch-up on the same topic** ({cfg['events']:,} events over ten 1-minute "
            "windows, 4 partitions, read from the start by each consumer in turn, from its "
            "first event to its last; one process, Kafka Streams tuned with one stream "
            "thread per core):"
        )
        out.append(table(["consumer", "events/s", "tokenops worker / this"], rows))
        a, b = _med(c.get(RAW)), _med(c.get(STREAMS))
        out.append(
            f"Ratios: **tokenops/(a) = {w / a:.3f}**, **tokenops/(b) = {w / b:.3f}** (worker "
            "catch-up medians). (a) consumes, decodes with orjson and sums per tenant, model "
            "and minute, without validation, dedup or durability. (b) is "
            "`bench/baselines/kafka-streams` (Kafka Streams 4.1.1, Jackson): event-time "
            "1-minute tumbling windows with 30 s grace per tenant (the records' key, so no "
            "repartition topic) holding a per-model map, RocksDB state, at-least-once."
        )
    return out if len(out) > 1 else []


def _freshness(r: dict[str, Any]) -> list[str]:
    f = r.get("freshness")
    if not f:
        return []
    names = {
        "clickhouse": "window close (end + allowed lateness) -> row queryable in ClickHouse",
        "quota_record": "quota-crossing event acked -> quota-alerts record written",
        "alertmanager": "quota-crossing event acked -> Alertmanager webhook notification",
    }
    rows = [
        [names[k], f"{percentile(v, 50):.2f} s", f"{percentile(v, 99):.2f} s",
         f"{max(v):.2f} s" if v else "n/a", str(len(v))]
        for k, v in f.items()
    ]  # fmt: skip
    return [
        "### Freshness",
        "Real worker, ClickHouse sink (batch_max_ms 200), Prometheus sink, Prometheus 2.42 "
        "and Alertmanager 0.25 with the checked-in production configs (scrape and rule "
        "evaluation every 5 s, group_wait 5 s), under a 2,000 events/s background load of "
        "other tenants. Windows of 5 s with 2 s allowed lateness so a run sees many closes "
        "(the delay is measured from the close, so the window length does not enter it). "
        "Row queryable = the sink's `/v1/usage` returns the probe tenant's window, polled "
        "every 50 ms. The record time is its Kafka timestamp (the worker's clock, same host). "
        "With few samples, p99 is the largest sample.",
        table(["delay", "p50", "p99", "max", "samples"], rows),
    ]


def _scale(r: dict[str, Any]) -> list[str]:
    out = ["### Scale"]
    if r.get("tenants"):
        rows = [[f"{int(k):,}", str(v.get("per_record", 10)), spread(v["rate"]),
                 spread(v["rss"], " MiB")] for k, v in r["tenants"].items()]  # fmt: skip
        out.append(
            f"One worker catching up {r['config']['scale_events']:,} events, 4 partitions; "
            "records hold at most 10 events and few enough that every tenant sends during "
            "the run (fewer events per record cost the worker more per event, so compare "
            "rows with the same record size):"
        )
        header = ["active tenants", "events per record", "worker events/s", "worker peak RSS"]
        out.append(table(header, rows))
    if r.get("partitions"):
        rows = [[k, spread(v)] for k, v in r["partitions"].items()]
        out.append(f"One worker catching up {r['config']['events']:,} events, 1,000 tenants:")
        out.append(table(["partitions per worker", "worker events/s"], rows))
    return out if len(out) > 1 else []


def _guarantees(r: dict[str, Any]) -> list[str]:
    c = r.get("catchup") or {}
    on = [v for k, v in c.items() if k.endswith("raw events on")]
    off = [v for k, v in c.items() if k.endswith("raw events off")]
    if not on or not off:
        return []
    return [
        "### Cost of guarantees",
        table(
            ["worker + ClickHouse sink (catch-up)", "events/s"],
            [
                ["raw events stored (default)", spread(on[0])],
                ["raw events off (`TOKENOPS_CLICKHOUSE_RAW_EVENTS=false`)", spread(off[0])],
                ["worker alone", spread(c.get(WORKER, []))],
            ],
        ),
        "Deduplication has no off switch in the worker: it always checks each event's "
        "`source` + `id` against its RocksDB store and writes the new keys with the batch "
        "(that is what makes replays exact). Its cost is measured with and without the "
        "dedup store on the worker's batch path in one process (`python -m "
        "bench.bench_dedup_cost`, section Deduplication below).",
    ]


def _targets(r: dict[str, Any]) -> list[str]:
    c, f = r.get("catchup") or {}, r.get("freshness") or {}
    w = _med(c.get(WORKER))
    rows = []
    if r.get("sustained"):
        e2e, step = _med(r["sustained"]), min(r.get("held_step") or [0])
        rows.append([
            "end to end >= 100,000 events/s",
            f"the {step:,} events/s step held in every run (offered {e2e:,.0f} events/s)",
            _met(step >= 100_000),
        ])  # fmt: skip
    if c.get(STREAMS):
        ratio = w / _med(c[STREAMS])
        rows.append(["tokenops/(b) >= 1.0", f"{ratio:.3f}", _met(ratio >= 1.0)])
    if f.get("clickhouse"):
        p99 = percentile(f["clickhouse"], 99)
        rows.append(["window close -> ClickHouse < 2 s p99", f"{p99:.2f} s", _met(p99 < 2)])
    if f.get("alertmanager"):
        worst = max(f["alertmanager"])
        rows.append(["quota crossing -> Alertmanager < 30 s", f"{worst:.1f} s (max)",
                     _met(worst < 30)])  # fmt: skip
    if not rows:
        return []
    return ["### Targets", table(["target", "measured", ""], rows)]


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"
