"""Build a folder in which mypy and import-linter see the installed layout of `tokenops`.

pyproject.toml maps schemas/, producers/, streams/ and sinks/ to `tokenops.<name>`; an
editable install hides that mapping from both tools. This mirrors it: real folders (the
import graph's walk does not follow a symlinked folder) holding symlinks to the files.
tests/ and bench/ are mirrored beside it, so the import contracts (pyproject.toml,
`make lint`) run inside this folder see all three and not the unmapped checkout.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

MAPPED = ("schemas", "producers", "streams", "sinks")
BESIDE = ("tests", "bench")


def mirror(source: Path, target: Path) -> None:
    """`target` as a tree of real folders whose files link to those of `source`."""
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            mirror(entry, target / entry.name)
        else:
            (target / entry.name).symlink_to(entry)


def main(target: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    package = target / "tokenops"
    shutil.rmtree(target, ignore_errors=True)
    mirror(root / "tokenops", package)
    for name in MAPPED:
        mirror(root / name, package / name)
    for name in BESIDE:
        mirror(root / name, target / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
