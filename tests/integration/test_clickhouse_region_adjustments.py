"""A correction to one region's window of a closed month, on a real embedded ClickHouse
(chDB): the adjustment is that region's only, priced at that window's difference.

Region is part of a window's identity, so one tenant, model and window start can hold
a window per region. A late correction of one of them must be adjusted against that
region's stored totals, not the other region's (or their sum), and must leave the other
region's window, and the frozen invoice, alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.clickhouse_helpers import ms, window
from tests.integration.test_clickhouse_store import REPO, _hand_invoice
from tokenops.schemas import WindowTotals
from tokenops.sinks.clickhouse import ClickHouseSettings, ClickHouseStore, open_store
from tokenops.sinks.clickhouse.billing import frozen_invoice, invoice
from tokenops.sinks.clickhouse.closing import close_months
from tokenops.sinks.clickhouse.invoice_model import Invoice
from tokenops.sinks.clickhouse.reconcile import CLOSED_CHECK, Difference, reconcile
from tokenops.sinks.clickhouse.service import prepare_store
from tokenops.sinks.clickhouse.watermarks import WATERMARK_COLUMNS
from tokenops.sinks.clickhouse.writer import ClickHouseWriter, Closing

NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)
START = ms(2026, 11, 20, 14, 0)
# Per-event counts that do not price to whole cents, so a wrong delta shows in the amount.
PER_EVENT = {
    "input_tokens": 12_347,
    "output_tokens": 4_571,
    "cache_read": 2_003,
    "cache_creation": 337,
    "reasoning": 991,
}
CLOSING = Closing(zone_of=lambda tenant: "UTC", lateness_s=0)


@pytest.fixture
def store(chdb_dsn: str, tmp_path: Path) -> Iterator[ClickHouseStore]:
    with open_store(ClickHouseSettings(url=chdb_dsn, http_port=0), tmp_path) as opened:
        prepare_store(opened, None)
        yield opened


def _window(region: str, events: int, revision: int = 1) -> WindowTotals:
    w = window("acme", "gpt-4o", START, revision=revision, events=events, **PER_EVENT)
    return w.model_copy(update={"region": region})


def _raw_events(store: ClickHouseStore, region: str, count: int) -> None:
    """The stored raw events a window counts: closing waits until the totals hold them."""
    at = datetime.fromtimestamp(START / 1000, UTC)
    columns = {"source": "//node/test", "time": at, "tenant_id": "acme", "region": region}
    columns |= {"model": "gpt-4o", "provider": "openai", "operation": "chat"}
    store.client.insert(
        "raw_events",
        [[f"{region}-{n}", *columns.values()] for n in range(count)],
        column_names=["id", *columns],
    )


def _close_november(store: ClickHouseStore) -> tuple[Invoice, ClickHouseWriter]:
    """November closed with west's 3 events and central's 5: its frozen invoice."""
    client = store.client
    writer = ClickHouseWriter(client, closing=CLOSING)
    _raw_events(store, "west", 3)
    _raw_events(store, "central", 5)
    writer.write_windows([_window("west", 3), _window("central", 5)])
    # Every partition's watermark is past November's end: the month closes.
    client.insert(
        "partition_watermarks",
        [[0, 1, datetime(2026, 12, 2, tzinfo=UTC)]],
        column_names=WATERMARK_COLUMNS,
    )
    (number,) = close_months(client, CLOSING.zone_of, CLOSING.lateness_s)
    closed = frozen_invoice(client, "acme", NOV)
    assert closed is not None and closed.number == number
    assert {line.region for line in closed.lines} == {"west", "central"}
    return closed, writer


def _reconcile_months(store: ClickHouseStore) -> tuple[list[str], list[Difference]]:
    """November (closed) and December (its adjustments), without raw events: the
    windows were written without the events a correction adds."""
    return reconcile(
        store.client,
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        raw_events=False,
    )


def test_a_correction_to_one_regions_window_adjusts_that_region_only(
    store: ClickHouseStore,
) -> None:
    client = store.client
    closed, writer = _close_november(store)
    number = closed.number

    # Late events for west: revision 2 with 4 more events; central is replayed unchanged.
    writer.write_windows([_window("west", 7, revision=2), _window("central", 5)])

    after = frozen_invoice(client, "acme", NOV)
    assert after is not None
    assert (after.number, after.content_hash) == (closed.number, closed.content_hash)
    assert after.lines == closed.lines

    stored = client.query(
        "SELECT region, original_number, revision, event_count FROM invoice_adjustments FINAL"
    ).result_rows
    assert stored == [("west", number, 2, 4)]  # one adjustment; central's replay adds none

    bill = invoice(client, "acme", DEC)
    assert bill.lines == []  # December has no usage of its own: only the adjustment
    assert {(a.region, a.original_invoice, a.window_start) for a in bill.adjustments} == {
        ("west", number, "2026-11-20 14:00:00.000")
    }
    delta = {k: v * 4 for k, v in PER_EVENT.items()}
    delta["input"], delta["output"] = delta.pop("input_tokens"), delta.pop("output_tokens")
    expected = _hand_invoice(
        REPO / "deploy" / "prices.yaml", "gpt-4o", datetime(2026, 11, 20, tzinfo=UTC), delta
    )
    assert {a.token_type: a.amount for a in bill.adjustments} == expected
    assert all(a.event_count == 4 for a in bill.adjustments)
    assert bill.totals == {"USD": sum(expected.values(), Decimal("0.00"))}

    checks, differences = _reconcile_months(store)
    assert CLOSED_CHECK in checks and differences == []


def test_reconcile_names_both_regions_of_an_adjustment_charged_to_the_wrong_one(
    store: ClickHouseStore,
) -> None:
    """West's correction stored as central's: the regions' sum still equals the ledger,
    so only a per-region comparison sees it. Reconcile reports west short by the
    correction and central over by it, on every billable token type."""
    client = store.client
    _, writer = _close_november(store)
    writer.write_windows([_window("west", 7, revision=2)])
    # West's adjustment rewritten under central: region is part of the sorting key, so
    # it cannot be updated in place; copy the row, then delete west's.
    stored = client.query("SELECT * FROM invoice_adjustments FINAL")
    (row,) = stored.named_results()
    client.insert(
        "invoice_adjustments",
        [[*(row | {"region": "central"}).values()]],
        column_names=list(row),
    )
    client.command(
        "ALTER TABLE invoice_adjustments DELETE WHERE region = 'west' SETTINGS mutations_sync = 2"
    )
    assert client.query("SELECT region FROM invoice_adjustments FINAL").result_rows == [
        ("central",)
    ]

    _, differences = _reconcile_months(store)
    assert {d.check for d in differences} == {CLOSED_CHECK}
    billable = {
        "input_tokens": PER_EVENT["input_tokens"]
        - PER_EVENT["cache_read"]
        - PER_EVENT["cache_creation"],
        "output_tokens": PER_EVENT["output_tokens"] - PER_EVENT["reasoning"],
        "cache_read_input_tokens": PER_EVENT["cache_read"],
        "cache_creation_input_tokens": PER_EVENT["cache_creation"],
        "reasoning_output_tokens": PER_EVENT["reasoning"],
    }
    # expected: the ledger (west 7 events, central 5); actual: invoice + adjustments.
    assert {(d.region, d.column, d.expected, d.actual) for d in differences} == {
        (region, token_type, per * ledger, per * billed)
        for token_type, per in billable.items()
        for region, ledger, billed in (("west", 7, 3), ("central", 5, 9))
    }
    assert all(
        (d.tenant_id, d.model, d.bucket) == ("acme", "gpt-4o", "2026-11") for d in differences
    )


def test_reconcile_names_both_regions_of_events_counted_under_the_wrong_one(
    store: ClickHouseStore,
) -> None:
    """West's 3 raw events totalled in central's window: the event counts of the two
    levels agree over all regions, and differ per region."""
    _raw_events(store, "west", 3)  # no token counts: the window below has none either
    no_tokens = dict.fromkeys(PER_EVENT, 0)
    totals = window("acme", "gpt-4o", START, events=3, **no_tokens)
    ClickHouseWriter(store.client, closing=CLOSING).write_windows(
        [totals.model_copy(update={"region": "central"})]
    )
    _, differences = reconcile(
        store.client, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    )
    assert {(d.check, d.region, d.column, d.expected, d.actual) for d in differences} == {
        ("raw_events vs window_totals", "west", "event_count", 3, 0),
        ("raw_events vs window_totals", "central", "event_count", 0, 3),
    }
