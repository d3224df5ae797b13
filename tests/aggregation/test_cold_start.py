"""A first start without a snapshot (docs/performance.md#cold-numbers): while the rollups read the log,
an answer over more than COLD_READ_HOURS closed hours waits for them, and past the wait is a 503
(`WarmingUp`) rather than SQL over the raw rows of its window; a shorter one is read in SQL at once.
On ClickHouse, which sums a month in milliseconds, nothing waits until one such answer's SQL passed
query_timeout. The warm-up's reads (and the sweep's) begin behind the answers' queries in flight. The
warm-up and the answers are held at gates, the clock is injected: no test depends on timing.

Every row is gpt-4o-mini ($0.15 per million input tokens).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_api.aggregation import aggregator as aggregator_module
from cost_api.aggregation.aggregator import Aggregator
from cost_api.config import load_settings
from cost_api.errors import WarmingUp
from cost_api.store import base as store_base
from cost_api.store.database import Database, QueryTimeout
from cost_api.web.problems import from_domain
from cost_api.web.service import Service, build_service
from cost_api.windows import Range

from ..clock import FakeClock
from ..logdb import LogDB, Row
from ..reads import Gate, recorded_reads

NOW = datetime(2026, 11, 20, 12, 34, tzinfo=UTC)
MONTH = Range(NOW - timedelta(days=30), NOW)  # 700-odd closed hours: waits
TWO_HOURS = Range(NOW - timedelta(hours=2), NOW)  # one closed hour and the open one: read at once


@pytest.fixture
async def service(log: LogDB, tmp_path: Path) -> AsyncIterator[Service]:
    # 1M input tokens each ($0.15): two days ago, yesterday, and today at 11:10
    await log.insert(
        [
            Row(NOW - timedelta(days=2), prompt_tokens=1_000_000),
            Row(NOW - timedelta(days=1), prompt_tokens=1_000_000),
            Row(datetime(2026, 11, 20, 11, 10, tzinfo=UTC), prompt_tokens=1_000_000),
        ]
    )
    built = build_service(load_settings(environ={}, overrides={"database_url": log.url, "cache_dir": str(tmp_path)}))
    yield built
    await built.close()


class HeldAnswers:
    """Holds every answer's `groups` query in the database (in flight, begun) until `release()`, and
    records each query that reaches the database as (name, whether it is a background read)."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reached = asyncio.Event()
        self._released = asyncio.Event()
        self.queries: list[tuple[str, bool]] = []
        for method in ("_fetch", "_fetch_table"):
            monkeypatch.setattr(db, method, self._held(getattr(db, method)))

    def _held(self, run: Any) -> Any:
        async def held(name: str, *args: Any, **kwargs: Any) -> Any:
            background = store_base.in_background()
            self.queries.append((name, background))
            if name == "groups" and not background:
                self.reached.set()
                await self._released.wait()
            return await run(name, *args, **kwargs)

        return held

    def release(self) -> None:
        self._released.set()

    def background(self) -> list[str]:
        return [name for name, background in self.queries if background]


def cold(service: Service) -> Aggregator:
    return Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))


async def spend(agg: Aggregator, rng: Range) -> float:
    return (await agg.groups(rng)).total().spend


async def test_a_long_answer_during_a_cold_warm_up_is_a_503_and_a_short_one_is_read_at_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 0.0)  # the wait ends at once
    agg = cold(service)
    gate = Gate(agg, monkeypatch)
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()
    assert agg.rollups.warming and not agg.rollups.ready
    if service.db.dialect == "clickhouse":  # the engine sums the month: no wait, no 503
        assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)
    else:
        with pytest.raises(WarmingUp) as refused:
            await spend(agg, MONTH)
        assert "more than 24 hours" in str(refused.value)
    assert await spend(agg, TWO_HOURS) == pytest.approx(0.15, abs=1e-9)  # SQL over its rows, at once
    gate.open()
    await warm
    assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)


def past_timeout(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[Range]:
    """Every `groups` read over more than a day passes query_timeout (recorded, then QueryTimeout)."""
    fetch, long_reads = db.fetch, []

    async def fetch_or_time_out(name: str, **params: Any) -> Any:
        if name == "groups" and params["end"] - params["start"] > timedelta(hours=24):
            long_reads.append(Range(params["start"], params["end"]))
            raise QueryTimeout("query groups ran past the request's 10s (query_timeout) and was cancelled")
        return await fetch(name, **params)

    monkeypatch.setattr(db, "fetch", fetch_or_time_out)
    return long_reads


async def test_the_503_of_a_cold_warm_up_says_how_many_hours_are_read_so_far(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's 48 closed hours are read a day at a time, newest first: held at the second day, the
    warm-up has read 24 (it said 0 until its end, the hours being counted once all were read)."""
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 0.0)  # the wait ends at once
    agg = cold(service)

    def second_day(dim: str | None, h0: int, h1: int) -> bool:
        return dim == "endpoint" and h1 - h0 == 24 and agg.rollups.progress == 24

    gate = Gate(agg, monkeypatch, second_day)
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()
    agg.rollups.engine_too_slow = True  # ClickHouse: as once a long answer's SQL passed query_timeout (below)
    with pytest.raises(WarmingUp, match=re.escape("after its start (24 hours read so far)")):
        await spend(agg, MONTH)
    gate.open()
    await warm
    assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)


async def test_once_a_long_answers_sql_passes_query_timeout_the_next_ones_wait_for_the_warm_up(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On ClickHouse a long answer during a first start is read in SQL over its window. Once one such
    read passes query_timeout (held to it here), that answer is a 503 `warming-up`, not a 504, and the
    next long answers wait for the warm-up and are a 503 past the wait without reading SQL, as on SQLite
    and Postgres: at 100M rows on 2 cores a 30-day window takes 10–20 s against the default 10 s, and a
    polling page kept the engine busy with reads that could only end in 504s (the warm-up took 179 s
    instead of ~40 s). A short answer is still read at once; once warm, every answer comes from memory."""
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 0.0)  # the wait ends at once
    agg = cold(service)
    gate = Gate(agg, monkeypatch)
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()
    fetch = service.db.fetch
    long_reads = past_timeout(service.db, monkeypatch)
    if service.db.dialect == "clickhouse":
        with pytest.raises(WarmingUp) as first:  # its SQL passed query_timeout: a 503, not a 504
            await spend(agg, MONTH)
        assert isinstance(first.value.__cause__, QueryTimeout) and len(long_reads) == 1
        problem = from_domain(first.value)
        assert (problem.status, problem.headers) == (503, {"Retry-After": "5"})
    read_before = len(long_reads)
    with pytest.raises(WarmingUp):
        await spend(agg, MONTH)
    assert len(long_reads) == read_before  # it waited for the warm-up: no SQL over the month
    assert await spend(agg, TWO_HOURS) == pytest.approx(0.15, abs=1e-9)
    monkeypatch.setattr(service.db, "fetch", fetch)
    gate.open()
    await warm
    assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)


async def test_without_a_warm_up_a_long_answer_past_query_timeout_is_a_504(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No warm-up runs (a one-shot command's aggregator, `report`): no memory to wait for, so the
    answer says what the database did, a timeout (504), on every dialect."""
    agg = cold(service)
    long_reads = past_timeout(service.db, monkeypatch)
    with pytest.raises(QueryTimeout):
        await spend(agg, MONTH)
    assert len(long_reads) == 1 and not agg.rollups.engine_too_slow


async def test_a_long_answer_waits_for_a_cold_warm_up_and_answers_from_memory(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 600.0)  # never reached: the gate opens first
    agg = cold(service)
    gate = Gate(agg, monkeypatch)
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()
    reads = recorded_reads(monkeypatch, service.db)
    answer = asyncio.create_task(spend(agg, MONTH))
    for _ in range(100):  # the answer comes to its wait (no read of the log before it)
        await asyncio.sleep(0)
    assert not answer.done()
    gate.open()
    await warm
    assert await answer == pytest.approx(3 * 0.15, abs=1e-9)
    if service.db.dialect != "clickhouse":
        windows = [p for name, p in reads if name == "groups" and p["end"] - p["start"] > timedelta(hours=24)]
        assert windows == []  # the month came from memory: no SQL over its raw rows


async def test_a_long_answer_whose_reads_after_its_wait_pass_query_timeout_is_a_503(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long answer waits for the warm-up; it ends, and the answer's own reads then run past what is
    left of its time (held to it here: every read from the warm-up's end on; at 100M rows on ClickHouse
    the first read of the open rows took 1–2 s after an 8 s wait). A 503 `warming-up` with
    Retry-After: 1, not a 504: asked again, it comes from memory."""
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 600.0)  # never reached: the gate opens first
    agg = cold(service)
    gate = Gate(agg, monkeypatch)
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()
    agg.rollups.engine_too_slow = True  # ClickHouse: as once a long answer's SQL passed query_timeout (above)
    late: list[str] = []
    settle = agg.rollups.settle

    def settled() -> None:
        late.append("settled")
        settle()

    def timing_out(run: Any) -> Any:
        async def fetch(name: str, *args: Any, **kwargs: Any) -> Any:
            if late:
                late.append(name)
                raise QueryTimeout(f"query {name} ran past the request's 10s (query_timeout) and was cancelled")
            return await run(name, *args, **kwargs)

        return fetch

    monkeypatch.setattr(agg.rollups, "settle", settled)
    for method in ("_fetch", "_fetch_table"):
        monkeypatch.setattr(service.db, method, timing_out(getattr(service.db, method)))
    answer = asyncio.create_task(spend(agg, MONTH))
    for _ in range(100):  # the answer comes to its wait
        await asyncio.sleep(0)
    assert not answer.done()
    gate.open()
    await warm
    with pytest.raises(WarmingUp) as retry:
        await answer
    assert isinstance(retry.value.__cause__, QueryTimeout) and len(late) > 1  # it read, and ran out of time
    problem = from_domain(retry.value)
    assert (problem.status, problem.headers) == (503, {"Retry-After": "1"})
    late.clear()
    assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)


async def test_a_failed_warm_up_lets_long_answers_read_the_log_again(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm-up that fails (the database went away meanwhile) ends the wait: the answer reads its
    window in SQL, and says what the database says, not that the service is warming up."""
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 600.0)
    agg = cold(service)

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the log went away")

    monkeypatch.setattr(agg.rollups, "_read", failing)
    with pytest.raises(RuntimeError):
        await agg.warm()
    assert not agg.rollups.warming
    assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)


async def test_the_warm_up_reads_the_log_once_the_answers_queries_have_ended(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer's query in flight holds the warm-up's first read of the log back (on ClickHouse the cold
    dashboard's SQL and the warm-up's 60 days share the engine's cores); when it ends, the warm-up goes
    on. The warm-up's reads and the sweep's are background reads, the answer's are not."""
    monkeypatch.setattr(store_base, "YIELD_SECONDS", 600.0)  # never reached: the answer ends first
    agg = cold(service)
    gate = Gate(agg, monkeypatch)
    answers = HeldAnswers(service.db, monkeypatch)
    answer = asyncio.create_task(spend(agg, TWO_HOURS))
    await answers.reached.wait()
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()
    gate.open()
    for _ in range(100):  # the warm-up's read comes to the database: it waits there
        await asyncio.sleep(0)
    assert answers.background() == []
    answers.release()
    assert await answer == pytest.approx(0.15, abs=1e-9)
    await warm
    assert "groups" in answers.background()
    assert ("groups", False) in answers.queries  # the answer's
    answers.queries.clear()
    await agg.sweep(0.0)
    assert "hour_fingerprints" in answers.background()
    assert all(background for _, background in answers.queries)


async def test_answers_without_end_slow_the_warm_up_and_never_stop_it(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_base, "YIELD_SECONDS", 0.0)  # each read waits this long for the answers at most
    agg = cold(service)
    answers = HeldAnswers(service.db, monkeypatch)
    answer = asyncio.create_task(spend(agg, TWO_HOURS))
    await answers.reached.wait()
    async with asyncio.timeout(60):  # (a warm-up that waited for the answer would never end)
        await agg.warm()  # while the answer's query is still in flight
    assert agg.rollups.ready and not answer.done()
    answers.release()
    assert await answer == pytest.approx(0.15, abs=1e-9)
    assert await spend(agg, MONTH) == pytest.approx(3 * 0.15, abs=1e-9)


def test_warming_up_is_a_503_problem_with_retry_after() -> None:
    problem = from_domain(WarmingUp("reading the log", retry_after=5))
    assert (problem.status, problem.headers) == (503, {"Retry-After": "5"})
    body = problem.body()
    assert (body["type"], body["title"], body["detail"]) == ("/problems/warming-up", "Warming up", "reading the log")
