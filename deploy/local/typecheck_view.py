"""Build a folder in which mypy sees the installed layout of the `tokenops` package.

pyproject.toml maps schemas/, producers/, streams/ and sinks/ to `tokenops.<name>`; an
editable install hides that mapping from mypy. This mirrors it with symlinks instead.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

MAPPED = ("schemas", "producers", "streams", "sinks")


def main(target: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    package = target / "tokenops"
    shutil.rmtree(target, ignore_errors=True)
    package.mkdir(parents=True)
    for entry in (root / "tokenops").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name in MAPPED:
        (package / name).symlink_to(root / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
