"""The demo's doors: which door a tenant's events came through, and the OTLP door's
dependency on the OpenTelemetry SDK (a dev extra)."""

from __future__ import annotations

import sys

import pytest

from tokenops.demo.doors import door_of, door_tenants, send_spans
from tokenops.simulate.ledger import Ledger


def test_each_door_has_its_own_tenants_and_the_rest_are_the_sdks() -> None:
    prefix = "ab12-tenant-"
    assert {door_of(t, prefix) for t in door_tenants(prefix, "http")} == {"http"}
    assert {door_of(t, prefix) for t in door_tenants(prefix, "otlp")} == {"otlp"}
    assert door_of(f"{prefix}001", prefix) == "sdk"
    assert door_of(f"{prefix}httpd", prefix) == "sdk"  # only `<door>-NN` names a door


def test_without_the_opentelemetry_sdk_the_otlp_door_raises_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    ledger = Ledger()
    with pytest.raises(ImportError):
        send_spans("http://127.0.0.1:9", "tok_x_y", "p-", 10, ledger)
    assert ledger.unique_events == 0  # nothing counted that was not sent
