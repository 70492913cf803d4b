"""The fleet simulator against the real broker: the topic holds exactly its ledger."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.processes import TOKENOPS
from tokenops.producers import ProducerSettings, UsageProducer
from tokenops.schemas import InvalidEventError, decode_record
from tokenops.settings import KafkaSettings
from tokenops.simulate.ledger import Ledger
from tokenops.simulate.readback import read_topic
from tokenops.simulate.simulator import SimulationConfig, Simulator

pytestmark = pytest.mark.integration

FAULTY = SimulationConfig(
    tenants=20,
    rate=4000,
    duration_s=2.0,
    seed=11,
    duplicate_share=0.05,
    late_share=0.05,
    late_by_s=90,
    malformed_share=0.01,
)


def test_the_topic_holds_exactly_the_ledger(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(partitions=4)
    settings = ProducerSettings(topic=topic, spool_dir=tmp_path / "spool")
    with UsageProducer(kafka_settings, settings) as producer:
        ledger = Simulator(FAULTY).run(producer)
    ledger.save(tmp_path / "ledger.json")
    loaded = Ledger.load(tmp_path / "ledger.json")
    assert loaded.expected_windows(60) == ledger.expected_windows(60)
    assert loaded.malformed == ledger.malformed

    contents = read_topic(kafka_settings, topic)
    assert ledger.records_sent == FAULTY.total_records
    assert ledger.duplicates and ledger.late and ledger.malformed
    assert ledger.compare(contents.events, 60) == []
    assert ledger.compare(contents.events, 7) == []
    assert sorted(contents.invalid) == sorted(loaded.malformed_values())
    assert len(contents.events) == ledger.unique_events + len(ledger.duplicates)
    for record in loaded.malformed:  # where each landed, for the dead-letter checks
        assert record.partition is not None and record.offset is not None
        with pytest.raises(InvalidEventError):
            decode_record(record.value, None)


def test_a_seed_and_start_give_the_same_records() -> None:
    config = SimulationConfig(rate=1000, duration_s=1, seed=5, start_ms=1_780_000_000_000)
    assert list(Simulator(config).emissions()) == list(Simulator(config).emissions())
    other = SimulationConfig(rate=1000, duration_s=1, seed=6, start_ms=1_780_000_000_000)
    assert list(Simulator(config).emissions()) != list(Simulator(other).emissions())


def simulate_cli(
    kafka: KafkaSettings, topic: str, tmp_path: Path, *options: str, timeout_s: float = 120
) -> Ledger:
    """`tokenops simulate ... --verify` against `topic`; its ledger, once it verified."""
    env = {
        **os.environ,
        "TOKENOPS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "TOKENOPS_PRODUCER_SPOOL_DIR": str(tmp_path / "spool"),
    }
    ledger = tmp_path / "ledger.json"
    done = subprocess.run(
        [TOKENOPS, "simulate", *options, "--topic", topic, "--ledger", str(ledger), "--verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified" in done.stdout
    return Ledger.load(ledger)


def test_the_cli_sends_and_verifies(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = new_topic(partitions=4)
    options = ["--rate", "2000", "--duration", "1.5", "--seed", "3", "--duplicates", "0.02"]
    options += ["--late", "0.02", "--malformed", "0.005"]
    ledger = simulate_cli(kafka_settings, topic, tmp_path, *options)
    assert ledger.records_sent == 3000


def test_twenty_thousand_events_a_second_for_thirty_seconds_match_the_ledger(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    """The issue's acceptance run, as a user types it: `tokenops simulate --rate 20000
    --duration 30 --verify` against a real broker; the topic holds exactly the ledger."""
    topic = new_topic(partitions=4)
    options = ["--rate", "20000", "--duration", "30"]
    ledger = simulate_cli(kafka_settings, topic, tmp_path, *options, timeout_s=300)
    assert ledger.records_sent == 600_000
    contents = read_topic(kafka_settings, topic)  # and once more, independently of the CLI
    assert len(contents.events) == 600_000 and not contents.invalid
    assert ledger.compare(contents.events, 60) == []
