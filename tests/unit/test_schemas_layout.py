"""schemas/ says what it holds: its package docstring lists every module, at most six on
the event path, so the layout and its description cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import tokenops.schemas

SCHEMAS = Path(tokenops.schemas.__file__).resolve().parent


def listed(section: str) -> set[str]:
    doc = tokenops.schemas.__doc__ or ""
    start = doc.index(section)
    end = doc.find("\n\n", doc.index("\n\n", start) + 2)
    return set(re.findall(r"^- `(\w+\.py)`", doc[start : end if end > 0 else None], re.M))


def test_the_package_docstring_lists_every_module() -> None:
    on_path, off_path = listed("On the event path"), listed("Off the event path")
    modules = {p.name for p in SCHEMAS.glob("*.py")} - {"__init__.py"}
    assert on_path | off_path == modules
    assert not on_path & off_path


def test_at_most_six_modules_carry_the_event_path() -> None:
    assert len(listed("On the event path")) <= 6
