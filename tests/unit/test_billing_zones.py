"""A tenant's billing time zone: config first, then its quotas' zone, then the default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tokenops.sinks.clickhouse.settings import ClickHouseSettings

QUOTAS = """
quotas:
  - {tenant_id: acme, name: daily, period: day, limit: 1000, timezone: Asia/Kolkata}
  - {tenant_id: acme, name: monthly, period: month, limit: 9000, timezone: Asia/Kolkata}
  - {tenant_id: beta, name: daily, period: day, limit: 1000, timezone: Asia/Kathmandu}
"""


def test_config_then_quota_file_then_default(tmp_path: Path) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(QUOTAS)
    settings = ClickHouseSettings(
        time_zones={"beta": "America/New_York"},
        default_time_zone="Asia/Shanghai",
        quota_file=quotas,
    )
    assert settings.zone_of("acme") == "Asia/Kolkata"  # from its quotas
    assert settings.zone_of("beta") == "America/New_York"  # config wins
    assert settings.zone_of("other") == "Asia/Shanghai"


def test_quotas_that_disagree_or_unknown_zones_are_refused(tmp_path: Path) -> None:
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text(QUOTAS.replace("timezone: Asia/Kolkata}", "timezone: UTC}", 1))
    with pytest.raises(ValidationError, match="quotas of acme name several time zones"):
        ClickHouseSettings(quota_file=quotas)
    with pytest.raises(ValidationError, match="unknown IANA time zone 'Mars/Olympus'"):
        ClickHouseSettings(time_zones={"acme": "Mars/Olympus"})
