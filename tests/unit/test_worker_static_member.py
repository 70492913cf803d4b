"""The worker's static group membership id: stable per host and state dir, or off."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tokenops.streams.settings import WorkerSettings


def test_the_default_id_is_stable_and_differs_per_state_dir(tmp_path: Path) -> None:
    a = WorkerSettings(app_id="w", state_dir=tmp_path / "a")
    assert (
        a.static_member_id == WorkerSettings(app_id="w", state_dir=tmp_path / "a").static_member_id
    )
    assert (
        a.static_member_id != WorkerSettings(app_id="w", state_dir=tmp_path / "b").static_member_id
    )
    assert a.static_member_id is not None and a.static_member_id.startswith("w-")


def test_an_explicit_id_is_used_and_an_empty_one_turns_static_membership_off() -> None:
    assert WorkerSettings(group_instance_id="worker-0").static_member_id == "worker-0"
    assert WorkerSettings(group_instance_id="").static_member_id is None
    with pytest.raises(ValidationError):
        WorkerSettings(group_instance_id="two words")
