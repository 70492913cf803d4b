"""The multi-region stack's configuration: MirrorMaker's rendered properties, region
names, and MirrorMaker's jars pinned to the broker's Kafka version."""

from __future__ import annotations

import re

import pytest

from tokenops.paths import deploy_dir
from tokenops.simulate.simulator import SimulationConfig, Simulator
from tokenops.stack.errors import StackError
from tokenops.stack.kafka import kafka_version
from tokenops.stack.mirror import mirror_properties
from tokenops.stack.regions import parse_regions


def last_values(text: str) -> dict[str, str]:
    """Properties as Java reads them: the last value of a key wins."""
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_mirrormaker_uses_the_brokers_kafka_version() -> None:
    pom = deploy_dir() / "local" / "mirrormaker" / "pom.xml"
    assert kafka_version(pom) == kafka_version()


def test_local_properties_point_every_region_at_central_with_replication_factor_1() -> None:
    clusters = {"eu": "127.0.0.1:1", "us": "127.0.0.1:2", "hub": "127.0.0.1:3"}
    props = last_values(mirror_properties(clusters, "hub", "tokenops.usage.v1"))
    assert props["clusters"] == "eu, us, hub"
    assert props["eu.bootstrap.servers"] == "127.0.0.1:1"
    for region in ("eu", "us"):
        assert props[f"{region}->hub.enabled"] == "true"
        assert props[f"hub->{region}.enabled"] == "false"
        # `\\.` in a properties file is the regex `\.`: the dot matches only a dot
        assert props[f"{region}->hub.topics"] == r"tokenops\\.usage\\.v1"
    assert props["west->central.enabled"] == "false"  # the checked-in example flow is off
    assert props["hub.offset.flush.interval.ms"] == "5000"  # its worker settings move over
    assert props["replication.policy.class"].endswith("IdentityReplicationPolicy")
    assert props["sync.topic.configs.enabled"] == "false"  # central keeps LogAppendTime
    assert all(v == "1" for k, v in props.items() if k.endswith("replication.factor"))


def test_the_checked_in_properties_replicate_west_into_central() -> None:
    props = last_values((deploy_dir() / "mm2" / "mm2.properties").read_text())
    assert props["west->central.enabled"] == "true"
    assert props["central->west.enabled"] == "false"
    assert re.fullmatch(props["west->central.topics"].replace("\\\\", "\\"), "tokenops.usage.v1")


@pytest.mark.parametrize("text", ["west", "west,west", "West,central", "a b,c", ""])
def test_regions_need_two_distinct_lower_case_names(text: str) -> None:
    with pytest.raises(StackError):
        parse_regions(text)


def test_a_regional_fleet_stamps_its_region_on_every_event() -> None:
    config = SimulationConfig(rate=100, duration_s=1, seed=3, regions=("west",))
    events = [e.fields for e in Simulator(config).emissions() if e.fields is not None]
    assert {f["region"] for f in events} == {"west"}
    assert all(f["source"].startswith("//sim/west/") for f in events)
