"""The worker's decoder: a record's columns, its signature checked only when asked."""

from __future__ import annotations

import pytest

from tests.unit.test_signing import OLD, event, signed
from tokenops.schemas import EVENT_HEADERS, InvalidEventError, encode_batch
from tokenops.schemas.signing import Keyring, SignatureCheck, SigningKey
from tokenops.schemas.wire import BATCH_HEADERS
from tokenops.streams.signing import worker_decoder

NOW_MS = 1_900_000_000_000  # after the events' time


def test_without_a_check_the_decoder_gives_columns() -> None:
    events = [event(1), event(2)]
    columns = worker_decoder(None)(encode_batch(events), BATCH_HEADERS, NOW_MS)
    assert columns.tenant_id == "acme" and columns.events() == events


def test_signed_records_pass_and_unsigned_ones_are_refused_when_enforced() -> None:
    decode = worker_decoder(
        SignatureCheck(Keyring({"node-a-1": SigningKey(OLD, ("//node-a",))}), enforce=True)
    )
    value, headers = signed([event(1), event(2)])
    assert decode(value, dict(headers), NOW_MS).id == ["e1", "e2"]  # dict headers too
    unsigned, _ = signed([event(3)])
    with pytest.raises(InvalidEventError, match="unsigned"):
        decode(unsigned, EVENT_HEADERS, NOW_MS)
    forged = value.replace(b'"input_tokens":101', b'"input_tokens":999')
    with pytest.raises(InvalidEventError, match="forged"):
        decode(forged, headers, NOW_MS)
