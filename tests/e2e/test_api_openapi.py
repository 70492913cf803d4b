"""The OpenAPI document: checked in, served unchanged, valid OpenAPI 3.1, and true of
the live server (schemathesis: no 5xx, every answer in the document)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from openapi_spec_validator import validate

from tests.api_server import ApiServer, full_env, start_api
from tests.clickhouse_helpers import ms, window
from tokenops.settings import KafkaSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
CHECKED_IN = Path(__file__).parents[2] / "schemas" / "tokenops-api.openapi.json"


def test_served_document_is_the_checked_in_one_and_valid(api_server: ApiServer) -> None:
    status, _, served = api_server.request("GET", "/openapi.json", key=None)
    assert status == 200
    assert orjson.loads(served) == orjson.loads(CHECKED_IN.read_bytes())
    validate(orjson.loads(served))


@pytest.fixture
def full_server(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], chdb_dsn: str, tmp_path: Path
) -> Iterator[ApiServer]:
    """Every route on: a billing store with one window, empty quota topics."""
    windows = [window("acme", "gpt-4o", ms(2026, 10, 5, 1, 0))]
    env = full_env(new_topic, chdb_dsn, tmp_path, windows)
    server = start_api(kafka_settings, new_topic("usage"), tmp_path, ["acme"], env)
    deadline = time.monotonic() + 30
    while server.request("GET", "/v1/quotas/acme")[0] != 200:  # the quota view caught up
        assert time.monotonic() < deadline
        time.sleep(0.3)
    yield server
    server.process.stop()


def test_schemathesis_finds_no_server_error_or_undocumented_answer(
    full_server: ApiServer, tmp_path: Path
) -> None:
    api_server = full_server
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,"
    checks += "response_schema_conformance,response_headers_conformance"
    for key in ("admin", "acme"):
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                api_server.url + "/openapi.json",
                "--checks",
                checks,
                "--header",
                f"Authorization: Bearer {api_server.keys[key]}",
                "--max-examples",
                "12",
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "1",
                "--generation-database",
                "none",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
