"""Effective-dated prices from deploy/prices.yaml, as Decimal, and their load into ClickHouse."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from clickhouse_connect.driver.client import Client

from tokenops.paths import deploy_dir
from tokenops.schemas import TOKEN_TYPES
from tokenops.sinks.clickhouse.errors import PriceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Price:
    model: str
    token_type: str
    effective_from: datetime
    currency: str
    per_million: Decimal


@dataclass(frozen=True)
class PriceBook:
    prices: tuple[Price, ...]
    digest: str

    def price_at(self, model: str, token_type: str, at: datetime) -> Price | None:
        """The price in effect for `model` and `token_type` at `at` (None if none)."""
        candidates = [
            p
            for p in self.prices
            if p.model == model and p.token_type == token_type and p.effective_from <= at
        ]
        return max(candidates, key=lambda p: p.effective_from, default=None)


def default_prices_file() -> Path:
    return deploy_dir() / "prices.yaml"


def load_prices(path: Path | None = None) -> PriceBook:
    """Read and validate prices.yaml; every problem is reported at once."""
    path = path or default_prices_file()
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise PriceError(f"cannot read prices file {path}: {exc}") from exc
    problems: list[str] = []
    prices: list[Price] = []
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceError(f"prices file {path} needs a 'models' mapping")
    default_currency = str(data.get("currency", "USD"))
    for model, entries in data["models"].items():
        if not isinstance(entries, list) or not entries:
            problems.append(f"models.{model}: needs a list of dated entries")
            continue
        for i, entry in enumerate(entries):
            prices.extend(
                _entry(f"models.{model}[{i}]", str(model), entry, default_currency, problems)
            )
    if problems:
        raise PriceError(f"invalid prices file {path}:\n" + "\n".join(f"  {p}" for p in problems))
    return PriceBook(tuple(prices), hashlib.sha256(text.encode()).hexdigest()[:16])


def _entry(where: str, model: str, entry: Any, currency: str, problems: list[str]) -> list[Price]:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be a mapping")
        return []
    start = _effective_from(where, entry.get("effective_from"), problems)
    currency = str(entry.get("currency", currency))
    found = []
    for token_type in TOKEN_TYPES:
        value = entry.get(token_type)
        if isinstance(value, float) or not isinstance(value, str | int):
            problems.append(f"{where}.{token_type}={value!r}: must be a quoted decimal string")
            continue
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            problems.append(f"{where}.{token_type}={value!r}: not a decimal number")
            continue
        if amount < 0 or amount.as_tuple().exponent < -9:  # type: ignore[operator]
            problems.append(f"{where}.{token_type}={value!r}: must be >= 0, at most 9 decimals")
            continue
        if start is not None:
            found.append(Price(model, token_type, start, currency, amount))
    unknown = set(entry) - {"effective_from", "currency", *TOKEN_TYPES}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    return found


def _effective_from(where: str, value: Any, problems: list[str]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}.effective_from={value!r}: not an ISO 8601 time")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.minute or moment.second or moment.microsecond:
        problems.append(f"{where}.effective_from={value!r}: must be on an hour boundary")
        return None
    return moment


def sync_prices(client: Client, book: PriceBook) -> bool:
    """Insert `book` as a new price set unless it equals the current one; True if loaded."""
    current = client.query("SELECT source_digest FROM prices ORDER BY price_set DESC LIMIT 1")
    if current.result_rows and current.result_rows[0][0] == book.digest:
        return False
    price_set = datetime.now(UTC)
    rows = [
        [price_set, p.model, p.token_type, p.effective_from, p.currency, p.per_million, book.digest]
        for p in book.prices
    ]
    client.insert(
        "prices",
        rows,
        column_names=[
            "price_set",
            "model",
            "token_type",
            "effective_from",
            "currency",
            "price_per_million",
            "source_digest",
        ],
    )
    logger.debug("loaded price set prices=%d digest=%s", len(rows), book.digest)
    return True
