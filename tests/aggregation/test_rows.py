"""The open-hours row store: a read that another database overtakes (a real SQLite log), and with a
fake log, the pages a read takes, the id ranges it asks for again, the spans it gives up and watches,
and the open rows' sums kept up to the cut."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_api.aggregation import holes
from cost_api.aggregation.aggregator import Filters, threshold_params
from cost_api.aggregation.groups import Groups, Totals, Vocab
from cost_api.aggregation.holes import HOLE_SECONDS, LOST_SECONDS
from cost_api.aggregation.rollups import Bound
from cost_api.aggregation.rows import _SPANS_HOURS, TAIL_MS, RowSet, RowStore
from cost_api.config import load_settings
from cost_api.lenses.live import live_answer
from cost_api.lenses.summary import summary_answer
from cost_api.pricing.table import load_table
from cost_api.resources import builtin_pricing, sql_dir
from cost_api.store.queries import Registry
from cost_api.store.result import Rows
from cost_api.web.service import build_service
from cost_api.windows import HOUR_MS, parse_window

from ..clock import FakeClock
from ..logdb import LogDB, Row, SqliteLog, at

NOW = at("2026-11-20T12:00:00Z")


def open_groups(store: RowStore, start_ms: int, end_ms: int, key: str | None) -> Groups:
    """The store's open parts of [start_ms, end_ms), as one set of groups."""
    parts = store.open_parts(start_ms, end_ms, key)
    return Groups.concat(parts[0].vocab, HOUR_MS, parts)


async def test_the_reads_of_one_answer_take_in_new_rows_and_the_log_bounds_once(tmp_path: Path) -> None:
    """The six reads of a summary (and the live lens's two) arrive together: one incremental read that
    begins after the answer arrived serves them all, and the row committed before it is in the answer;
    so does one read of the log's bounds (which every rollup read asks: has retention moved the start?).
    Each read taking its own ticket, the second read after the first had begun read the log again."""
    log = SqliteLog(tmp_path / "log.db")
    await log.insert([Row(at("2026-11-20T10:30:00Z"), prompt_tokens=1_000_000)])  # $0.15
    clock = FakeClock(NOW + timedelta(minutes=30))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}), clock)
    agg = service.aggregator
    try:
        await agg.warm()
        reads: list[str] = []
        fetch = agg.rows._fetch

        async def recorded(name: str, **params: Any) -> Any:
            if name == "rows_after":  # (not the rows of closed hours the windows cut: read once, kept)
                reads.append(name)
            return await fetch(name, **params)

        agg.rows._fetch = recorded
        bounds = agg.db.fetch

        async def recorded_bounds(name: str, **params: Any) -> Any:
            if name == "log_bounds":
                reads.append(name)
            return await bounds(name, **params)

        agg.db.fetch = recorded_bounds  # type: ignore[method-assign]
        await log.insert([Row(at("2026-11-20T12:10:00Z"), completion_tokens=1_000_000)])  # $0.60, open hour
        window = parse_window(window="24h", from_=None, to=None, tz=None, default="24h", now=agg.now())
        summary = await summary_answer(agg, window, top_window=timedelta(days=7), top=5, filters=Filters())
        assert (summary.spend, sorted(reads)) == (0.75, ["log_bounds", "rows_after"])
        reads.clear()
        live = await live_answer(
            agg, parse_window(window="1h", from_=None, to=None, tz=None, default="1h", now=agg.now()), filters=Filters()
        )
        assert (live.spend, sorted(reads)) == (0.60, ["log_bounds", "rows_after"])
    finally:
        await service.close()


async def test_a_read_overtaken_by_another_database_keeps_nothing(tmp_path: Path) -> None:
    """`forget` (another file behind the URL) may run while `refresh` or `reread_open` waits on the
    database, outside the aggregator's lock: what that read brings back belongs to the old file and is
    dropped, instead of being joined to open rows that are gone (a 500 under load, once)."""
    log = SqliteLog(tmp_path / "log.db")
    await log.insert([Row(at("2026-11-20T11:30:00Z"), prompt_tokens=1_000)])
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    store: RowStore | None = None
    overtaken = False

    async def fetch(name: str, **params: Any) -> list[Any]:
        rows = await service.db.fetch(name, **params)
        if overtaken and store is not None:
            store.forget()
        return rows

    try:
        store = RowStore(fetch, Vocab(), service.pricing, threshold_params(service.pricing), FakeClock(NOW))
        await store.start(int(at("2026-11-20T11:00:00Z").timestamp() * 1000), 0)
        assert store.started and len(store.open or []) == 0  # ids up to 0: the row comes through refresh
        overtaken = True
        late: list[RowSet] = []
        await store.refresh(late.append)
        assert late == [] and not store.started  # nothing kept, nothing joined: read anew on start
        await store.start(int(at("2026-11-20T11:00:00Z").timestamp() * 1000), 0)
        await store.reread_open()
        assert not store.started
    finally:
        await service.close()


async def test_rows_after_reads_the_ids_above_and_in_the_holes_first_by_id(log: LogDB) -> None:
    """The incremental read on every dialect: ids above :after and ids in the ranges :hole_from[i] to
    :hole_to[i], the first :limit of them by id (ClickHouse asks both in one read, the others as a
    union of two); no holes, the ids above alone."""
    await log.insert([Row(NOW - timedelta(minutes=m)) for m in range(10)])  # ids 1 to 10
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    thresholds = threshold_params(service.pricing)

    async def ids(**params: Any) -> list[int]:
        rows = await service.db.fetch("rows_after", **thresholds, **params)
        return [int(i) for (i,) in rows.pick("id")]

    try:
        assert await ids(after=7, hole_from=[2, 5], hole_to=[3, 5], limit=4) == [2, 3, 5, 8]
        assert await ids(after=7, hole_from=[2, 5], hole_to=[3, 5], limit=10) == [2, 3, 5, 8, 9, 10]
        assert await ids(after=7, hole_from=None, hole_to=None, limit=10) == [8, 9, 10]
        assert await ids(after=10, hole_from=None, hole_to=None, limit=10) == []
    finally:
        await service.close()


# --------------------------------------------------------------------------- with a fake log

COLUMNS = Registry.load(sql_dir(), "sqlite").queries["rows_after"].columns
HOUR = 3_600_000
OPEN_MS = int(at("2026-11-20T11:00:00Z").timestamp() * 1000)


class FakeLog:
    """The log as (id, created_at ms, model) rows, answering the row store's queries as the SQL does;
    it records what each `rows_after` asked for."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[int, str]] = {}
        self.asked: list[dict[str, Any]] = []

    def add(self, ids: Iterable[int], when_ms: int, model: str = "gpt-4o-mini") -> None:
        self.rows.update(dict.fromkeys(ids, (when_ms, model)))

    def _result(self, ids: Iterable[int]) -> Rows:
        out = []
        for i in ids:
            when, model = self.rows[i]
            row = {name: 0 for name in COLUMNS} | {"slot": when, "provider": "openai", "model": model}
            row |= {"key": "/chat", "requests": 1, "prompt_tokens": 1_000_000, "token_id": None, "id": i}
            row |= {"tier": None}
            out.append(tuple(row[name] for name in COLUMNS))
        return Rows(out, COLUMNS)

    async def fetch(self, name: str, **params: Any) -> Rows:
        if name == "rows_after":
            self.asked.append(params)
            ranges = list(zip(params["hole_from"], params["hole_to"], strict=True))
            ids = sorted(i for i in self.rows if i > params["after"] or any(lo <= i <= hi for lo, hi in ranges))
            return self._result(ids[: params["limit"]])
        if name == "rows_between":
            start, end = (int(params[k].timestamp() * 1000) for k in ("start", "end"))
            top = params["max_id"]
            ids = [i for i, (w, _) in sorted(self.rows.items()) if start <= w < end and (top is None or i <= top)]
            return self._result(ids)
        assert name == "id_span_hours"
        hours = Counter(w // HOUR for i, (w, _) in self.rows.items() if params["lo"] <= i <= params["hi"])
        return Rows(list(hours.items()), ("hour", "rows"))


async def started(log: FakeLog, clock: FakeClock, max_id: int) -> RowStore:
    pricing = load_table(builtin_pricing())
    store = RowStore(log.fetch, Vocab(), pricing, threshold_params(pricing), clock)
    await store.start(OPEN_MS, max_id)
    return store


def shown(figures: dict[Any, Totals]) -> dict[Any, Any]:
    """Totals per key, their money to within 1e-9 USD: added in another order, sums of floats differ
    in their last bits (and so, at an exact half micro-dollar, even rounded as answers show them)."""
    near = {"spend", "saved_by_cache"}
    return {
        k: {name: pytest.approx(v, rel=0, abs=1e-9) if name in near else v for name, v in dataclasses.asdict(t).items()}
        for k, t in figures.items()
    }


def spend_and_requests(groups: Groups) -> tuple[int, float]:
    total = groups.total()
    return total.requests, round(total.spend, 6)


async def test_a_read_takes_at_most_its_pages_and_hands_late_rows_over_a_page_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cost_api.aggregation.rows.PAGE_ROWS", 10)
    log, clock = FakeLog(), FakeClock(NOW)
    log.add(range(1, 6), OPEN_MS + 60_000)
    store = await started(log, clock, 5)
    log.add(range(6, 41), OPEN_MS - 5 * HOUR)  # a backfill of 35 old rows, then 3 new ones
    log.add(range(41, 44), OPEN_MS + 120_000)
    pages: list[int] = []
    await store.refresh(lambda late: pages.append(len(late)), pages=2)
    assert pages == [10, 10] and not store.caught_up and store.bound() == Bound(25, ())
    await store.refresh(lambda late: pages.append(len(late)), pages=5)
    assert pages == [10, 10, 10, 5] and store.caught_up  # the 4th page held 5 late rows and the 3 new ones
    assert len(store.open or []) == 8 and store.bound() == Bound(43, ())


async def test_gaps_are_ranges_asked_for_until_seen_and_given_up_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(holes, "MAX_HOLES", 2)
    log, clock = FakeLog(), FakeClock(NOW)
    store = await started(log, clock, 0)
    log.add([10, 20, 30, 5_000_000], OPEN_MS + 60_000)
    await store.refresh(lambda late: None)
    # gaps 1..9, 11..19, 21..29, 31..4,999,999: the two newest kept, the others lost (watched)
    assert store.bound().skip == ((21, 29), (31, 4_999_999))
    assert [(s.lo, s.hi) for s in store.holes.lost.spans] == [(1, 9), (11, 19)]
    log.add([25, 1_000_000], OPEN_MS + 90_000)
    await store.refresh(lambda late: None)
    assert log.asked[-1]["hole_from"] == [21, 31] and log.asked[-1]["hole_to"] == [29, 4_999_999]
    # 21..29 split in two, 31..4,999,999 too: the two newest ranges kept, 21..24 and 26..29 lost
    assert store.bound().skip == ((31, 999_999), (1_000_001, 4_999_999))
    assert [(s.lo, s.hi) for s in store.holes.lost.spans] == [(1, 9), (11, 19), (21, 24), (26, 29)]
    assert spend_and_requests(open_groups(store, OPEN_MS, OPEN_MS + HOUR, None)) == (6, 0.9)


async def test_given_up_ids_that_commit_mark_their_hours() -> None:
    log, clock = FakeLog(), FakeClock(NOW)
    store = await started(log, clock, 0)
    log.add([100], OPEN_MS + 60_000)
    await store.refresh(lambda late: None)
    clock.advance(HOLE_SECONDS + 1)
    await store.refresh(lambda late: None)
    assert store.bound().skip == () and len(store.holes.lost) == 1
    open_hour = OPEN_MS // HOUR
    log.add([7, 8], OPEN_MS - 3 * HOUR)  # committed before the first look: every hour the span holds
    assert await store.lost_hours() == [(open_hour - 3, open_hour - 2)]
    assert await store.lost_hours() == []  # nothing changed
    log.add([9], OPEN_MS - 3 * HOUR)
    log.add([10, 11], OPEN_MS - 2 * HOUR)
    log.add([12], OPEN_MS + 60_000)
    assert await store.lost_hours() == [(open_hour - 3, open_hour - 1), (open_hour, open_hour + 1)]
    clock.advance(LOST_SECONDS + 1)
    assert await store.lost_hours() == [] and len(store.holes.lost) == 0  # then the sweep's


async def test_the_open_rows_kept_summed_up_to_the_cut_equal_them_summed_anew() -> None:
    """Under writes an answer sums only the rows after `cut` (TAIL_MS behind the newest): the same
    figures as summing every open row, for windows ending after it; windows ending before it (and
    windows starting inside the open hours) sum their rows."""
    log, clock = FakeLog(), FakeClock(NOW)
    store = await started(log, clock, 0)
    newest = int(NOW.timestamp() * 1000)
    for step in range(5):  # rows every 2 s, up to now, some dated back within the open hours
        first = 1 + step * 20
        log.add(range(first, first + 15), newest - (4 - step) * 2_000)
        log.add(range(first + 15, first + 20), OPEN_MS + step * 60_000, model="o3")
        await store.refresh(lambda late: None)
        assert open_groups(store, OPEN_MS, newest + 1, "endpoint") is not None  # the sums kept from here on
    assert store.cut == (newest - TAIL_MS) // 1000 * 1000
    every = store.open
    assert every is not None
    # whole seconds (a window ending now) take the tail summed per second, other ends its rows
    ends = (newest + 1, newest, newest - 1_000, newest - 2_000, newest - 2_500, newest - 7_000, OPEN_MS + 30 * 60_000)
    for end in ends:
        for key in (None, "endpoint", "token"):
            kept = open_groups(store, OPEN_MS, end, key)
            direct = every.between(OPEN_MS, end).hourly(key)
            assert shown(kept.by("model", "key")) == shown(direct.by("model", "key")), (end, key)
    assert spend_and_requests(open_groups(store, OPEN_MS, newest + 1, None))[0] == 100


async def test_the_tail_summed_per_second_follows_rows_joining_it_and_the_cut_moving() -> None:
    """The tail's sums per second are kept between answers: rows that join it later (some dated
    before rows already there) are added, the seconds the cut passes leave it; every whole-second end
    gives what the rows give."""
    log, clock = FakeLog(), FakeClock(NOW)
    store = await started(log, clock, 0)
    newest = int(NOW.timestamp() * 1000)
    next_id = 1
    for step in range(12):
        clock.set(NOW + timedelta(milliseconds=(step - 11) * 700), wake=False)
        at_ms = newest + (step - 11) * 700
        for offset in (0, -300, -1_900, -4_100):  # out of order, some before the cut
            log.add([next_id], at_ms + offset, model="o3" if offset else "gpt-4o-mini")
            next_id += 1
        await store.refresh(lambda late: None)
        every = store.open
        assert every is not None
        for end in range(store.cut, at_ms + 2_000, 1_000):
            for key in (None, "token"):
                kept, direct = open_groups(store, OPEN_MS, end, key), every.between(OPEN_MS, end).hourly(key)
                assert shown(kept.by("model", "key")) == shown(direct.by("model", "key")), (step, end, key)
    assert spend_and_requests(open_groups(store, OPEN_MS, newest + 1_000, None))[0] == 48


def test_a_row_set_summed_over_any_span_equals_its_rows_summed() -> None:
    """`RowSet.summed` (the kept rows of a closed hour a window cuts, asked on every answer) gives the
    figures of `between(...).hourly(...)` for any span, keyed or not, asked again or not."""
    pricing = load_table(builtin_pricing())
    rng = random.Random(3)
    rows = []
    for i in range(400):
        when = OPEN_MS - HOUR + rng.randrange(HOUR)
        model = rng.choice(["gpt-4o-mini", "o3", "gpt-4o", "no-such-model"])
        row = {name: 0 for name in COLUMNS} | {"slot": when, "provider": "openai", "model": model, "id": i + 1}
        row |= {"key": rng.choice(["/a", "/b"]), "requests": 1, "prompt_tokens": rng.randrange(1, 50_000)}
        row |= {"cache_hit": rng.random() < 0.2, "token_id": rng.choice([None, "tok_a", "tok_b", "tok_c"])}
        row |= {"completion_tokens": rng.randrange(500), "errors": int(rng.random() < 0.1), "tier": None}
        rows.append(tuple(row[name] for name in COLUMNS))
    vocab = Vocab()
    store = RowStore(FakeLog().fetch, vocab, pricing, threshold_params(pricing), FakeClock(NOW))
    kept = store._rowset(Rows(rows, COLUMNS))
    edges = [OPEN_MS - 2 * HOUR, OPEN_MS - HOUR, OPEN_MS - HOUR + 1, OPEN_MS - HOUR // 2, OPEN_MS - 1, OPEN_MS]
    spans = [(a, b) for a in edges for b in edges if a < b] + [(OPEN_MS - HOUR + 5, OPEN_MS - HOUR + 5)]
    spans += [tuple(sorted(rng.randrange(OPEN_MS - HOUR, OPEN_MS) for _ in range(2))) for _ in range(30)]
    for _ in range(2):  # the second time from the spans kept
        for a, b in spans:
            for key in (None, "endpoint", "token"):
                direct = kept.between(a, b).hourly(key)
                for keyed in (False, True):
                    summed = kept.summed(a, b, key, keyed=keyed)
                    assert len(summed) <= len(direct)
                    assert shown(summed.by("key")) == shown(direct.by("key")), (a, b, key, keyed)
                    if not keyed:  # keyed: priced groups summed over their entries (views.keys_only)
                        columns = ("provider", "model", "priced_as", "cache_hit", "size_class", "slot", "quality")
                        assert shown(summed.by(*columns)) == shown(direct.by(*columns))


async def test_a_read_begun_after_an_answer_arrived_serves_it() -> None:
    """The six windows of one summary (or answers queued behind a backfill's page) read the log once:
    a refresh whose ticket predates a read that began since reads nothing itself."""
    log, clock = FakeLog(), FakeClock(NOW)
    store = await started(log, clock, 0)
    first, second = store.ticket(), store.ticket()
    log.add([1, 2], OPEN_MS + 60_000)
    await store.refresh(lambda late: None, since=first)
    await store.refresh(lambda late: None, since=second)
    assert len(log.asked) == 1 and len(store.open or []) == 2
    log.add([3], OPEN_MS + 60_000)
    await store.refresh(lambda late: None, since=store.ticket())  # arrived after that read: reads
    assert len(log.asked) == 2 and len(store.open or []) == 3


async def test_only_the_kept_hours_used_last_keep_their_rows_ordered_for_sums() -> None:
    """What `RowSet.summed` keeps is about the size of the rows again: the kept closed hours beyond
    the last `_SPANS_HOURS` read let go of it (built again if asked), their rows stay kept."""
    log, clock = FakeLog(), FakeClock(NOW)
    for hour in range(12):
        log.add([1000 + hour], OPEN_MS - (hour + 1) * HOUR + 60_000)
    store = await started(log, clock, 2000)
    hours = [OPEN_MS // HOUR - h - 1 for h in range(12)]
    for hour in hours:
        kept = await store.closed_hour(hour)
        assert kept.summed(hour * HOUR, (hour + 1) * HOUR, None).total().requests == 1
    await store.closed_hour(hours[-1] - 1)  # an hour read: the oldest used let go of their sums
    held = [hour for hour in hours if store._hours[hour]._spans is not None]
    assert held == hours[-(_SPANS_HOURS - 1) :]
    kept = await store.closed_hour(hours[0])
    assert kept._spans is None and kept.summed(hours[0] * HOUR, (hours[0] + 1) * HOUR, "token").total().requests == 1
