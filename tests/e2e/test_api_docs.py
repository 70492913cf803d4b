"""Every `bash` example of docs/api.md, run against a live `tokenops api`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.api_server import ApiServer
from tokenops.schemas import decode_record
from tokenops.settings import KafkaSettings
from tokenops.topics import read_to_end

pytestmark = pytest.mark.e2e
DOC = Path(__file__).parents[2] / "docs" / "api.md"


def test_docs_curl_examples_run(api_server: ApiServer, kafka_settings: KafkaSettings) -> None:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 4
    env = {**os.environ, "TOKENOPS_API": api_server.url, "KEY": api_server.keys["acme"]}
    answers = []
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, timeout=30
        )
        assert done.returncode == 0, (block, done.stderr)
        answers.append(orjson.loads(done.stdout))
    assert [a.get("accepted") for a in answers] == [1, 2, 1, 0]
    assert answers[3]["problems"][0]["field"] == "input_tokens"
    ids = {
        event.id
        for message in read_to_end(kafka_settings, api_server.env["TOKENOPS_PRODUCER_TOPIC"])
        for event in decode_record(message.value(), message.headers())
    }
    assert ids == {"req-0001", "req-0002", "req-0003", "req-0004"}
