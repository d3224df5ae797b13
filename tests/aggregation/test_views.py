"""What answers keep: `Views.hours` (a read no rollup serves, per closed hour) over a fake read, and
the kept answers of a real log following a late row. Every figure is counted by hand."""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from cost_api.aggregation import views as views_module
from cost_api.aggregation.aggregator import LAST_HOUR, Aggregator, Filters
from cost_api.aggregation.groups import Groups, Vocab
from cost_api.aggregation.views import Views, keys_only
from cost_api.config import load_settings
from cost_api.web.service import build_service
from cost_api.windows import HOUR_MS, Range

from ..clock import FakeClock
from ..logdb import LogDB, Row, at
from .cells import COUNT_NAMES, cell, groups

DAY = 20_000
H = DAY * 24  # the day's first hour


class Log:
    """Two requests in every hour; `reads` lists the runs of hours asked for."""

    def __init__(self) -> None:
        self.vocab = Vocab()
        self.extra: dict[int, int] = {}  # hour → requests added since
        self.reads: list[tuple[int, int]] = []

    async def read(self, h0: int, h1: int) -> Groups:
        self.reads.append((h0, h1))
        cells = [cell(h, key="/a", requests=2 + self.extra.get(h, 0)) for h in range(h0, h1)]
        return groups(self.vocab, cells[::-1])  # any order: kept per hour all the same


def requests(pieces: list[Groups]) -> list[int]:
    return [int(p.counts["requests"].sum()) for p in pieces]


async def test_closed_hours_are_read_once_then_only_the_new_or_changed_ones() -> None:
    views, log = Views(), Log()
    assert requests(await views.hours("r", H - 3, H + 2, log.read)) == [2] * 5
    assert log.reads == [(H - 3, H + 2)]  # one read for the run
    assert requests(await views.hours("r", H - 2, H + 4, log.read)) == [2] * 6
    assert log.reads[1:] == [(H + 2, H + 4)]  # only the hours not kept yet
    log.extra[H + 1] = 5  # a late row: the rollups mark its hour changed
    views.changed([H + 1])
    assert requests(await views.hours("r", H - 3, H + 4, log.read)) == [2, 2, 2, 2, 7, 2, 2]
    assert log.reads[2:] == [(H + 1, H + 2)]  # the changed hour alone read again; the rest of its day kept
    await views.hours("other", H, H + 1, log.read)
    assert log.reads[3:] == [(H, H + 1)]  # another read keeps its own hours
    views.clear()
    await views.hours("r", H, H + 1, log.read)
    assert log.reads[4:] == [(H, H + 1)]


async def test_a_window_that_slides_drops_the_oldest_hours_it_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views_module, "HOURS_KEPT", 4)
    views, log = Views(), Log()
    for h in range(H, H + 8):  # a 3-hour window, an hour later each time
        assert requests(await views.hours("r", h, h + 3, log.read)) == [2, 2, 2]
    assert log.reads == [(H, H + 3), *((h + 2, h + 3) for h in range(H + 1, H + 8))]
    await views.hours("r", H, H + 1, log.read)  # dropped long ago: read again
    assert log.reads[-1] == (H, H + 1)


def test_keys_only_sums_priced_groups_per_key_and_keeps_what_the_coverage_lists() -> None:
    vocab = Vocab()
    g = groups(
        vocab,
        [
            cell(H, provider="openai", model="gpt-4o", key="t1", requests=2, spend=1.5, cache_hit=True),
            cell(H, provider="anthropic", model="opus", key="t1", requests=3, spend=0.25),
            cell(H, provider="anthropic", model="new", key="t1", requests=4, priced_as=None),  # unpriced
            cell(H, provider="openai", model="o3", key="t1", requests=1, spend=0.5, no_tier_rate_requests=1),
            cell(H, provider="openai", model="gpt-4o", key="t2", requests=5, spend=2.0),
        ],
    )
    summed = keys_only(g).collapsed()
    assert len(summed) == 5  # t1 cache hit, t1 priced, t1 unpriced, t1 no tier rate, t2
    assert {k: (t.requests, t.spend, t.cache_hits, t.unpriced_requests) for k, t in summed.by("key").items()} == {
        "t1": (10, 2.25, 2, 4),
        "t2": (5, 2.0, 0, 0),
    }
    kept = {(p, m) for p, m in zip(summed.values("provider"), summed.values("model"), strict=True) if p}
    assert kept == {("anthropic", "new"), ("openai", "o3")}  # what pricing_coverage lists, as it was


def test_a_run_is_summed_a_chunk_at_a_time_into_the_same_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views_module, "RUN_CHUNK", 2)
    vocab = Vocab()
    cells = groups(
        vocab,
        [  # three chunks of two, t1 in each; the first sums to one group
            cell(H, key="t1", requests=1, spend=0.5),
            cell(H + 1, key="t1", requests=3, spend=1.0),
            cell(H, key="t2", requests=2, spend=0.25),
            cell(H + 1, provider="anthropic", model="opus", key="t1", requests=4, spend=2.0),
            cell(H + 2, key="t2", requests=5, spend=0.125),
            cell(H + 2, key="t1", requests=6, spend=0.0625, cache_hit=True),
        ],
    )
    run = Views().run("r", H, H + 3, lambda: cells)
    assert set(run.slot.tolist()) == {H}
    assert per_key(run) == {"t1": (14, 3.5625), "t2": (7, 0.375)}
    assert len(run) == 4  # t1 openai, t1 openai cache hit, t1 anthropic, t2
    keyed = Views().run("r", H, H + 3, lambda: cells, keyed=True)
    assert per_key(keyed) == {"t1": (14, 3.5625), "t2": (7, 0.375)}
    assert len(keyed) == 3  # t1, t1 cache hit, t2: provider and model summed over


def test_a_run_of_about_as_many_keys_as_cells_is_summed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks that do not shrink would only sum the same groups again: after the first, the cells are
    summed at once (3M cells of 2M cache keys: 0.8 s, where chunk by chunk took 2.9 s and more heap)."""
    monkeypatch.setattr(views_module, "RUN_CHUNK", 2)
    sizes: list[int] = []
    collapsed = Groups.collapsed

    def counted(self: Groups, *args: Any, **kwargs: Any) -> Groups:
        sizes.append(len(self))
        return collapsed(self, *args, **kwargs)

    monkeypatch.setattr(Groups, "collapsed", counted)
    cells = groups(Vocab(), [cell(H + h % 3, key=f"k{h}", requests=h + 1, spend=h / 8) for h in range(6)])
    run = Views().run("r", H, H + 3, lambda: cells)
    assert sizes == [2, 6]  # the first chunk (two keys of two cells), then every cell at once
    assert per_key(run) == {f"k{h}": (h + 1, h / 8) for h in range(6)}


def test_summing_a_long_run_takes_a_chunks_worth_of_memory_not_the_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30-day run by token is millions of cells: summed at once, its sorts took a multiple of the
    cells' size for a moment (at 10M rows, RSS +374 MiB after the token lens's first answer)."""
    vocab, n, keys = Vocab(), 1_000_000, 20_000
    rng = np.random.default_rng(7)
    codes = vocab.encode([f"t{i}" for i in range(keys)])
    provider, model, entry = (np.full(n, vocab.code(v), dtype=np.int32) for v in ("openai", "gpt-4o", "openai/gpt-4o"))
    counts = {name: np.zeros(n, dtype=np.int64) for name in COUNT_NAMES}
    counts["requests"] = rng.integers(1, 5, n)
    small = np.zeros(n, dtype=np.int8)
    cells = Groups(
        vocab, HOUR_MS, np.sort(rng.integers(H, H + 720, n)), provider, model, codes[rng.integers(0, keys, n)],
        small, np.zeros(n, dtype=bool), counts, rng.random(n), np.zeros(n), entry, small, np.zeros(n, dtype=np.int32),
    )  # fmt: skip

    def summed(chunk: int) -> tuple[dict[object, tuple[int, float]], int]:
        monkeypatch.setattr(views_module, "RUN_CHUNK", chunk)
        tracemalloc.start()
        try:
            run = Views().run("r", H, H + 720, lambda: cells)
            return per_key(run), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    chunked, peak = summed(views_module.RUN_CHUNK)
    whole, whole_peak = summed(n)
    assert len(chunked) == keys and sum(r for r, _ in chunked.values()) == int(counts["requests"].sum())
    assert chunked == whole
    assert peak < whole_peak / 2, (peak, whole_peak)  # 27 MB against 105 MB when written


# --------------------------------------------------------------------------- on a real log

NOW = at("2026-11-20T12:34:56Z")
WEEK = Range(NOW - timedelta(days=7), NOW)
PRICE = 0.15  # one row: 1M input tokens of gpt-4o-mini at its list price


def hourly_rows(hours: int) -> list[Row]:
    """Over the last `hours` whole hours: in each, t1 (team red) on /chat and t2 (team blue) on /search."""
    start = NOW.replace(minute=0, second=0) - timedelta(hours=hours)
    return [
        Row(start + timedelta(hours=h, minutes=5), endpoint=endpoint, token_id=token, prompt_tokens=1_000_000)
        for h in range(hours)
        for token, endpoint in (("t1", "/chat"), ("t2", "/search"))
    ]


def per_key(g: Groups) -> dict[object, tuple[int, float]]:
    return {k: (t.requests, round(t.spend, 6)) for k, t in g.by("key").items()}


async def test_kept_answers_follow_a_late_row(log: LogDB) -> None:
    """By team (a view of the token rollup) and by endpoint for one team or token (a read no rollup
    serves: closed hours kept, the window's partial first hour and the open hour from the single rows
    held), asked, then asked again after a row lands in a closed hour of yesterday."""
    await log.add_tokens([("t1", "pg_t1", "one"), ("t2", "pg_t2", "two")], ['{"team": "red"}', '{"team": "blue"}'])
    edges = [  # in the partial first hour of the week (the kept single rows), and in the open hour
        Row(WEEK.start + timedelta(minutes=10), endpoint="/chat", token_id="t1", prompt_tokens=1_000_000),
        Row(NOW - timedelta(minutes=5), endpoint="/chat", token_id="t1", prompt_tokens=1_000_000),
    ]
    await log.insert(hourly_rows(48) + edges)
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    try:
        agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
        await agg.warm()
        red = Filters(tags=(("team", "red"),))

        async def answers() -> tuple[dict[object, tuple[int, float]], dict[object, tuple[int, float]]]:
            teams = await agg.groups(WEEK, dim="tag:team", whole=True)
            endpoints = await agg.groups(WEEK, filters=red, dim="endpoint", whole=True)
            two = await agg.groups(WEEK, filters=Filters(tokens=("t2",)), dim="endpoint")
            assert per_key(two) == {"/search": (48, round(48 * PRICE, 6))}
            return per_key(teams), per_key(endpoints)

        assert await answers() == (
            {"red": (50, round(50 * PRICE, 6)), "blue": (48, round(48 * PRICE, 6))},
            {"/chat": (50, round(50 * PRICE, 6))},
        )
        await log.insert([Row(NOW - timedelta(days=1), endpoint="/late", token_id="t1", prompt_tokens=1_000_000)])
        await agg.catch_up()
        await agg.reconcile(0, LAST_HOUR)  # what the sweep does (a log without ids sees late rows so)
        assert await answers() == (
            {"red": (51, round(51 * PRICE, 6)), "blue": (48, round(48 * PRICE, 6))},
            {"/chat": (50, round(50 * PRICE, 6)), "/late": (1, PRICE)},
        )
    finally:
        await service.close()
