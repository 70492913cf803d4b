"""Where the worker's time goes: py-spy samples every thread of a catching-up worker.

cProfile sees only the main thread, and the worker counts on executor threads, so the
profile is sampled from outside with py-spy (`--nonblocking`, active threads only, and
once more with idle threads to show where they wait). The
summary gives each tokenops/Faust function's inclusive share of the samples and the
hottest leaf frames, plus the process's CPU use (CPU seconds per wall second).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.pipeline_env import WORKER_COUNTED, Service, Topics, base_env
from tokenops.settings import KafkaSettings

PY_SPY = str(Path(sys.executable).parent / "py-spy")


@dataclass
class Profile:
    rate: float = 0.0
    cpu_per_s: float = 0.0  # CPU seconds per wall second over the catch-up (2.0 = 2 cores)
    samples: int = 0
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    leaves: list[tuple[str, float]] = field(default_factory=list)
    waiting: list[tuple[str, float]] = field(default_factory=list)  # leaves, idle included


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def profile_worker(kafka: KafkaSettings, topics: Topics, work: Path, events: int) -> Profile:
    worker = Service.worker(base_env(kafka, topics), work, f"profile-{uuid.uuid4().hex[:6]}")
    raw, idle = work / "worker-profile.txt", work / "worker-profile-idle.txt"
    result = Profile()
    try:
        while worker.metric(WORKER_COUNTED) < 1:
            worker.check()
            time.sleep(0.05)
        start, cpu0 = time.perf_counter(), _cpu_s(worker.proc.pid)
        spy_argv = [PY_SPY, "record", "--nonblocking", "-r", "50", "-f", "raw"]
        spy_argv += ["--pid", str(worker.proc.pid)]
        spies = {
            name: subprocess.Popen(
                [*spy_argv, "-o", str(path), *extra],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, path, extra in (("active", raw, []), ("idle", idle, ["--idle"]))
        }  # fmt: skip
        while worker.metric(WORKER_COUNTED) < events:
            worker.check()
            time.sleep(0.1)
        elapsed = time.perf_counter() - start
        result.rate = events / elapsed
        result.cpu_per_s = (_cpu_s(worker.proc.pid) - cpu0) / elapsed
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for spy in spies.values():
            spy.wait(60)
    finally:
        worker.stop()
    if raw.exists():
        _summarise(raw.read_text(), result)
    if idle.exists():
        waiting = Profile()
        _summarise(idle.read_text(), waiting)
        result.waiting = waiting.leaves
    return result


def _name(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'module.func' with the path shortened."""
    func, _, where = frame.partition(" (")
    path = where.split(":")[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path.removesuffix('.py').replace('/', '.')}:{func}"


def _summarise(text: str, out: Profile) -> None:
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_name(f) for f in stack.split(";") if "(" in f]
        for name in set(frames):
            inclusive[name] += n
        if frames:
            leaves[frames[-1]] += n
    out.samples = total
    if not total:
        return
    ours = [
        (k, v / total)
        for k, v in inclusive.most_common()
        if k.startswith(("streams.", "schemas.", "faust.", "aiokafka.", "rocksdict", "confluent"))
    ]
    out.inclusive = ours[:14]
    out.leaves = [(k, v / total) for k, v in leaves.most_common(10)]
