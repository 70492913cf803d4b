"""`tokenops <args>` as a test's child process: run to completion (`run_tokenops`), or
in the background with its output in a log file, ready when its /healthz answers,
stopped with SIGTERM and, after a grace period, SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tokenops.stack.services import tokenops_executable

TOKENOPS = tokenops_executable()  # the `tokenops` of this virtualenv


def run_tokenops(args: list[str], env: dict[str, str], timeout_s: float = 60) -> tuple[int, str]:
    """`tokenops <args>` to completion: its exit code and its stdout and stderr, joined."""
    done = subprocess.run(
        [TOKENOPS, *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )
    return done.returncode, done.stdout + done.stderr


class TokenopsProcess:
    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, *, grace_s: float = 20.0
    ) -> None:
        self.log = log
        self.grace_s = grace_s
        self.proc = subprocess.Popen(
            [TOKENOPS, *args], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self, port: int, what: str, timeout_s: float = 60.0) -> None:
        """Until http://127.0.0.1:<port>/healthz answers; fails with the log's tail if
        the process exits or the time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{what} not ready: " + self.output()[-3000:])

    def kill(self) -> None:
        """kill -9, and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
