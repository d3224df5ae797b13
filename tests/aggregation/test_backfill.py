"""Backfills on both dialects: old rows with new ids after current traffic, ids that jump by millions,
and ids committed long after later ones. Every answer equals totals computed here by hand, and what
the open-hours reader keeps about ids it has not seen (ranges, lost spans) stays a few entries.

Each row is gpt-4o-mini with 1,000,000 input tokens and nothing else: $0.15 (its list price per 1M
input tokens), so a range's spend is its row count × $0.15.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from cost_api.aggregation import holes
from cost_api.aggregation.aggregator import Aggregator
from cost_api.aggregation.holes import HOLE_SECONDS, MAX_LOST_SPANS
from cost_api.aggregation.rows import REQUEST_PAGES
from cost_api.config import load_settings
from cost_api.web.service import Service, build_service
from cost_api.windows import Range

from ..clock import FakeClock
from ..logdb import LogDB, Row, at

NOW = at("2026-11-20T12:34:56Z")
PRICE = 0.15  # one row: 1M input tokens of gpt-4o-mini
WEEK = Range(NOW - timedelta(days=7), NOW)
PAGE = 40


def rows(count: int, when: datetime) -> list[Row]:
    return [Row(when, prompt_tokens=1_000_000) for _ in range(count)]


def sql_time(log: LogDB, when: datetime) -> str:
    return str(int(when.timestamp() * 1000)) if log.dialect == "sqlite" else f"'{when.isoformat()}'"


async def insert_ids(log: LogDB, ids: list[int], when: datetime) -> None:
    """Rows with ids given by hand (a backfill that brings its own, or a sequence handing out ids to
    transactions that commit later)."""
    overriding = "" if log.dialect == "sqlite" else "OVERRIDING SYSTEM VALUE"
    values = ", ".join(f"({i}, {sql_time(log, when)}, 'openai', 'gpt-4o-mini', '/chat', 1000000)" for i in ids)
    await log.execute(
        f"INSERT INTO request_log (id, created_at, provider, model, endpoint, prompt_tokens) {overriding}"
        f" VALUES {values}"
    )


@pytest.fixture
async def service(log: LogDB) -> AsyncIterator[Service]:
    built = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    yield built
    await built.close()


async def totals(agg: Aggregator, rng: Range = WEEK) -> tuple[int, float]:
    total = (await agg.groups(rng)).total()
    return total.requests, round(total.spend, 6)


async def restarted(service: Service, clock: FakeClock) -> Aggregator:
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=clock)
    await agg.warm()
    return agg


async def test_old_rows_appended_after_current_traffic_are_taken_in_pages(
    log: LogDB, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 rows dated 5 days back, appended after the open hour's traffic and followed by more of it:
    an answer reads REQUEST_PAGES pages itself and counts a consistent prefix of the ids; the
    maintenance loop's catch-up takes the rest, and then every window is exact."""
    monkeypatch.setattr("cost_api.aggregation.rows.PAGE_ROWS", PAGE)
    clock = FakeClock(NOW)
    await log.insert(rows(30, NOW - timedelta(minutes=20)) + rows(20, NOW - timedelta(days=3)))
    agg = await restarted(service, clock)
    assert await totals(agg) == (50, round(50 * PRICE, 6))

    backfill_day = NOW - timedelta(days=5)
    await log.insert(rows(300, backfill_day) + rows(10, NOW - timedelta(minutes=1)))
    taken = REQUEST_PAGES * PAGE
    assert (await totals(agg))[0] == 50 + taken  # the ids up to the last page read: none skipped
    assert not agg.rows.caught_up
    await agg.catch_up()
    assert agg.rows.caught_up
    assert await totals(agg) == (360, round(360 * PRICE, 6))  # $54.00
    day = Range(backfill_day - timedelta(hours=1), backfill_day + timedelta(hours=1))
    assert await totals(agg, day) == (300, round(300 * PRICE, 6))  # $45.00, in closed hours
    assert len(agg.rows.holes) == 0 and len(agg.rows.holes.lost) == 0  # contiguous ids: nothing to wait for
    assert await totals(await restarted(service, clock)) == (360, round(360 * PRICE, 6))


async def test_a_jump_of_millions_of_ids_is_one_range(log: LogDB, service: Service) -> None:
    """A row with id 5,000,000: the ids below it are one range, asked for again for HOLE_SECONDS, then
    watched as a lost span; a row that commits inside it later (dated 2 days back) still counts."""
    clock = FakeClock(NOW)
    await log.insert(rows(3, NOW - timedelta(minutes=30)))
    agg = await restarted(service, clock)
    await insert_ids(log, [5_000_000], NOW - timedelta(minutes=5))
    assert await totals(agg) == (4, round(4 * PRICE, 6))
    assert agg.rows.bound().skip == ((4, 4_999_999),)
    await insert_ids(log, [4_000_000], NOW - timedelta(hours=3))  # still asked for: read as a late row
    assert await totals(agg) == (5, round(5 * PRICE, 6))
    assert agg.rows.bound().skip == ((4, 3_999_999), (4_000_001, 4_999_999))

    clock.advance(HOLE_SECONDS + 1)
    await agg.catch_up()
    assert agg.rows.bound().skip == () and len(agg.rows.holes.lost) == 2
    await insert_ids(log, [2_000_000, 2_000_001], NOW - timedelta(days=2))  # no read asks for these ids
    window = Range(NOW - timedelta(days=7), NOW + timedelta(seconds=HOLE_SECONDS + 1))
    assert (await totals(agg, window))[0] == 5  # not yet: the next maintenance tick finds them
    await agg.catch_up()
    assert await totals(agg, window) == (7, round(7 * PRICE, 6))
    assert await totals(await restarted(service, clock), window) == (7, round(7 * PRICE, 6))


async def test_ids_committed_after_later_ones_beyond_the_cap_still_count(
    log: LogDB, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traffic takes every tenth id while a backfill holds the nine between (one transaction beside the
    gateway's): 10 gaps, of which MAX_HOLES (3 here) are asked for again and the rest lost. The
    backfill commits in two steps into hours closed days ago; both are counted once the catch-up ran,
    and the bookkeeping is 3 ranges and at most MAX_LOST_SPANS spans throughout."""
    monkeypatch.setattr(holes, "MAX_HOLES", 3)
    clock = FakeClock(NOW)
    await log.insert(rows(5, NOW - timedelta(days=1)))
    agg = await restarted(service, clock)
    traffic = [10 * k for k in range(1, 11)]  # ids 10, 20, …, 100: gaps 6..9, 11..19, …, 91..99
    await insert_ids(log, traffic, NOW - timedelta(minutes=10))
    assert await totals(agg) == (15, round(15 * PRICE, 6))
    assert agg.rows.bound().skip == ((71, 79), (81, 89), (91, 99))
    assert len(agg.rows.holes.lost) <= MAX_LOST_SPANS

    first = [i for i in range(6, 100) if i % 10 and i >= 21]  # 8 of the gaps: 3 asked for, 5 lost
    when = NOW - timedelta(days=3, minutes=30)
    await insert_ids(log, first, when)
    assert (await totals(agg))[0] == 15 + 27  # the 3 ranges asked for, read as late rows
    await agg.catch_up()  # the lost spans' hours changed: compared with the log, read again
    assert await totals(agg) == (15 + len(first), round((15 + len(first)) * PRICE, 6))

    second = [i for i in range(6, 21) if i % 10]  # the last of them, committing later still
    await insert_ids(log, second, when - timedelta(days=1))
    await agg.catch_up()
    expected = 15 + len(first) + len(second)
    assert await totals(agg) == (expected, round(expected * PRICE, 6))
    assert len(agg.rows.holes) == 0 and len(agg.rows.holes.lost) <= MAX_LOST_SPANS
    assert await totals(await restarted(service, clock)) == (expected, round(expected * PRICE, 6))
