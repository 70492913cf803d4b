"""Window, watermark and late-correction logic with explicit timestamps (no Kafka)."""

from __future__ import annotations

from tokenops.streams.windows import COUNT, FIRST, LAST, NO_TIME, REVISION, WindowBook

T0 = 1_800_000_000_000  # a window boundary for 60 s windows (divisible by 60,000)
ONE = (10, 5, 1, 2, 3)


def _book() -> WindowBook:
    return WindowBook(60_000, 30_000)


def _closed_none(_: object) -> None:
    return None


def test_events_accumulate_in_their_tumbling_window() -> None:
    book = _book()
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 1_000, ONE)
    book.add("acme", "m1", T0 + 59_999, ONE)
    book.add("acme", "m1", T0 + 60_000, ONE)  # the next window
    result = book.finish()
    assert not result.emitted
    first = book.open[T0][("acme", "m1", "")]
    assert first[:5] == [20, 10, 2, 4, 6]
    assert first[COUNT] == 2 and first[FIRST] == T0 + 1_000 and first[LAST] == T0 + 59_999
    assert book.open[T0 + 60_000][("acme", "m1", "")][COUNT] == 1
    assert book.watermark_ms == T0 + 60_000 - 30_000


def test_window_closes_when_watermark_passes_its_end() -> None:
    book = _book()
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 5_000, ONE)
    book.add("acme", "m1", T0 + 89_999, ONE)  # watermark T0 + 59_999: still open
    assert not book.finish().emitted
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 90_000, ONE)  # watermark reaches T0 + 60_000 = window end
    result = book.finish()
    assert list(result.emitted) == [("acme", "m1", "", T0)]
    assert result.emitted[("acme", "m1", "", T0)][REVISION] == 1
    assert result.closed == [("acme", "m1", "", T0)]
    assert T0 not in book.open


def test_event_inside_allowed_lateness_joins_the_open_window() -> None:
    book = _book()
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 85_000, ONE)  # watermark T0 + 55_000
    book.finish()
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 10_000, ONE)  # 75 s behind the max, window still open
    result = book.finish()
    assert result.late_events == 0
    assert book.open[T0][("acme", "m1", "")][COUNT] == 1


def test_event_beyond_lateness_yields_a_correction_with_absolute_totals() -> None:
    book = _book()
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 1_000, ONE)
    book.add("acme", "m1", T0 + 120_000, ONE)
    closed = book.finish().emitted[("acme", "m1", "", T0)]
    stored = {("acme", "m1", "", T0): list(closed)}
    book.begin(stored.get)
    book.add("acme", "m1", T0 + 2_000, ONE)
    book.add("acme", "m1", T0 + 3_000, ONE)
    result = book.finish()
    corrected = result.emitted[("acme", "m1", "", T0)]
    assert corrected[REVISION] == 2  # one correction per batch, not per event
    assert corrected[COUNT] == 3 and corrected[:5] == [30, 15, 3, 6, 9]
    assert result.late_events == 2 and result.corrections == 1


def test_late_event_for_a_window_never_seen_starts_at_revision_one() -> None:
    book = _book()
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 600_000, ONE)
    book.finish()
    book.begin(_closed_none)
    book.add("beta", "m1", T0, ONE)
    result = book.finish()
    assert result.emitted[("beta", "m1", "", T0)][REVISION] == 1


def test_idle_floor_advances_the_watermark_but_never_back() -> None:
    book = _book()
    assert book.watermark_ms == NO_TIME
    book.begin(_closed_none)
    book.add("acme", "m1", T0 + 1_000, ONE)
    book.finish()
    book.begin(_closed_none)
    result = book.finish(watermark_floor_ms=T0 + 60_000)
    assert list(result.emitted) == [("acme", "m1", "", T0)]
    book.begin(_closed_none)
    book.finish(watermark_floor_ms=T0)
    assert book.watermark_ms == T0 + 60_000


def test_windows_are_per_tenant_model_and_region() -> None:
    book = _book()
    book.begin(_closed_none)
    for tenant, model, region in [
        ("a", "m1", ""),
        ("a", "m2", ""),
        ("b", "m1", ""),
        ("a", "m1", ""),
        ("a", "m1", "west"),
        ("a", "m1", "east"),
        ("a", "m1", "west"),
    ]:
        book.add(tenant, model, T0 + 1, ONE, region)
    book.finish()
    assert {k: v[COUNT] for k, v in book.open[T0].items()} == {
        ("a", "m1", ""): 2,
        ("a", "m2", ""): 1,
        ("b", "m1", ""): 1,
        ("a", "m1", "west"): 2,
        ("a", "m1", "east"): 1,
    }


def test_add_events_matches_add_one_by_one() -> None:
    import random
    from types import SimpleNamespace

    rng = random.Random(3)
    batches = []
    for b in range(6):
        batch = []
        for _ in range(200):
            t = T0 + b * 40_000 + rng.randint(-90_000, 20_000)  # on time, inside and past
            d = {
                "tenant_id": rng.choice("abc"),
                "model": rng.choice(["m1", "m2"]),
                "region": rng.choice([None, "west"]),
                "input_tokens": rng.randint(0, 9),
                "output_tokens": rng.randint(0, 9),
                "cache_read_input_tokens": 1,
                "cache_creation_input_tokens": 2,
                "reasoning_output_tokens": 3,
            }
            event = SimpleNamespace(**d)
            event.time_ms = t
            batch.append(event)
        batches.append(batch)

    def run(bulk: bool) -> list[object]:
        book, closed, results = _book(), {}, []
        for batch in batches:
            book.begin(closed.get)
            if bulk:
                book.add_events(batch)
            else:
                for e in batch:
                    d = e.__dict__
                    book.add(
                        d["tenant_id"],
                        d["model"],
                        e.time_ms,
                        (d["input_tokens"], d["output_tokens"], 1, 2, 3),
                        d["region"] or "",
                    )
            result = book.finish()
            closed.update({w: list(v) for w, v in result.emitted.items()})
            results.append((result.emitted, result.open, result.late_events, book.watermark_ms))
        return results

    assert run(True) == run(False)
    assert any(late for _, _, late, _ in run(True))
