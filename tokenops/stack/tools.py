"""Finding, checking and installing the programs the local stack runs."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess

from tokenops.stack.errors import MissingToolError

logger = logging.getLogger(__name__)

MIN_JAVA = 17


def java_major_version(java: str = "java") -> int:
    """The major version of `java`, or MissingToolError naming what to install."""
    if shutil.which(java) is None:
        raise MissingToolError(
            "java was not found on PATH; Kafka 4 needs Java 17 or newer",
            hint="install a JDK 17+, e.g. `apt-get install openjdk-17-jre-headless`",
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise MissingToolError(f"cannot read the version of {java}: {out.stderr.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise MissingToolError(
            f"java {major} is too old; Kafka 4 needs Java {MIN_JAVA} or newer",
            hint="install a JDK 17+, e.g. `apt-get install openjdk-17-jre-headless`",
        )
    return major


def require_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(
            "mvn was not found on PATH; it fetches the Kafka broker jars from Maven Central",
            hint="install Maven, e.g. `apt-get install maven`",
        )
    return mvn


def ensure_debian_package(binary: str, package: str) -> str:
    """Path of `binary`, installing Debian's `package` first when it is missing and we are root."""
    found = shutil.which(binary)
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingToolError(
            f"{binary} was not found on PATH",
            hint=f"install it with `sudo apt-get install {package}`",
        )
    logger.info("installing Debian package %s (provides %s)", package, binary)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise MissingToolError(
                f"`{' '.join(argv)}` failed: {done.stderr.strip()[-400:]}",
                hint=f"install {package} by hand, then retry",
            )
    found = shutil.which(binary)
    if found is None:
        raise MissingToolError(f"{package} installed, but {binary} is still not on PATH")
    return found


def first_line_version(argv: list[str]) -> str:
    """The version a program prints about itself, e.g. '2.42.0' from `prometheus --version`."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r"version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"
