"""`make bench` / `python -m bench [--quick] [foreign]`: the whole-pipeline benchmarks of
issue 9 and the foreign-producer benchmark of issue 15.

Starts its own Kafka broker (free ports, a temporary state directory), runs real
`tokenops worker` and `tokenops sink clickhouse` processes (embedded chDB), the raw
confluent-kafka ceiling and the Kafka Streams baseline on the same topics, then rewrites
the "Pipeline" section of docs/benchmarks.md and docs/benchmarks-pipeline.png, and the
"Foreign producer" section (`bench/foreign.py`). Numbers are reported, never judged:
nothing here fails on a threshold.

Phases (`--only a,b`): comparison, ramp, tenants, partitions, profile, freshness, scrape
(the Prometheus sink's scrape under tenant churn, bench/bench_prometheus_scrape.py; it
needs no broker, and its table is printed and kept in the results file), foreign, api
(bench/bench_api.py; its figures are printed and kept in the results file), regions
(bench/bench_regions.py: the central worker on MirrorMaker-replicated traffic; it rewrites
the "Regions" section).
`python -m bench foreign` runs only the foreign-producer section (a few minutes).
`--render FILE` rewrites the docs from a saved results file without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_api, bench_prometheus_scrape, bench_regions, foreign_markdown
from bench import pipeline_baselines as baselines
from bench import pipeline_runs as runs
from bench.foreign import FULL as FOREIGN_FULL
from bench.foreign import QUICK as FOREIGN_QUICK
from bench.foreign import foreign
from bench.pipeline_env import machine, new_topics, start_broker
from bench.pipeline_freshness import freshness
from bench.pipeline_markdown import render
from bench.pipeline_profile import profile_worker
from bench.pipeline_report import plot, write_section
from tokenops.settings import KafkaSettings

PIPELINE_PHASES = ("comparison", "ramp", "tenants", "partitions", "profile", "freshness")
PHASES = (*PIPELINE_PHASES, "scrape", "foreign", "api", "regions")
QUICK = dict(
    runs=1, events=200_000, rates=[5_000, 10_000, 25_000, 50_000, 100_000], step_s=8,
    tenants=[1_000, 10_000, 100_000], scale_events=100_000, windows=8, crossings=4,
    foreign=FOREIGN_QUICK, regions=bench_regions.QUICK,
)  # fmt: skip
FULL = dict(
    runs=3, events=600_000,
    rates=[5_000, 10_000, 20_000, 40_000, 70_000, 100_000, 120_000, 150_000],
    step_s=15, tenants=[1_000, 10_000, 100_000], scale_events=300_000, windows=20,
    crossings=12, foreign=FOREIGN_FULL, regions=bench_regions.FULL,
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "section", nargs="?", choices=["foreign"], help="run only this section's phases"
    )
    parser.add_argument("--quick", action="store_true", help="one run each, small volumes")
    parser.add_argument("--only", default=",".join(PHASES), help="comma-separated phases")
    parser.add_argument("--render", type=Path, help="rewrite the docs from a results file")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    parser.add_argument(
        "--foreign-live", action="store_true", help="foreign: only its live phase (print only)"
    )
    args = parser.parse_args()
    if args.section:
        args.only = args.section
    if args.render:
        results = json.loads(args.render.read_text())
    else:
        cfg = QUICK if args.quick else FULL
        if args.foreign_live:
            cfg = {**cfg, "foreign": {**cfg["foreign"], "live_only": True}}
            args.no_docs = True  # a partial section is never written to the docs
        results = run(cfg, args.only.split(","), args.quick)
    if args.no_docs:
        return
    if any(phase in results.get("seconds", {}) for phase in PIPELINE_PHASES):
        write_section(render(results))
        plot(results)
        print("wrote docs/benchmarks.md (Pipeline) and docs/benchmarks-pipeline.png")
    if "foreign" in results:
        body = foreign_markdown.render(results["foreign"], results["machine"], results["when"])
        write_section(body, heading=foreign_markdown.HEADING)
        print("wrote docs/benchmarks.md (Foreign producer)")
    if "regions" in results:
        body = bench_regions.render(results["regions"], results["machine"], results["when"])
        write_section(body, heading=bench_regions.HEADING)
        print("wrote docs/benchmarks.md (Regions)")


def run(cfg: dict[str, Any], phases: list[str], quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if quick else "full",
        "config": cfg,
        "machine": machine(),
        "errors": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="tokenops-pipeline-bench-"))
    broker = start_broker(tmp / "stack")
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    n, events = cfg["runs"], cfg["events"]
    try:

        def comparison() -> None:
            baselines.build_streams()
            topics = new_topics(kafka)
            runs.fill(kafka, topics.usage, events, tenants=1_000)
            got: dict[str, list[float]] = {}
            results["catchup"], results["catchup_rss"] = got, []

            def record(label: str, rate: float) -> None:
                got.setdefault(label, []).append(rate)
                print(f"  {label}: {rate:,.0f} events/s", flush=True)

            for _ in range(n):
                record(
                    "raw confluent-kafka (a)", baselines.raw_ceiling(kafka, topics.usage, events)
                )
                record(
                    "Kafka Streams (b)", baselines.kafka_streams(kafka, topics.usage, events, tmp)
                )
                w = runs.worker_catchup(kafka, topics, tmp, events)
                record("tokenops worker", w.rate)
                results["catchup_rss"].append(w.rss_mb)
                for raw in (True, False):
                    label = (
                        f"tokenops worker + ClickHouse sink, raw events {'on' if raw else 'off'}"
                    )
                    record(label, runs.pipeline_catchup(kafka, topics, tmp, events, raw))
            results["comparison_topic"] = topics.__dict__

        def ramp() -> None:
            results["ramp_runs"] = []
            for _ in range(1 if quick else 2):
                r = runs.ramp(kafka, new_topics(kafka), tmp, cfg["rates"], cfg["step_s"])
                results["ramp_runs"].append([s.__dict__ for s in r.steps])
            results["ramp"] = results["ramp_runs"][-1]

        def tenants() -> None:
            results["tenants"] = {}
            for count in cfg["tenants"]:
                topics = new_topics(kafka)
                # Small records so that every tenant sends during the run.
                per_record = max(1, min(10, cfg["scale_events"] // count))
                runs.fill(kafka, topics.usage, cfg["scale_events"], count, per_record)
                cell: dict[str, Any] = {"rate": [], "rss": [], "per_record": per_record}
                for _ in range(n):
                    w = runs.worker_catchup(kafka, topics, tmp, cfg["scale_events"])
                    cell["rate"].append(w.rate)
                    cell["rss"].append(w.rss_mb)
                print(f"  {count} tenants: {cell}")
                results["tenants"][str(count)] = cell

        def partitions() -> None:
            results["partitions"] = {}
            for count in (1, 2, 4):
                topics = new_topics(kafka, partitions=count)
                runs.fill(kafka, topics.usage, events, tenants=1_000)
                rates = [runs.worker_catchup(kafka, topics, tmp, events).rate for _ in range(n)]
                print(f"  {count} partitions: {rates}")
                results["partitions"][str(count)] = rates

        def profile() -> None:
            topics = new_topics(kafka)
            runs.fill(kafka, topics.usage, events, tenants=1_000)
            results["profile"] = profile_worker(kafka, topics, tmp, events).__dict__

        def fresh() -> None:
            results["freshness"] = freshness(
                kafka, new_topics(kafka), tmp, cfg["windows"], cfg["crossings"], 2_000
            )

        def scrape() -> None:
            results["scrape"] = bench_prometheus_scrape.measure(100_000 if not quick else 20_000)

        def foreign_producer() -> None:
            results["foreign"] = foreign(kafka, tmp, cfg["foreign"])

        def api() -> None:  # the HTTP door next to its hello-world route (docs/benchmarks.md)
            (tmp / "api").mkdir(exist_ok=True)
            results["api"] = bench_api.run(kafka, tmp / "api")

        def regions() -> None:  # central ingest of MirrorMaker-replicated traffic
            results["regions"] = bench_regions.measure(kafka, tmp / "regions", cfg["regions"])

        table: dict[str, Callable[[], None]] = {
            "comparison": comparison, "ramp": ramp, "tenants": tenants,
            "partitions": partitions, "profile": profile, "freshness": fresh,
            "scrape": scrape, "foreign": foreign_producer, "api": api, "regions": regions,
        }  # fmt: skip
        for phase in phases:
            print(f"== {phase} (load {os.getloadavg()[0]:.1f})", flush=True)
            t = time.perf_counter()
            try:
                table[phase]()
            except Exception as exc:  # a benchmark reports what it could measure
                traceback.print_exc()
                results["errors"][phase] = f"{type(exc).__name__}: {exc}"[:300]
            results.setdefault("seconds", {})[phase] = round(time.perf_counter() - t)
    finally:
        broker.stop()
        results["machine"]["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        if not results["errors"] and sys.exc_info()[0] is None:  # kept after a failure
            for entry in tmp.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
        out = tmp / "results.json"
        out.write_text(json.dumps(results, indent=1))
        print(f"results: {out} (python -m bench --render {out} rewrites the docs from it)")
    return results


if __name__ == "__main__":
    main()
