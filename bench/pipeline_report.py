"""The "Pipeline" section of docs/benchmarks.md and its plot, from one run's results.

Only this section is rewritten: the per-stage sections other scripts write stay as they
are. A section that does not exist yet goes before the first other section. Inside a
section, what follows the `NOTES` line (dated A/B findings written by hand) is kept when a
run rewrites the section, so a re-run refreshes the figures without erasing the record.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs"
HEADING = "## Pipeline"
NOTES = "<!-- Written by hand below: kept when a bench run rewrites this section. -->"


def spread(values: list[float], unit: str = "", fmt: str = ",.0f") -> str:
    """'median (min to max, n runs)'; one value alone when there was one run."""
    if not values:
        return "n/a"
    med = format(statistics.median(values), fmt) + unit
    if len(values) == 1:
        return f"{med} (1 run)"
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return f"{med} ({lo} to {hi}, {len(values)} runs)"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(body: str, path: Path = DOCS / "benchmarks.md", heading: str = HEADING) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body.strip()}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        first = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
        lines[first:first] = [section, "\n"]
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        notes = next((i for i in range(start, end) if lines[i].rstrip() == NOTES), None)
        kept = ["\n", *lines[notes:end]] if notes is not None else []
        if kept and not kept[-1].endswith("\n"):
            kept[-1] += "\n"
        lines[start:end] = [section, *kept] + (["\n"] if end < len(lines) and not kept else [])
    path.write_text("".join(lines))


def plot(results: dict[str, Any], path: Path = DOCS / "benchmarks-pipeline.png") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    steps = results.get("ramp", [])
    ax = axes[0][0]
    if steps:
        offered = [s["offered"] for s in steps]
        ax.plot(offered, offered, "k--", label="offered")
        ax.plot(offered, [s["worker"] for s in steps], "o-", label="worker counted")
        ax.plot(offered, [s["sink"] for s in steps], "s-", label="sink raw rows")
        ax.legend()
    ax.set(title="Live end to end: rising rate", xlabel="offered events/s", ylabel="events/s")

    ax = axes[0][1]
    bars = {
        k.replace("tokenops worker + ClickHouse sink, ", "worker + sink, ").replace(
            "raw confluent-kafka", "raw client"
        ): statistics.median(v)
        for k, v in results.get("catchup", {}).items()
        if v
    }
    ax.barh(list(bars), list(bars.values()), color="tab:blue")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(title="Catch-up on the same topic (median, log scale)", xlabel="events/s")

    ax = axes[1][0]
    scale = results.get("tenants", {})
    if scale:
        xs = sorted(int(k) for k in scale)
        ax.plot(xs, [statistics.median(scale[str(x)]["rate"]) for x in xs], "o-", label="events/s")
        ax.set_xscale("log")
        twin = ax.twinx()
        twin.plot(
            xs, [statistics.median(scale[str(x)]["rss"]) for x in xs], "s--r", label="RSS MiB"
        )
        twin.set_ylabel("worker peak RSS, MiB")
    ax.set(title="Worker vs active tenants", xlabel="tenants", ylabel="events/s")

    ax = axes[1][1]
    parts = results.get("partitions", {})
    if parts:
        xs = sorted(int(k) for k in parts)
        ax.bar([str(x) for x in xs], [statistics.median(parts[str(x)]) for x in xs])
    ax.set(title="Worker vs partitions per worker", xlabel="partitions", ylabel="events/s")
    fig.suptitle(f"tokenops pipeline ({results['machine']['cores']} cores, {results['when']})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
