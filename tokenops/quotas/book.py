"""The quotas in force: loaded from `deploy/quotas.yaml` and kept current from the quota topic.

The quota topic is compacted with key `tenant|name` and a `QuotaDefinition` as value; a
tombstone (empty value) deletes. The file is the seed (`tokenops quota set --file`
publishes it); at runtime the topic is the only source, so every reader (the worker's
evaluator, the Prometheus sink) sees the same quotas.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from tokenops.quotas.errors import QuotaFileError
from tokenops.schemas.quota import QuotaDefinition

logger = logging.getLogger(__name__)


class QuotaBook:
    """Quota definitions by tenant; cheap to look up once per record."""

    def __init__(self, quotas: Iterable[QuotaDefinition] = ()) -> None:
        self._by_tenant: dict[str, dict[str, QuotaDefinition]] = {}
        # tenant -> its quotas as a tuple, rebuilt on change: one dict lookup per record
        self._lists: dict[str, tuple[QuotaDefinition, ...]] = {}
        for quota in quotas:
            self.put(quota)

    def put(self, quota: QuotaDefinition) -> None:
        quotas = self._by_tenant.setdefault(quota.tenant_id, {})
        quotas[quota.name] = quota
        self._lists[quota.tenant_id] = tuple(quotas.values())

    def delete(self, tenant_id: str, name: str) -> bool:
        quotas = self._by_tenant.get(tenant_id, {})
        found = quotas.pop(name, None) is not None
        if quotas:
            self._lists[tenant_id] = tuple(quotas.values())
        else:
            self._by_tenant.pop(tenant_id, None)
            self._lists.pop(tenant_id, None)
        return found

    def apply_record(self, key: bytes | str | None, value: bytes | None) -> None:
        """Apply one quota-topic record; a bad record is logged and skipped, never fatal."""
        text = key.decode() if isinstance(key, bytes) else key
        if not value:
            if text and "|" in text:
                tenant_id, name = text.split("|", 1)
                self.delete(tenant_id, name)
            return
        try:
            self.put(QuotaDefinition.from_bytes(value))
        except (ValidationError, ValueError) as exc:
            logger.warning("skipped invalid quota record key=%s error=%s", text, exc)

    def for_tenant(self, tenant_id: str) -> tuple[QuotaDefinition, ...]:
        return self._lists.get(tenant_id, ())

    @property
    def by_tenant(self) -> Mapping[str, tuple[QuotaDefinition, ...]]:
        """Tenant -> its quotas (read-only): the evaluator's one dict lookup per record.
        A change replaces the tenant's tuple, so holders of an old tuple see it changed."""
        return self._lists

    def get(self, tenant_id: str, name: str) -> QuotaDefinition | None:
        return self._by_tenant.get(tenant_id, {}).get(name)

    def tenants(self) -> list[str]:
        return list(self._by_tenant)

    def __iter__(self) -> Iterator[QuotaDefinition]:
        for quotas in list(self._by_tenant.values()):
            yield from list(quotas.values())

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_tenant.values())


def load_quota_file(path: Path) -> list[QuotaDefinition]:
    """Every quota of a YAML file (`quotas:` list); all bad entries are reported at once.

    Each problem names the entry (`quotas[2] (acme/daily-tokens)`) and the field.
    """
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise QuotaFileError(path, [f"file not found: {path}"]) from exc
    except yaml.YAMLError as exc:
        raise QuotaFileError(path, [f"not valid YAML: {exc}"]) from exc
    entries = (document or {}).get("quotas") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise QuotaFileError(path, ["the file must hold a top-level `quotas:` list"])
    quotas: list[QuotaDefinition] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        label = _entry_label(index, entry)
        try:
            quota = QuotaDefinition.model_validate(entry)
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "entry"
                problems.append(f"{label}: {field}: {error['msg']} (got {error.get('input')!r})")
            continue
        if quota.key in seen:
            problems.append(f"{label}: duplicate quota name for tenant {quota.tenant_id}")
        seen.add(quota.key)
        quotas.append(quota)
    if problems:
        raise QuotaFileError(path, problems)
    return quotas


def _entry_label(index: int, entry: object) -> str:
    if isinstance(entry, dict):
        return f"quotas[{index}] ({entry.get('tenant_id', '?')}/{entry.get('name', '?')})"
    return f"quotas[{index}]"
