"""`WindowBook.add_columns` (a whole record at once) gives exactly what `add()` per event
gives: the same totals, late corrections, watermark, and even the same order of windows
in the book and in the batch result (it decides the order of the output records)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenops.schemas.columns import EventColumns, MixedColumns
from tokenops.streams.windows import MAX_COLUMN_GROUPS, WindowBook

T0 = 1_800_000_000_000  # a window boundary for 60 s windows


def _columns(
    tenant: str,
    rows: list[tuple[str, int, tuple[int, ...]]],
    regions: list[str | None] | None = None,
) -> EventColumns:
    n = len(rows)
    tokens = list(zip(*(r[2] for r in rows), strict=True))
    return EventColumns(
        tenant_id=tenant,
        id=[f"e{i}" for i in range(n)],
        source=["//n"] * n,
        time_ms=[r[1] for r in rows],
        model=[r[0] for r in rows],
        provider=["p"] * n,
        operation=["chat"] * n,
        input_tokens=list(tokens[0]),
        output_tokens=list(tokens[1]),
        cache_read_input_tokens=list(tokens[2]),
        cache_creation_input_tokens=list(tokens[3]),
        reasoning_output_tokens=list(tokens[4]),
        project_id=[None] * n,
        agent_id=[None] * n,
        user_id=[None] * n,
        api_key_id=[None] * n,
        region=regions or [None] * n,
        node_id=[None] * n,
    )


def _run(batches: list[list[EventColumns]], by_columns: bool) -> list[Any]:
    """Every observable result of the batches, dict orders included."""
    book = WindowBook(60_000, 30_000)
    closed: dict[Any, list[int]] = {}
    seen: list[Any] = []
    for batch in batches:
        book.begin(closed.get)
        for record in batch:
            if by_columns:
                book.add_columns(record)
                continue
            for i in range(len(record)):
                book.add(
                    record.tenant_id,
                    record.model[i],
                    record.time_ms[i],
                    tuple(column[i] for column in record.tokens()),  # type: ignore[arg-type]
                    record.region[i] or "",
                )
        max_event = book.max_event_ms
        result = book.finish()
        closed.update({w: list(v) for w, v in result.emitted.items()})
        seen.append(
            (
                list(result.open.items()),
                list(result.emitted.items()),
                result.closed,
                result.late_events,
                result.corrections,
                max_event,
                book.watermark_ms,
                [(s, list(slot.items())) for s, slot in book.open.items()],
            )
        )
    return seen


tokens = st.tuples(*[st.integers(0, 1_000_000)] * 5)
# offsets around the windows of a batch: on time, inside the lateness, long closed
rows = st.lists(
    st.tuples(st.sampled_from(["m1", "m2", "m3"]), st.integers(-200_000, 100_000), tokens),
    min_size=1,
    max_size=30,
)
regions = st.lists(st.sampled_from([None, "west", "east"]), min_size=30, max_size=30)
records = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), rows, regions, st.booleans()), min_size=1, max_size=5
)


@settings(max_examples=300, deadline=None)
@given(st.lists(records, min_size=1, max_size=5), st.booleans())
def test_add_columns_equals_add_per_event(batches: Any, one_window: bool) -> None:
    built = []
    for b, batch in enumerate(batches):
        base = T0 + b * 50_000
        parts = []
        for tenant, record, region, mixed in batch:
            if one_window:  # the common case: one model, one window per record
                record = [("m1", base + abs(t) % 60_000, tok) for _, t, tok in record]
            else:
                record = [(m, base + t, tok) for m, t, tok in record]
            # one region per record (or none), or regions mixed inside the record
            region = region[: len(record)] if mixed else [region[0]] * len(record)
            parts.append(_columns(tenant, record, region))
        built.append(parts)
    assert _run(built, by_columns=True) == _run(built, by_columns=False)


def test_a_record_of_many_windows_is_counted_event_by_event() -> None:
    row = (1, 2, 3, 4, 5)
    many = [("m1", T0 + 60_000 * i, row) for i in range(MAX_COLUMN_GROUPS + 3)]
    batches = [[_columns("a", many)], [_columns("a", many[:2] + many[-1:])]]
    assert _run(batches, by_columns=True) == _run(batches, by_columns=False)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b"]),
                st.sampled_from(["m1", "m2"]),
                st.sampled_from([None, "west", "east"]),
                st.integers(-200_000, 100_000),
                tokens,
            ),
            min_size=1,
            max_size=30,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_a_chunk_of_single_events_equals_add_per_event_regions_apart(batches: Any) -> None:
    """`add_mixed` (single events of many tenants) keeps each region's window apart."""

    def run(mixed: bool) -> list[Any]:
        book, closed, seen = WindowBook(60_000, 30_000), {}, []
        for b, batch in enumerate(batches):
            rows = [(t, m, r, T0 + b * 50_000 + dt, tok) for t, m, r, dt, tok in batch]
            book.begin(closed.get)
            if mixed:
                chunk = _columns(
                    "", [(m, t, tok) for _, m, _, t, tok in rows], [r for _, _, r, _, _ in rows]
                )
                book.add_mixed(MixedColumns([t for t, *_ in rows], chunk))
            else:
                for tenant, model, region, t, tok in rows:
                    book.add(tenant, model, t, tok, region or "")
            result = book.finish()
            closed.update({w: list(v) for w, v in result.emitted.items()})
            seen.append((list(result.open.items()), list(result.emitted.items()), result.closed))
        return seen

    assert run(True) == run(False)
