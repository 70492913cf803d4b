"""The home-partition rule matches the Java client's murmur2 placement."""

from __future__ import annotations

import pytest

from tokenops.placement import home_partition, key_home


@pytest.mark.parametrize(
    ("key", "partitions", "expected"),
    [
        # org.apache.kafka.common.utils.Utils.murmur2 values from the Java client's tests
        ("21", 1 << 31, -973932308 & 0x7FFFFFFF),
        ("foobar", 1 << 31, -790332482 & 0x7FFFFFFF),
        ("a-little-bit-long-string", 1 << 31, -985981536 & 0x7FFFFFFF),
    ],
)
def test_matches_java_reference(key: str, partitions: int, expected: int) -> None:
    assert home_partition(key, partitions) == expected


def test_is_stable_and_in_range() -> None:
    for n in (1, 3, 4, 12):
        homes = {home_partition(f"tenant-{i:03d}", n) for i in range(200)}
        assert homes <= set(range(n))
        assert home_partition("tenant-001", n) == home_partition("tenant-001", n)


def test_refuses_zero_partitions() -> None:
    with pytest.raises(ValueError, match="partitions"):
        home_partition("tenant-001", 0)


def test_a_key_is_at_home_where_its_tenant_is_and_unusable_keys_have_no_home() -> None:
    assert key_home(b"tenant-007", 4) == home_partition("tenant-007", 4)
    assert key_home(None, 4) is None
    assert key_home(b"", 4) is None
    assert key_home(b"\xff\xfe", 4) is None  # not UTF-8: decoded where it landed
