"""A log without `id` (ClickHouse, where it is optional): the same answers to the cent as the same log
with ids on SQLite, through rows arriving in the open hour between two answers, an hour closing, a
late row into a closed hour (found by the sweep, aggregation/unnumbered.py) and the audit view's
pages."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_api.aggregation.aggregator import LAST_HOUR, Aggregator, Filters
from cost_api.aggregation.unnumbered import TimedRows
from cost_api.config import load_settings
from cost_api.web.service import Service, build_service
from cost_api.windows import Range

from ..clock import FakeClock
from ..logdb import ChdbLog, LogDB, Row, SqliteLog, at
from .test_exactness import NOW, check, random_rows

MINI = {"provider": "openai", "model": "gpt-4o-mini"}  # $0.15 per 1M input tokens, $0.60 per 1M output


@pytest.fixture(params=["sqlite", "chdb without id"])
async def either(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The same empty log: on SQLite (ids), or on chDB with the `id` column dropped."""
    log: LogDB
    if request.param == "sqlite":
        log = SqliteLog(tmp_path / "log.db")
    else:
        log = ChdbLog(request.getfixturevalue("chdb_dir"))
        await log.execute("ALTER TABLE request_log DROP COLUMN id")  # inserts leave their ids out
    yield log
    await log.drop()


def started(log: LogDB, clock: FakeClock) -> tuple[Service, Aggregator]:
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    return service, Aggregator(service.db, service.pricing, rollup_grace=900, clock=clock)


async def spend(agg: Aggregator, start: str, end: datetime, dim: str | None = None) -> dict[Any, float]:
    groups = await agg.groups(Range(at(start), end), dim=dim)
    return {key: round(t.spend, 6) for key, t in groups.by("key").items()}


async def test_answers_equal_sqlites_through_open_rows_a_closing_hour_and_a_late_row(either: LogDB) -> None:
    log, clock = either, FakeClock(NOW)  # 12:34:56; with 15 minutes of grace, 12:00 is the open hour
    await log.insert(
        [
            Row(at("2026-11-20T10:30:00Z"), **MINI, token_id="tok_a", prompt_tokens=1_000_000),  # $0.15
            Row(at("2026-11-20T11:15:00Z"), **MINI, token_id="tok_b", completion_tokens=1_000_000),  # $0.60
            Row(at("2026-11-20T12:10:00Z"), **MINI, token_id="tok_a", prompt_tokens=2_000_000),  # $0.30, open
        ]
    )
    service, agg = started(log, clock)
    try:
        await agg.warm()
        assert isinstance(agg.rows, TimedRows) == (log.dialect == "clickhouse")
        assert await spend(agg, "2026-11-20T00:00:00Z", NOW) == {None: 1.05}

        # a row in the open hour between two answers: the next answer counts it
        await log.insert([Row(at("2026-11-20T12:20:00Z"), **MINI, token_id="tok_b", prompt_tokens=1_000_000)])
        assert await spend(agg, "2026-11-20T00:00:00Z", NOW) == {None: 1.20}
        assert await spend(agg, "2026-11-20T00:00:00Z", NOW, "token") == {"tok_a": 0.45, "tok_b": 0.75}
        # a window ending inside the open hour: the 12:20 row is after it
        assert await spend(agg, "2026-11-20T10:00:00Z", at("2026-11-20T12:15:00Z")) == {None: 1.05}

        # a late row into the closed hour 10:00: with ids the next read by id takes it; without, the
        # sweep's fingerprints find the hour differing and read it again
        await log.insert([Row(at("2026-11-20T10:45:00Z"), **MINI, token_id="tok_a", completion_tokens=500_000)])
        await agg.reconcile(0, LAST_HOUR)
        assert await spend(agg, "2026-11-20T00:00:00Z", NOW) == {None: 1.50}
        assert await spend(agg, "2026-11-20T00:00:00Z", NOW, "token") == {"tok_a": 0.75, "tok_b": 0.75}
        assert await agg.reconcile(0, LAST_HOUR) == 0  # nothing differs any more

        # 12:00 closes (13:20 with 15 minutes of grace): read whole into the rollups, nothing twice
        clock.set(at("2026-11-20T13:20:00Z"))
        await log.insert([Row(at("2026-11-20T13:05:00Z"), **MINI, token_id=None, completion_tokens=100_000)])
        assert await spend(agg, "2026-11-20T00:00:00Z", clock.now()) == {None: 1.56}
        assert agg.rollups.horizon * 3_600_000 == int(at("2026-11-20T13:00:00Z").timestamp() * 1000)
        by_token = await spend(agg, "2026-11-20T00:00:00Z", clock.now(), "token")
        assert by_token == {"tok_a": 0.75, "tok_b": 0.75, None: 0.06}
        assert await agg.reconcile(0, LAST_HOUR) == 0
    finally:
        await service.close()


async def test_every_lens_equals_the_raw_rows_without_ids(chdb_dir: Path) -> None:
    """The exactness test's lenses (tests/aggregation/test_exactness.py `check`) on a chDB log without
    `id`: warm, rows into the open hour, hours closing, late rows and a delete found by the sweep."""
    log = ChdbLog(chdb_dir)
    await log.execute("ALTER TABLE request_log DROP COLUMN id")
    rng = random.Random(19)
    await log.insert(random_rows(rng, 2000, NOW - timedelta(days=10), NOW))
    clock = FakeClock(NOW)
    service, agg = started(log, clock)
    try:
        await service.db.check_schema()  # `id` is optional on ClickHouse
        await agg.warm()
        assert isinstance(agg.rows, TimedRows) and agg.rollups.ready
        await check(service, agg, log)
        # rows into closed and open hours, a delete, and two hours closing: the open rows count at the
        # next answer, the rest once the sweep has read their hours again
        await log.insert(random_rows(rng, 60, NOW - timedelta(days=3), NOW))
        await log.execute(
            "DELETE FROM request_log WHERE created_at >= '2026-11-15T00:00:00Z' AND created_at < '2026-11-15T03:00:00Z'"
        )
        clock.set(NOW + timedelta(hours=2))
        assert await agg.reconcile(0, LAST_HOUR) >= 2
        assert await agg.reconcile(0, LAST_HOUR) == 0
        await check(service, agg, log)
    finally:
        await service.close()
        await log.drop()


async def test_the_audit_view_pages_through_rows_of_one_millisecond(either: LogDB) -> None:
    """Without ids the rows' hash orders the rows of one instant: a page boundary among them loses none."""
    when = at("2026-11-20T11:00:00Z")
    await either.insert([Row(when, **MINI, prompt_tokens=n) for n in (1, 2, 3)])
    service, agg = started(either, FakeClock(NOW))
    try:
        seen: list[int] = []
        c_at, c_id = NOW, 0
        directory = await agg.tokens()
        for _ in range(4):
            rows, _priced = await agg.request_page(
                Range(at("2026-11-20T00:00:00Z"), NOW), c_at, c_id, 1, Filters(), directory
            )
            if not len(rows):
                break
            (row,) = list(rows)
            seen.append(int(row[rows.at("prompt_tokens")]))
            c_at = datetime.fromtimestamp(int(row[rows.at("created_at_us")]) / 1e6, when.tzinfo)
            c_id = int(row[rows.at("id")])
        assert sorted(seen) == [1, 2, 3]
    finally:
        await service.close()
