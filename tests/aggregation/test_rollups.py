"""`Rollups` over a fake `HourReader` (a list of rows in memory) and an injected clock: no database.

Each test compares what the rollups hold with the same figures summed by hand from the fake log's
rows. Spends are multiples of 1/8 (exact in binary), so sums compare with `==`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from cost_api.aggregation import rollups as rollups_module
from cost_api.aggregation.groups import Groups, Vocab
from cost_api.aggregation.rollups import Bound, Rollups, per_dimension
from cost_api.aggregation.views import View
from cost_api.store.database import QueryTimeout
from cost_api.windows import HOUR_MS

from ..clock import FakeClock
from .cells import cell, groups

DAY = 20_000  # an epoch day (2024-10-04)
H = DAY * 24 + 5  # "now" is in this hour (05:xx UTC); the day started at hour H - 5
GRACE = 300.0  # seconds
MIN = 60_000


@dataclass(frozen=True)
class Row:
    id: int
    at_ms: int
    endpoint: str
    token: str | None
    provider: str
    requests: int
    spend: float

    @property
    def hour(self) -> int:
        return self.at_ms // HOUR_MS

    def key(self, dim: str | None) -> str | None:
        return {None: None, "endpoint": self.endpoint, "token": self.token}[dim]


@dataclass
class FakeLog:
    """The request log as rows, read like the `groups` query: whole hours, within a bound."""

    rows: list[Row]
    vocab: Vocab = field(default_factory=Vocab)
    calls: list[tuple[str | None, int, int, Bound]] = field(default_factory=list)

    def cells(self, rows: list[Row], dim: str | None) -> Groups:
        return groups(
            self.vocab,
            [cell(r.hour, provider=r.provider, key=r.key(dim), requests=r.requests, spend=r.spend) for r in rows],
        )

    async def read(self, dim: str | None, h0: int, h1: int, bound: Bound) -> Groups:
        self.calls.append((dim, h0, h1, bound))
        kept = [
            r
            for r in self.rows
            if h0 <= r.hour < h1 and (bound.max_id is None or r.id <= bound.max_id) and r.id not in bound.skip
        ]
        return self.cells(kept, dim)

    def hourly(self, rows: list[Row]) -> dict[str | None, Groups]:
        """The cells the open-hours reader hands over for these rows (closed or late)."""
        return per_dimension(lambda dim: self.cells(rows, dim))

    def hours_read(self, dim: str | None) -> list[tuple[int, int]]:
        return [(h0, h1) for d, h0, h1, _ in self.calls if d == dim and h0 < h1]

    def add(self, hour: int, minute: int = 10, **kw: Any) -> Row:
        row = Row(
            id=max((r.id for r in self.rows), default=0) + 1,
            at_ms=hour * HOUR_MS + minute * MIN,
            endpoint=kw.get("endpoint", "/late"),
            token=kw.get("token", "t-late"),
            provider=kw.get("provider", "openai"),
            requests=kw.get("requests", 1),
            spend=kw.get("spend", 0.125),
        )
        self.rows.append(row)
        return row


def at(hour: int, seconds: float = 0.0) -> float:
    return hour * 3600 + seconds


def make_rows(first: int, last: int) -> list[Row]:
    """Two rows an hour (at :10 and :40) over hours [first, last], in id order."""
    rows: list[Row] = []
    for h in range(first, last + 1):
        for minute in (10, 40):
            rows.append(
                Row(
                    id=len(rows) + 1,
                    at_ms=h * HOUR_MS + minute * MIN,
                    endpoint=("/a", "/b", "/c")[h % 3],
                    token=("t1", "t2", None)[(h + minute) % 3],
                    provider=("openai", "anthropic")[minute == 40],
                    requests=1 + h % 7,
                    spend=(h % 5 + minute // 10) / 8,
                )
            )
    return rows


def expected(rows: list[Row], dim: str | None, h0: int, h1: int) -> dict[Any, tuple[int, float]]:
    """Requests and spend per key of the rows in hours [h0, h1), summed by hand."""
    out: dict[Any, list[Any]] = defaultdict(lambda: [0, 0.0])
    for r in rows:
        if h0 <= r.hour < h1:
            out[r.key(dim)][0] += r.requests
            out[r.key(dim)][1] += r.spend
    return {k: (n, s) for k, (n, s) in out.items()}


def held(g: Groups) -> dict[Any, tuple[int, float]]:
    return {k: (t.requests, t.spend) for k, t in g.by("key").items()}


TEAMS = {"t1": "red", "t2": "blue"}  # every other token (and anonymous rows): "(none)"


def openai_teams(vocab: Vocab) -> View:
    """A view as a tag filter and grouping make one: OpenAI's cells only, keyed by their token's team."""

    def apply(cells: Groups) -> Groups:
        kept = cells.subset(cells.values("provider") == "openai")
        return dataclasses.replace(kept, key=vocab.encode([TEAMS.get(t, "(none)") for t in kept.values("key")]))

    return View(("openai", "teams"), apply)


def by_team(rows: list[Row], h0: int, h1: int) -> dict[Any, tuple[int, float]]:
    """What `openai_teams` gives over [h0, h1), summed by hand from the rows."""
    out: dict[Any, list[Any]] = defaultdict(lambda: [0, 0.0])
    for r in rows:
        if h0 <= r.hour < h1 and r.provider == "openai":
            team = TEAMS.get(r.token or "", "(none)")
            out[team][0] += r.requests
            out[team][1] += r.spend
    return {k: (n, s) for k, (n, s) in out.items()}


def check(r: Rollups, rows: list[Row], h0: int, h1: int) -> None:
    """Every rollup holds exactly the rows' figures over [h0, h1), hour by hour, coarse and whole, as
    held and through a view (what is kept of both since an earlier check must have followed every
    change in between)."""
    grains: list[dict[str, bool]] = [
        {},
        {"coarse": True},
        {"coarse": True, "whole": True},
        {"whole": True, "keyed": True},
    ]
    for dim in (None, "endpoint", "token"):
        want = expected(rows, dim, h0, h1)
        for grain in grains:
            assert held(r.slice(dim, h0, h1, **grain)) == want, (dim, grain)
        assert r.slice(dim, h0, h1).total() == r.slice(dim, h0, h1, coarse=True).total()
        # the rollup itself: sorted by hour, no hour at or after the horizon
        slots = r.parts[dim].slot
        assert (slots[1:] >= slots[:-1]).all()
        assert not len(slots) or slots[-1] < r.horizon
    view, teams = openai_teams(r.parts["token"].vocab), by_team(rows, h0, h1)
    for grain in grains:
        assert held(r.slice("token", h0, h1, view=view, **grain)) == teams, grain


async def warmed(log: FakeLog, clock: FakeClock, max_id: int | None = None) -> Rollups:
    r = Rollups(log.read, GRACE, clock=clock)
    await r.warm(min(row.at_ms for row in log.rows), r.closed_horizon(), Bound(max_id))
    return r


# --------------------------------------------------------------------------- the horizon


def test_an_hour_closes_grace_after_its_end() -> None:
    clock = FakeClock(at(H, GRACE - 0.001))
    r = Rollups(FakeLog([]).read, GRACE, clock=clock)
    assert r.closed_horizon() == H - 1  # hour H - 1 ended less than the grace ago: still open
    clock.seconds = at(H, GRACE)
    assert r.closed_horizon() == H
    clock.seconds = at(H + 1, GRACE - 1)
    assert r.closed_horizon() == H
    r0 = Rollups(FakeLog([]).read, 0, clock=FakeClock(at(H)))
    assert r0.closed_horizon() == H  # no grace: an hour closes at its end


# --------------------------------------------------------------------------- warm-up


async def test_warm_reads_every_closed_hour_once_newest_first() -> None:
    rows = make_rows(H - 50, H)  # hour H is open
    log = FakeLog(rows)
    clock = FakeClock(at(H, 600))
    r = await warmed(log, clock, max_id=len(rows))
    assert r.ready and r.horizon == H and r.pending == {}
    assert r.oldest_ms == (H - 50) * HOUR_MS + 10 * MIN
    assert log.hours_read("endpoint") == [(H - 24, H), (H - 48, H - 24), (H - 50, H - 48)]
    # the token rollup's newest hour alone first: past the memory cap, it would stop there
    assert log.hours_read("token") == [(H - 1, H), (H - 25, H - 1), (H - 49, H - 25), (H - 50, H - 49)]
    assert log.hours_read(None) == []  # the base rollup is summed from the endpoint one
    assert [c for c in log.calls if c[0] is None] == []
    assert {c[3] for c in log.calls} == {Bound(len(rows))}
    check(r, rows, H - 60, H)
    assert expected(rows, None, H, H + 1)  # the open hour has rows …
    assert len(r.slice(None, H, H)) == 0  # … that the rollups do not hold
    # whole days before the horizon are held as days too: DAY-2 (partial: the log starts in it) and DAY-1
    assert sorted(set(r.days[None].slot.tolist())) == [(DAY - 2) * 24, (DAY - 1) * 24]


async def test_warm_within_a_bound_leaves_later_ids_to_the_open_rows_reader() -> None:
    rows = make_rows(H - 30, H - 1)
    log = FakeLog(rows)
    skipped = rows[5].id
    r = Rollups(log.read, GRACE, clock=FakeClock(at(H, 600)))
    await r.warm(rows[0].at_ms, r.closed_horizon(), Bound(max_id=40, skip=(skipped,)))
    kept = [row for row in rows if row.id <= 40 and row.id != skipped]
    check(r, kept, H - 30, H)
    assert held(r.slice(None, H - 30, H)) != expected(rows, None, H - 30, H)


async def test_a_read_past_query_timeout_is_read_again_in_halves_and_the_warm_up_ends() -> None:
    """While a cold start's requests scan the log on the same cores, a day's read can run past
    `query_timeout`: it is read again in halves (down to an hour), instead of the warm-up starting over."""

    class SlowLog(FakeLog):
        async def read(self, dim: str | None, h0: int, h1: int, bound: Bound) -> Groups:
            if h1 - h0 > 6 and dim == "token":
                self.calls.append((dim, h0, h1, bound))
                raise QueryTimeout("query groups ran past the request's 10s (query_timeout) and was cancelled")
            return await super().read(dim, h0, h1, bound)

    rows = make_rows(H - 30, H)
    log = SlowLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)), max_id=len(rows))
    assert r.ready
    check(r, rows, H - 40, H)
    # (the token rollup's newest hour is read alone first, then a day at a time)
    assert log.hours_read("token")[:5] == [
        (H - 1, H),
        (H - 25, H - 1),
        (H - 13, H - 1),
        (H - 7, H - 1),
        (H - 13, H - 7),
    ]
    assert log.hours_read("endpoint") == [(H - 24, H), (H - 30, H - 24)]


async def test_warm_on_an_empty_log_holds_nothing_and_is_ready() -> None:
    log = FakeLog([])
    r = Rollups(log.read, GRACE, clock=FakeClock(at(H, 600)))
    await r.warm(None, r.closed_horizon(), Bound(0))
    assert r.ready and r.horizon == H and r.oldest_ms is None
    assert log.hours_read("endpoint") == []
    assert len(r.slice(None, H - 100, H)) == 0
    assert len(r.slice("token", H - 100, H, coarse=True)) == 0


# --------------------------------------------------------------------------- closing hours


async def test_an_hour_that_ended_within_the_grace_joins_when_it_closes() -> None:
    rows = make_rows(H - 10, H - 1)
    log = FakeLog(rows)
    clock = FakeClock(at(H, 120))  # hour H - 1 ended two minutes ago: within the grace
    r = await warmed(log, clock)
    assert r.horizon == H - 1
    assert log.hours_read("endpoint") == [(H - 10, H - 1)]
    straggler = log.add(H - 1, minute=59, endpoint="/slow")  # committed late, within the grace: an open row
    check(r, rows, H - 20, H - 1)
    clock.seconds = at(H, GRACE)
    horizon = r.closed_horizon()
    assert horizon == H
    r.close(horizon, log.hourly([row for row in log.rows if row.hour == H - 1]))
    assert r.horizon == H
    check(r, log.rows, H - 20, H)
    assert expected(log.rows, "endpoint", H - 1, H)["/slow"] == (1, straggler.spend)
    assert len(log.hours_read("endpoint")) == 1  # closing reads nothing: the open rows hand their cells over


async def test_closing_hours_across_midnight_adds_the_day() -> None:
    rows = make_rows(H - 30, H + 30)
    log = FakeLog(rows)
    clock = FakeClock(at(H, 600))
    r = await warmed(log, clock, max_id=max(row.id for row in rows if row.hour < H))
    days_before = len(r.days[None])
    midnight = (DAY + 1) * 24  # H + 19
    for hour in range(H, midnight + 2):  # hour by hour, as the clock moves
        clock.seconds = at(hour + 1, GRACE)
        assert r.closed_horizon() == hour + 1
        r.close(hour + 1, log.hourly([row for row in rows if row.hour == hour]))
        check(r, rows, H - 40, hour + 1)
    assert r.horizon == midnight + 2
    assert sorted(set(r.days[None].slot.tolist()))[-1] == DAY * 24  # the day that ended is held as a day
    assert len(r.days[None]) > days_before
    coarse = r.slice(None, DAY * 24, midnight, coarse=True)
    assert len(coarse) == 2  # one cell per day and key: here per provider, the base rollup having no key
    assert coarse.total().requests == sum(row.requests for row in rows if DAY * 24 <= row.hour < midnight)


async def test_closing_several_hours_at_once() -> None:
    rows = make_rows(H - 30, H + 50)
    log = FakeLog(rows)
    clock = FakeClock(at(H, 600))
    r = await warmed(log, clock, max_id=max(row.id for row in rows if row.hour < H))
    clock.seconds = at(H + 49, 600)  # the process slept through two midnights
    horizon = r.closed_horizon()
    r.close(horizon, log.hourly([row for row in rows if H <= row.hour < horizon]))
    assert r.horizon == H + 49
    check(r, rows, H - 30, H + 49)
    assert (DAY + 1) * 24 in r.days[None].slot.tolist() and (DAY + 2) * 24 not in r.days[None].slot.tolist()


# --------------------------------------------------------------------------- late rows


async def test_late_cells_count_at_once_and_are_merged_at_the_next_close() -> None:
    rows = make_rows(H - 60, H - 1)
    log = FakeLog(rows)
    clock = FakeClock(at(H, 600))
    r = await warmed(log, clock)
    parts_before = len(r.parts["endpoint"])
    late = [
        log.add(H - 2, endpoint="/a", spend=0.5),  # in today's closed hours
        log.add(H - 30, endpoint="/new", token=None, spend=1.0),  # in a whole day held as a day
        log.add(H - 30, endpoint="/new", token=None, requests=3, spend=0.25),
        log.add(H - 59, minute=0, provider="mistral"),  # in the log's first day
    ]
    r.add(log.hourly(late))
    assert len(r.parts["endpoint"]) == parts_before  # not merged yet: beside the rollups
    assert len(r.pending["endpoint"]) == 3  # the two cells of hour H - 30 and one key are one cell
    check(r, log.rows, H - 70, H)  # … but every answer counts them, hour by hour and coarse

    clock.seconds = at(H + 1, GRACE)
    r.close(r.closed_horizon(), log.hourly([row for row in log.rows if row.hour == H]))
    assert r.pending == {}  # merged: into the hours and into the day they are in
    check(r, log.rows, H - 70, H + 1)
    day = r.days["endpoint"]
    new_day = day.subset(day.values("key") == "/new")
    assert new_day.slot.tolist() == [(H - 30) // 24 * 24] and new_day.counts["requests"].tolist() == [4]


async def test_counts_are_held_as_int32_and_a_count_past_that_stays_exact() -> None:
    rows = make_rows(H - 30, H - 1)
    log = FakeLog(rows)
    clock = FakeClock(at(H, 600))
    r = await warmed(log, clock)
    assert {part.counts["requests"].dtype for part in r.parts.values()} == {np.dtype(np.int32)}
    huge = 5 * 2**31 + 3  # one late cell past int32 (and past the narrowing limit)
    log.add(H - 2, endpoint="/a", token="t1", requests=huge)
    r.add(log.hourly(log.rows[-1:]))
    clock.seconds = at(H + 1, GRACE)
    r.close(r.closed_horizon(), log.hourly([row for row in log.rows if row.hour == H]))
    assert r.pending == {} and r.parts["token"].counts["requests"].dtype == np.int64  # merged, widened
    check(r, log.rows, H - 40, H + 1)
    assert r.slice("token", H - 2, H - 1).total().requests == huge + 2 * (1 + (H - 2) % 7)  # + make_rows' two


async def test_late_cells_of_the_same_hour_twice_add_up() -> None:
    rows = make_rows(H - 5, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    r.add(log.hourly([log.add(H - 3, endpoint="/x", requests=2)]))
    r.add(log.hourly([log.add(H - 3, endpoint="/x", requests=5)]))
    assert held(r.slice("endpoint", H - 3, H - 2))["/x"] == (7, 0.25)
    check(r, log.rows, H - 5, H)


async def test_many_pending_cells_are_merged_without_waiting_for_a_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollups_module, "_PENDING_CELLS", 4)
    rows = make_rows(H - 40, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    r.add(log.hourly([log.add(H - 35, endpoint="/x"), log.add(H - 3, endpoint="/x")]))  # 2 cells × 3 rollups
    assert r.pending == {}
    assert r.horizon == H  # nothing closed
    check(r, log.rows, H - 40, H)


# --------------------------------------------------------------------------- retention and backfills


async def test_retention_drops_the_hours_before_the_new_first_row_and_rereads_its_hour() -> None:
    rows = make_rows(H - 60, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    r.add(log.hourly([log.add(H - 55, endpoint="/late-old")]))  # a pending cell in the hours that go
    check(r, log.rows, H - 70, H)  # what answers keep of the hours that go, to be dropped with them
    new_first = (H - 40) * HOUR_MS + 30 * MIN  # between the :10 and the :40 row of hour H - 40
    log.rows = [row for row in log.rows if row.at_ms >= new_first]  # the retention job
    log.calls.clear()
    await r.follow_oldest(new_first, Bound(None))
    assert r.oldest_ms == new_first and r.ready
    assert log.hours_read("endpoint") == [(H - 40, H - 39)]  # its hour, read again: the :40 row alone
    assert r.parts[None].slot.min() == H - 40
    assert (r.days[None].slot >= (H - 40) // 24 * 24).all()
    check(r, log.rows, H - 70, H)
    assert held(r.slice(None, H - 70, H - 40)) == {}


async def test_retention_to_a_midnight_keeps_whole_days_only() -> None:
    rows = make_rows(H - 60, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    midnight = (DAY - 1) * 24  # H - 29
    check(r, log.rows, H - 70, H)
    log.rows = [row for row in rows if row.hour >= midnight]
    await r.follow_oldest(log.rows[0].at_ms, Bound(None))
    assert r.days[None].slot.min() == midnight
    check(r, log.rows, H - 70, H)


async def test_an_earlier_first_row_reads_nothing_its_rows_come_late() -> None:
    rows = make_rows(H - 20, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    parts = {dim: len(p) for dim, p in r.parts.items()}
    log.calls.clear()
    backfill = log.add(H - 100, endpoint="/old")
    await r.follow_oldest(backfill.at_ms, Bound(None))
    assert log.calls == [] and r.ready and r.oldest_ms == backfill.at_ms
    assert {dim: len(p) for dim, p in r.parts.items()} == parts
    r.add(log.hourly([backfill]))
    check(r, log.rows, H - 110, H)


async def test_an_emptied_log_or_a_first_row_starts_over() -> None:
    rows = make_rows(H - 5, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    await r.follow_oldest(None, Bound(None))
    assert not r.ready and r.oldest_ms is None
    empty = Rollups(FakeLog([]).read, GRACE, clock=FakeClock(at(H, 600)))
    await empty.warm(None, empty.closed_horizon(), Bound(0))  # a log without rows
    await empty.follow_oldest(rows[0].at_ms, Bound(None))  # its first row
    assert not empty.ready
    unchanged = await warmed(log, FakeClock(at(H, 600)))
    await unchanged.follow_oldest(unchanged.oldest_ms, Bound(None))
    assert unchanged.ready


# --------------------------------------------------------------------------- reconciliation


async def test_reread_puts_the_log_s_hours_in_place_of_what_is_held() -> None:
    rows = make_rows(H - 60, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    before = r.fingerprints(H - 60, H)
    gone = {row.id for row in rows if row.hour in (H - 50, H - 49, H - 3)}
    log.rows = [row for row in rows if row.id not in gone] + [  # deletes, and an updated count
        Row(999, (H - 2) * HOUR_MS, "/a", "t1", "openai", 1000, 2.0)
    ]
    r.add(log.hourly([log.add(H - 49, endpoint="/pending")]))  # pending in an hour read again: replaced
    log.calls.clear()
    await r.reread([H - 50, H - 49, H - 3, H - 2, H + 5], Bound(None))  # H + 5 is not closed: ignored
    assert log.hours_read("endpoint") == [(H - 50, H - 48), (H - 3, H - 1)]  # runs of hours, one read each
    assert log.hours_read("token") == log.hours_read("endpoint")  # no hour alone first: a day or less each
    assert r.pending == {}
    check(r, log.rows, H - 60, H)
    after = r.fingerprints(H - 60, H)
    assert after[H - 2][0] == before[H - 2][0] + 1000
    assert H - 3 not in after and H - 50 not in after and H - 3 in before
    assert after[H - 49][0] == 1  # the row added since, read with its hour


def test_fingerprint_sums_the_counts_per_hour() -> None:
    vocab = Vocab()
    g = groups(vocab, [cell(H, requests=2, errors=1), cell(H, requests=3, prompt_tokens=7), cell(H + 1, excluded=4)])
    prints = rollups_module.fingerprint(g.slot, g.counts)
    assert set(prints) == {H, H + 1}
    names = rollups_module.FINGERPRINT
    assert dict(zip(names, prints[H], strict=True))["requests"] == 5
    assert dict(zip(names, prints[H], strict=True))["errors"] == 1
    assert dict(zip(names, prints[H], strict=True))["prompt_tokens"] == 7
    assert dict(zip(names, prints[H + 1], strict=True))["excluded"] == 4
    assert rollups_module.fingerprint(g.slot[:0], {k: v[:0] for k, v in g.counts.items()}) == {}


# --------------------------------------------------------------------------- slices


async def test_coarse_slices_are_the_fine_hours_summed() -> None:
    rows = make_rows(H - 100, H - 1)
    log = FakeLog(rows)
    r = await warmed(log, FakeClock(at(H, 600)))
    r.add(log.hourly([log.add(H - 70, endpoint="/late"), log.add(H - 4, token="t9")]))
    edges = [H - 120, H - 100, DAY * 24 - 72, DAY * 24 - 50, DAY * 24 - 48, DAY * 24 - 24, DAY * 24 - 1, DAY * 24, H]
    for h0 in edges:
        for h1 in edges:
            if h0 <= h1:
                check(r, log.rows, h0, h1)
    whole = r.slice("endpoint", DAY * 24 - 72, DAY * 24, coarse=True)  # three whole days
    fine = r.slice("endpoint", DAY * 24 - 72, DAY * 24)
    assert len(whole) < len(fine)
    days_and_late = {int(s) for s in whole.slot.tolist()}
    assert days_and_late == {DAY * 24 - 72, DAY * 24 - 48, DAY * 24 - 24, H - 70}  # the late cell stays hourly


def test_pick_serves_a_read_from_the_rollup_that_holds_its_keys() -> None:
    r = Rollups(FakeLog([]).read, GRACE, clock=FakeClock(at(H)))
    assert r.pick(None, False, False) == (False, None)  # not warm
    r.ready = True
    assert r.pick(None, False, False) == (True, None)
    assert r.pick(None, True, False) == (True, "endpoint")  # filtered by endpoint: the endpoint rollup
    assert r.pick(None, False, True) == (True, "token")
    assert r.pick("endpoint", False, False) == (True, "endpoint")
    assert r.pick("endpoint", False, True) == (False, "token")  # a token filter on endpoint keys: SQL
    assert r.pick("token", False, True) == (True, "token")
    assert r.pick(None, True, True)[0] is False  # no rollup has both
    assert r.pick("cache_key", False, False)[0] is False
