"""Two source trees of `tokenops api`, alternated under the same load in the same minutes.

`python -m bench.bench_api_ab OLD_TREE [seconds] [connections] [pairs] [figures]`: OLD_TREE
is a checkout with its own `.venv` (for example a `git worktree add --detach` of main);
the other tree is this one. One broker, two servers (each `bench_api`'s, with its
`GET /hello`), and `pairs` rounds that each measure every figure (comma-separated names
of `bench_api.workloads`, all by default; `single@2000` is that workload at a fixed
2,000 requests/s, for the CPU per request) on both servers, old first in odd rounds, new
first in even ones, so a noisy minute hits both. Each measurement reports the rate and
the CPU time per request of the server and of this client; the single-event figure is
also given as a share of the same server's hello in the same round.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench.bench_api import measured, paced, start_server, workloads
from bench.pipeline_env import bench_kafka

HERE = Path(__file__).resolve().parent.parent


def main() -> None:
    old = Path(sys.argv[1]).resolve()
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    pairs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    chosen = sys.argv[5].split(",") if len(sys.argv) > 5 else None
    tmp = Path(tempfile.mkdtemp(prefix="tokenops-api-ab-"))
    trees = {"old": old, "new": HERE}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {"old": {}, "new": {}}
    with bench_kafka(tmp / "stack") as kafka:
        servers = {}
        for name, tree in trees.items():
            (tmp / name).mkdir()
            python = str(tree / ".venv" / "bin" / "python")
            servers[name] = start_server(kafka, tmp / name, python, tree)
        try:
            loads = {name: workloads(server.key) for name, server in servers.items()}
            for name, server in servers.items():  # warm-up, uncounted
                measured(server.pids, server.port, loads[name]["single"], connections, 2)
            for pair in range(pairs):
                order = ("old", "new") if pair % 2 == 0 else ("new", "old")
                for figure in chosen or list(loads["old"]):
                    workload, _, rate = figure.partition("@")
                    for name in order:
                        server, requests = servers[name], loads[name][workload]
                        if rate:  # CPU per request at a fixed rate
                            result = paced(server.pids, server.port, requests, int(rate), seconds)
                        else:
                            result = measured(
                                server.pids, server.port, requests, connections, seconds
                            )
                        runs[name].setdefault(figure, []).append(result)
                        print(f"pair {pair + 1} {name} {figure}: {_brief(result)}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    print(orjson.dumps(summary(runs), option=orjson.OPT_INDENT_2).decode())


def _brief(result: dict[str, float]) -> str:
    return (
        f"{result['per_s']:.0f}/s server {result['server_cpu_us']:.0f} us "
        f"client {result['client_cpu_us']:.0f} us errors {result['errors']:.0f}"
    )


def summary(runs: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """Per tree and figure: the rounds' rates, their median, the median CPU per request;
    the single-event rate as a share of hello, per round."""
    out: dict[str, Any] = {}
    for name, figures in runs.items():
        out[name] = {
            figure: {
                "per_s": [round(r["per_s"]) for r in rounds],
                "median_per_s": round(statistics.median(r["per_s"] for r in rounds)),
                "server_cpu_us": round(statistics.median(r["server_cpu_us"] for r in rounds)),
                "client_cpu_us": round(statistics.median(r["client_cpu_us"] for r in rounds)),
            }
            for figure, rounds in figures.items()
        }
        if "hello" in figures and "single" in figures:
            shares = [
                s["per_s"] / h["per_s"]
                for s, h in zip(figures["single"], figures["hello"], strict=True)
            ]
            out[name]["single_of_hello"] = [round(share, 3) for share in shares]
    return out


if __name__ == "__main__":
    main()
