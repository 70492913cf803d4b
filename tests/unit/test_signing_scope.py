"""Scoped signing keys: a key signs only for its sources (and node ids) and tenants.

The keyring is built the way an operator writes it (`load_keyring` from a file and the
env setting); a bare secret without a scope is refused at load, without echoing it.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from tests.unit.test_signing import NEW, OLD, event, signed, write_keyring
from tokenops.errors import ConfigError
from tokenops.schemas import decode_record
from tokenops.schemas.errors import InvalidEventError
from tokenops.schemas.signing import SCOPE_FIELD, Keyring, SignatureCheck
from tokenops.streams.keyring import load_keyring
from tokenops.streams.settings import WorkerSettings

B_SECRET = b"b-secret-0123456789abcdefgh"
NODES = {
    "node-a-1": {"secret": OLD.decode(), "sources": ["//node-a", "gpu-a"]},
    "node-b-1": {"secret": B_SECRET.decode(), "sources": ["//node-b", "gpu-b"]},
    "node-b-2": {"secret": NEW.decode(), "sources": ["//node-b", "gpu-b"]},  # rotation
    "acme-gw": {
        "secret": "gw-secret-0123456789abcdef",
        "sources": ["//gateway/eu/*"],
        "tenants": ["acme", "acme-*"],
    },
}


def _settings(tmp_path: Path, entries: dict[str, object], **extra: str) -> WorkerSettings:
    return WorkerSettings(
        state_dir=tmp_path,
        signature_mode="enforce",
        signing_keyring_file=write_keyring(tmp_path / "keyring.yaml", entries),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return load_keyring(_settings(tmp_path, NODES))  # type: ignore[arg-type]


def _verify(keyring: Keyring, kid: str, secret: bytes, **fields: object) -> str | None:
    events = [event(1, **fields), event(2, **fields)]
    value, headers = signed(events, kid, secret)
    return keyring.verify(decode_record(value, headers), headers)


def test_each_node_signs_for_its_own_source_and_node_id(keyring: Keyring) -> None:
    assert _verify(keyring, "node-a-1", OLD) == "node-a-1"
    assert _verify(keyring, "node-a-1", OLD, node_id="gpu-a") == "node-a-1"
    assert _verify(keyring, "node-b-1", B_SECRET, source="//node-b", node_id="gpu-b") == "node-b-1"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"source": "//node-b"}, "source '//node-b'"),  # B's source: B's ids are at stake
        ({"node_id": "gpu-b"}, "node_id 'gpu-b'"),
        ({"source": "//node-a/../node-b"}, "source '//node-a/../node-b'"),  # no prefix match
    ],
    ids=["source", "node_id", "lookalike"],
)
def test_a_node_signing_for_another_is_out_of_scope(
    keyring: Keyring, fields: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        _verify(keyring, "node-a-1", OLD, **fields)
    error = caught.value
    assert error.field == SCOPE_FIELD == "signature_scope"
    assert error.reason == f"out_of_scope: {named} is outside the sources of kid 'node-a-1'"
    assert error.index == 0  # a batch: the first event that names it


def test_one_foreign_event_in_a_batch_rejects_the_record(keyring: Keyring) -> None:
    events = [event(1), event(2, source="//node-b"), event(3)]
    value, headers = signed(events, "node-a-1", OLD)
    with pytest.raises(InvalidEventError) as caught:
        keyring.verify(decode_record(value, headers), headers)
    assert caught.value.field == SCOPE_FIELD and caught.value.index == 1


def test_tenants_are_any_unless_listed_then_globs(keyring: Keyring) -> None:
    assert _verify(keyring, "node-a-1", OLD, tenant_id="globex") == "node-a-1"
    gateway = b"gw-secret-0123456789abcdef"
    ok = {"source": "//gateway/eu/fra-1/gpu-3"}  # `*` spans `/`
    assert _verify(keyring, "acme-gw", gateway, tenant_id="acme-research", **ok) == "acme-gw"
    with pytest.raises(InvalidEventError, match="tenant_id 'globex' is outside the tenants"):
        _verify(keyring, "acme-gw", gateway, tenant_id="globex", **ok)
    with pytest.raises(InvalidEventError, match="source '//gateway/us/x' is outside"):
        _verify(keyring, "acme-gw", gateway, source="//gateway/us/x")


def test_a_forgery_is_reported_as_forged_not_as_a_scope_problem(keyring: Keyring) -> None:
    with pytest.raises(InvalidEventError) as caught:
        _verify(keyring, "node-b-1", b"guess-0123456789abcdefgh", source="//node-a")
    assert caught.value.field == "signature" and caught.value.reason.startswith("forged")


def test_during_a_rotation_both_keys_of_b_hold_b_scope_only(keyring: Keyring) -> None:
    for kid, secret in (("node-b-1", B_SECRET), ("node-b-2", NEW)):
        assert _verify(keyring, kid, secret, source="//node-b") == kid
        with pytest.raises(InvalidEventError, match="out_of_scope"):
            _verify(keyring, kid, secret, source="//node-a")


def test_the_scope_travels_with_the_check_to_decoder_processes(keyring: Keyring) -> None:
    check = pickle.loads(pickle.dumps(SignatureCheck(keyring, enforce=True)))
    value, headers = signed([event(1, source="//node-b")], "node-a-1", OLD)
    with pytest.raises(InvalidEventError, match="out_of_scope"):
        check(decode_record(value, headers), headers)


def test_a_bare_secret_is_refused_at_load_saying_how_to_write_it(tmp_path: Path) -> None:
    bare_in_file = "file-secret-Xk29fQ0pLm"
    bare_in_env = "env-secret-Rt55vB8nZq"
    settings = _settings(
        tmp_path,
        {"node-a-1": bare_in_file},  # type: ignore[dict-item]
        signing_keys=json.dumps({"node-b-1": bare_in_env}),
    )
    with pytest.raises(ConfigError) as caught:
        load_keyring(settings)
    text = str(caught.value)
    for where, kid in (("SIGNING_KEYRING_FILE=", "node-a-1"), ("SIGNING_KEYS:", "node-b-1")):
        line = next(p for p in caught.value.problems if where in p and kid in p)
        assert "needs a scope, not a bare secret" in line and "sources:" in line
    assert bare_in_file not in text and bare_in_env not in text


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"secret": "s" * 20}, "sources: required"),
        ({"secret": "s" * 20, "sources": "//node-a"}, "sources: must be a list of globs"),
        ({"secret": "s" * 20, "sources": []}, "sources: must be a non-empty list"),
        ({"secret": "s" * 20, "sources": ["*"], "tenants": [""]}, "tenants: must be a non-empty"),
        ({"secret": "short-Qz7", "sources": ["*"]}, "secret: under 16 bytes"),
        ({"sources": ["*"]}, "secret: required"),
        ({"secret": "s" * 20, "sources": ["*"], "tenant": ["x"]}, "fields other than"),
        # a secret misplaced as a field name is not echoed either
        ({"sources": ["*"], "Qm9misplaced-secret-77": None}, "fields other than"),
    ],
)
def test_every_entry_problem_names_key_and_field_never_the_secret(
    tmp_path: Path, entry: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_keyring(_settings(tmp_path, {"node-a-1": entry}))
    assert any("key id 'node-a-1'" in p and problem in p for p in caught.value.problems), str(
        caught.value
    )
    for secret in ("short-Qz7", "Qm9misplaced-secret-77"):
        assert secret not in str(caught.value)
