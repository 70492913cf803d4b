"""Signed usage records: canonical encoding, HMAC verification, rotation, worker modes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_event_contract import NOW_MS, valid_fields
from tokenops.errors import ConfigError
from tokenops.producers.errors import ProducerError
from tokenops.producers.settings import ProducerSettings
from tokenops.producers.signing import record_signer
from tokenops.producers.spool import SpooledRecord
from tokenops.schemas import (
    BATCH_CONTENT_TYPE,
    BATCH_HEADERS,
    CLOUDEVENTS_CONTENT_TYPE,
    EVENT_HEADERS,
    InvalidEventError,
    UsageEvent,
    decode_record,
    encode_batch,
    encode_event,
)
from tokenops.schemas.signing import (
    SIGNATURE_HEADER,
    Keyring,
    SigningKey,
    canonical_events,
    signature_header,
    signature_key_id,
)
from tokenops.schemas.wire import encode_fields
from tokenops.sinks.clickhouse.decoding import decode_chunk
from tokenops.sinks.clickhouse.rows import EVENT_COLUMNS
from tokenops.streams.keyring import load_keyring
from tokenops.streams.settings import WorkerSettings
from tokenops.streams.signing import signature_check

OLD, NEW = b"old-secret-0123456789abcdef", b"new-secret-fedcba9876543210"


def event(i: int = 1, **overrides: object) -> UsageEvent:
    fields: dict[str, object] = {
        "id": f"e{i}",
        "source": "//node-a",
        "time": datetime(2026, 11, 27, 9, 0, i, 250_000, tzinfo=UTC),
        "tenant_id": "acme",
        "model": "m1",
        "provider": "p",
        "input_tokens": 100 + i,
        "output_tokens": 7,
        "attributes": {"team": "search"},
    }
    fields.update(overrides)
    return UsageEvent(**fields)  # type: ignore[arg-type]


def signed(
    events: list[UsageEvent], kid: str = "node-a-1", secret: bytes = OLD
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of a record as a signing producer sends it."""
    value = encode_event(events[0]) if len(events) == 1 else encode_batch(events)
    content = EVENT_HEADERS if len(events) == 1 else BATCH_HEADERS
    return value, [*content, (SIGNATURE_HEADER, signature_header(kid, secret, events))]


def ring(secrets: dict[str, bytes]) -> Keyring:
    """Keys of node A, which signs every event of these tests (`source` //node-a)."""
    return Keyring({kid: SigningKey(secret, ("//node-a",)) for kid, secret in secrets.items()})


def received(value: bytes, headers: list[tuple[str, bytes]], keyring: Keyring) -> str | None:
    return keyring.verify(decode_record(value, headers), headers)


def test_canonical_encoding_is_sorted_compact_with_epoch_milliseconds() -> None:
    text = canonical_events([event(1, attributes={"b": "2", "a": "1"})])
    assert text == (
        b'[{"attributes":{"a":"1","b":"2"},"cache_creation_input_tokens":0,'
        b'"cache_read_input_tokens":0,"id":"e1","input_tokens":101,"model":"m1",'
        b'"operation":"chat","output_tokens":7,"provider":"p","reasoning_output_tokens":0,'
        b'"schema_version":1,"source":"//node-a","tenant_id":"acme",'
        b'"time":1795770001250}]'
    )


@pytest.mark.parametrize("n", [1, 3])
def test_a_signed_record_verifies_whatever_its_encoding(n: int) -> None:
    events = [event(i) for i in range(n)]
    value, headers = signed(events)
    assert received(value, headers, ring({"node-a-1": OLD})) == "node-a-1"
    # the same events, encoded differently (key order, whitespace, time spelling)
    ce = orjson.loads(encode_event(events[0]))
    ce["time"] = "2026-11-27T10:00:00.250+01:00"
    respelled = json.dumps(dict(reversed(list(ce.items()))), indent=2).encode()
    if n == 1:
        assert received(respelled, headers, ring({"node-a-1": OLD})) == "node-a-1"


def test_a_forged_signature_is_rejected() -> None:
    value, headers = signed([event()], secret=b"attacker-guess-0123456789")
    with pytest.raises(InvalidEventError) as caught:
        received(value, headers, ring({"node-a-1": OLD}))
    assert caught.value.field == "signature" and caught.value.reason.startswith("forged")


@pytest.mark.parametrize(
    "edit",
    [
        lambda body: body["events"][1]["data"].update(input_tokens=1),
        lambda body: (
            [e["data"].update(tenant_id="globex") for e in body["events"]]
            and body.update(tenant_id="globex")
        ),
        lambda body: body["events"][2].update(time="2026-11-27T09:00:00.000Z"),
        lambda body: body["events"].pop(),
        lambda body: body["events"].append(dict(body["events"][0], id="e-extra")),
        lambda body: body["events"].reverse(),
    ],
    ids=["tokens", "tenant", "time", "dropped", "added", "reordered"],
)
def test_a_record_replayed_with_edits_is_rejected(edit: object) -> None:
    value, headers = signed([event(i) for i in range(3)])
    body = orjson.loads(value)
    edit(body)  # type: ignore[operator]
    with pytest.raises(InvalidEventError, match="forged"):
        received(orjson.dumps(body), headers, ring({"node-a-1": OLD}))


def test_replayed_unchanged_verifies_and_is_left_to_deduplication() -> None:
    value, headers = signed([event(1), event(2)])
    keyring = ring({"node-a-1": OLD})
    assert received(value, headers, keyring) == received(value, headers, keyring) == "node-a-1"


def test_rotation_accepts_every_key_id_in_the_keyring() -> None:
    both = ring({"node-a-1": OLD, "node-a-2": NEW})
    assert received(*signed([event()], "node-a-1", OLD), both) == "node-a-1"
    assert received(*signed([event()], "node-a-2", NEW), both) == "node-a-2"
    retired = ring({"node-a-2": NEW})
    with pytest.raises(InvalidEventError, match="unknown_key: kid 'node-a-1'"):
        received(*signed([event()], "node-a-1", OLD), retired)


def test_a_key_id_must_not_vouch_for_another_keys_signature() -> None:
    value, headers = signed([event()], "node-a-2", OLD)  # old secret under the new id
    with pytest.raises(InvalidEventError, match="forged"):
        received(value, headers, ring({"node-a-1": OLD, "node-a-2": NEW}))


@pytest.mark.parametrize(
    "header",
    [b"v2;kid=node-a-1;sig=abc", b"kid=node-a-1", b"", b"\xff\xfe", b"v1;kid=a;sig=" + b"A" * 42],
)
def test_a_malformed_header_is_rejected(header: bytes) -> None:
    value = encode_event(event())
    with pytest.raises(InvalidEventError, match="malformed"):
        received(value, [*EVENT_HEADERS, (SIGNATURE_HEADER, header)], ring({"k": OLD}))


def test_two_signature_headers_are_rejected() -> None:
    value, headers = signed([event()])
    with pytest.raises(InvalidEventError, match="several"):
        received(value, [*headers, headers[-1]], ring({"node-a-1": OLD}))


def test_keyring_rejects_short_secrets_and_bad_ids_and_hides_secrets() -> None:
    with pytest.raises(ValueError, match="under 16 bytes"):
        SigningKey(b"short", ("*",))
    with pytest.raises(ValueError, match="key id"):
        ring({"bad id": OLD})
    assert "secret" not in repr(ring({"k": OLD}))
    assert OLD.decode() not in repr(SigningKey(OLD, ("*",)))


def write_keyring(path: Path, entries: dict[str, dict[str, object]]) -> Path:
    """A keyring file as an operator writes it: scoped entries, readable by its owner only
    (JSON, which the YAML reader takes too)."""
    path.write_text(json.dumps(entries, indent=2))
    path.chmod(0o600)
    return path


def _worker(tmp_path: Path, mode: str, **extra: object) -> WorkerSettings:
    entry = {"secret": OLD.decode(), "sources": ["//node-a"]}
    return WorkerSettings(
        state_dir=tmp_path,
        signature_mode=mode,  # type: ignore[arg-type]
        signing_keyring_file=write_keyring(tmp_path / "keyring.yaml", {"node-a-1": entry}),
        **extra,  # type: ignore[arg-type]
    )


def test_modes(tmp_path: Path) -> None:
    unsigned = decode_record(encode_event(event()), EVENT_HEADERS)
    value, headers = signed([event()], "node-a-1", b"attacker-guess-0123456789")
    forged = decode_record(value, headers)
    assert signature_check(WorkerSettings(state_dir=tmp_path)) is None  # off by default
    lenient = signature_check(_worker(tmp_path, "verify-if-present"))
    assert lenient is not None
    lenient(unsigned, EVENT_HEADERS)
    with pytest.raises(InvalidEventError, match="forged"):
        lenient(forged, headers)
    strict = signature_check(_worker(tmp_path, "enforce"))
    assert strict is not None
    with pytest.raises(InvalidEventError, match="unsigned"):
        strict(unsigned, EVENT_HEADERS)
    value, headers = signed([event()])
    strict(decode_record(value, headers), headers)


def test_keyring_file_and_env_keys_join(tmp_path: Path) -> None:
    entry = {"secret": NEW.decode(), "sources": ["//node-a"]}
    settings = _worker(tmp_path, "enforce", signing_keys=json.dumps({"node-a-2": entry}))
    assert load_keyring(settings).key_ids == ["node-a-1", "node-a-2"]


def test_keyring_problems_name_the_setting_not_the_secret(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- just\n- a list\n")
    (tmp_path / "bad.yaml").chmod(0o600)
    settings = WorkerSettings(
        state_dir=tmp_path,
        signature_mode="enforce",
        signing_keyring_file=tmp_path / "bad.yaml",
        signing_keys='{"node-b": {"secret": "tiny-secret", "sources": ["*"]}}',  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError) as caught:
        load_keyring(settings)
    assert "TOKENOPS_WORKER_SIGNING_KEYRING_FILE" in str(caught.value)
    assert "tiny-secret" not in str(caught.value)
    with pytest.raises(ValueError, match="needs signing_keyring_file"):
        WorkerSettings(state_dir=tmp_path, signature_mode="enforce")


def test_producer_signs_what_it_sends(tmp_path: Path) -> None:
    key_file = tmp_path / "node.key"
    key_file.write_text(OLD.decode() + "\n")
    key_file.chmod(0o600)
    signer = record_signer(ProducerSettings(signing_key_id="node-a-1", signing_key_file=key_file))
    assert signer is not None and "secret" not in repr(signer)
    events = [event(1), event(2)]
    record = SpooledRecord(2, b"acme", BATCH_CONTENT_TYPE, encode_batch(events))
    headers = [*BATCH_HEADERS, *signer.headers(record)]
    assert received(record.value, headers, ring({"node-a-1": OLD})) == "node-a-1"
    junk = SpooledRecord(1, b"acme", CLOUDEVENTS_CONTENT_TYPE, b"{not json")
    assert signer.headers(junk) == []  # send_raw fault injection goes unsigned
    assert record_signer(ProducerSettings()) is None


def test_producer_signing_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ProducerSettings(signing_key_id="k")
    with pytest.raises(ValueError, match="needs signing_key_id"):
        ProducerSettings(signing_key="x" * 20)  # type: ignore[arg-type]
    with pytest.raises(ProducerError, match="under 16 bytes"):
        record_signer(ProducerSettings(signing_key_id="k", signing_key="short"))  # type: ignore[arg-type]
    with pytest.raises(ProducerError, match="SIGNING_KEY_FILE"):
        record_signer(ProducerSettings(signing_key_id="k", signing_key_file=tmp_path / "none"))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(valid_fields(), st.integers(1, 1000))
def test_signatures_survive_every_encoding_and_no_edit(fields: dict[str, Any], bump: int) -> None:
    """Signed from the model, verified after the SDK's own encoding (`encode_fields`,
    which may spell times and optional fields differently) and after `encode_event`."""
    ev = UsageEvent(**fields)
    header = signature_header("k1", OLD, [ev])
    keyring = Keyring({"k1": SigningKey(OLD, ("*",))})  # any source the strategy draws
    sig = [(SIGNATURE_HEADER, header)]
    for value in (encode_fields(fields, max_future_skew_s=10**9)[1], encode_event(ev)):
        decoded = decode_record(value, None, now_ms=NOW_MS)
        assert keyring.verify(decoded, sig) == "k1"
    edited = ev.model_copy(update={"output_tokens": ev.output_tokens + bump})
    with pytest.raises(InvalidEventError, match="forged"):
        keyring.verify([edited], sig)


def test_clickhouse_sink_stores_the_key_id_and_leaves_the_verdict_to_the_worker() -> None:
    """The sink does not verify: with a keyring of its own it once stored an event the
    worker rejected. It stores the key id; the worker's dead letter leaves the record
    out of the billing view (tests/integration/test_clickhouse_verdicts.py)."""
    good = signed([event(1), event(2)])
    forged = signed([event(3)], secret=b"attacker-guess-0123456789")
    unsigned = (encode_event(event(4)), EVENT_HEADERS)
    records = [(v, h, 0, i) for i, (v, h) in enumerate([good, forged, unsigned])]
    columns, skipped = decode_chunk(records)
    assert skipped == []
    assert dict(zip(EVENT_COLUMNS, columns, strict=True))["key_id"] == ["node-a-1"] * 3 + [""]


def test_signature_key_id_names_the_claimed_key_only_when_well_formed() -> None:
    _, headers = signed([event()], "node-a-2", OLD)
    assert signature_key_id(headers) == "node-a-2"  # claimed, not verified
    assert signature_key_id(EVENT_HEADERS) is None
    assert signature_key_id(None) is None
    assert signature_key_id([(SIGNATURE_HEADER, b"v1;kid=a b;sig=x")]) is None
    assert signature_key_id([*headers, headers[-1]]) is None
