"""The rollups' memory cap (aggregation/memory.py): past it the token rollup is not held and answers by
token are asked of the database, with the same figures to the cent, on SQLite and on chDB."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cost_api.aggregation import aggregator, priced, views
from cost_api.aggregation.aggregator import Aggregator, Filters
from cost_api.aggregation.memory import ARENAS, MemoryCap, nbytes
from cost_api.config import load_settings
from cost_api.errors import WarmingUp
from cost_api.lenses.spend import spend_answer
from cost_api.lenses.summary import summary_answer
from cost_api.web.service import Service, build_service
from cost_api.windows import Range, parse_window

from ..clock import FakeClock
from ..logdb import ChdbLog, LogDB, Row, SqliteLog, at

NOW = at("2026-11-20T12:34:56Z")
MINI = {"provider": "openai", "model": "gpt-4o-mini"}  # $0.15 per 1M input tokens, $0.60 per 1M output
ROWS = [
    Row(at("2026-11-18T09:00:00Z"), **MINI, token_id="tok_alpha_00000000001", prompt_tokens=1_000_000),  # $0.15
    Row(at("2026-11-19T10:00:00Z"), **MINI, token_id="tok_beta_000000000002", completion_tokens=1_000_000),  # $0.60
    Row(at("2026-11-20T08:00:00Z"), **MINI, token_id="tok_alpha_00000000001", completion_tokens=500_000),  # $0.30
    Row(at("2026-11-20T12:10:00Z"), **MINI, token_id=None, prompt_tokens=2_000_000),  # $0.30, the open hour
]
BY_TOKEN = {"tok_alpha_0…": 0.45, "tok_beta_00…": 0.60, "anonymous": 0.30}
NOW_HOUR = int(NOW.timestamp()) // 3600


@pytest.fixture(params=["sqlite", "chdb"])
async def either(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    log: LogDB = (
        SqliteLog(tmp_path / "log.db") if request.param == "sqlite" else ChdbLog(request.getfixturevalue("chdb_dir"))
    )
    await log.insert(ROWS)
    yield log
    await log.drop()


def started(log: LogDB, clock: FakeClock, **settings: Any) -> Service:
    return build_service(load_settings(environ={}, overrides={"database_url": log.url, **settings}), clock)


async def by_token(agg: Aggregator, **filters: Any) -> dict[str, float]:
    window = parse_window(window="7d", from_=None, to=None, tz=None, default="7d", now=agg.now())
    answer = msgspec.to_builtins(
        await spend_answer(agg, window, group_by="token", limit=10, filters=Filters(**filters))
    )
    return {item["token"]: item["spend"] for item in answer["items"]}


async def test_a_tiny_cap_asks_the_database_for_the_token_lens_with_the_same_figures(either: LogDB) -> None:
    service = started(either, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off")  # 1 KiB
    agg = service.aggregator
    try:
        await agg.warm()
        assert agg.rollups.ready and set(agg.rollups.parts) == {None, "endpoint"}  # the small ones held
        assert agg.rollups.pick("token", False, False) == (False, "token")  # token answers: SQL
        assert agg.rollups.pick(None, False, True) == (False, "token")  # a token filter too
        assert await by_token(agg) == BY_TOKEN
        assert await by_token(agg, tokens=("tok_alpha_0…",)) == {"tok_alpha_0…": 0.45}
        window = parse_window(window="7d", from_=None, to=None, tz=None, default="7d", now=NOW)
        head = msgspec.to_builtins(
            await summary_answer(agg, window, top_window=timedelta(days=7), top=5, filters=Filters())
        )
        assert head["spend"] == 1.35
        # the uncapped service holds the token rollup and answers the same
        uncapped = started(either, FakeClock(NOW), cache_dir="off")
        try:
            await uncapped.aggregator.warm()
            assert "token" in uncapped.aggregator.rollups.parts
            assert await by_token(uncapped.aggregator) == BY_TOKEN
        finally:
            await uncapped.close()
    finally:
        await service.close()


@pytest.mark.parametrize(("megabytes", "groups"), [(1, 65_536), (64, 131_072), (1024, 2_097_152)])
async def test_a_read_by_token_holds_at_most_about_the_caps_bytes_of_groups(
    either: LogDB, megabytes: int, groups: int
) -> None:
    """`max_groups`, the groups a read by token or cache key holds at once, is the cap over 512 bytes
    (a group's peak: the engine's hash table, the answer, its columns; measured at 100M rows), and
    65,536 at the least."""
    service = started(either, FakeClock(NOW), rollup_memory_mb=megabytes, cache_dir="off")
    try:
        assert service.aggregator.max_groups == groups
    finally:
        await service.close()


async def test_at_most_two_reads_by_token_run_at_once_however_many_answers_ask(either: LogDB) -> None:
    """Each read by token or cache key holds up to `max_groups` groups, and at most SPLIT_READS (2) of
    them run at once: of four reads asked together, the database has two (held there by a gate) and the
    others wait for them; once let go, each has the hand-computed figures ($0.45 + $0.60 + $0.30 for
    the week, as BY_TOKEN)."""
    service = started(either, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off")
    agg = service.aggregator  # not warm: every read by token is SQL over its window
    asked, running, gate = [0], [0], asyncio.Event()
    fetch, split = agg.db.fetch, agg._read_split

    async def counted_split(dim: str | None, *args: Any, **kwargs: Any) -> Any:
        asked[0] += dim == "token"
        return await split(dim, *args, **kwargs)

    async def held(name: str, **params: Any) -> Any:
        if name != "groups" or params["dim"] != "token":
            return await fetch(name, **params)
        running[0] += 1
        try:
            await gate.wait()
            return await fetch(name, **params)
        finally:
            running[0] -= 1

    agg._read_split = counted_split  # type: ignore[method-assign]
    agg.db.fetch = held  # type: ignore[method-assign]
    week = Range(NOW - timedelta(days=7), NOW)
    try:
        reads = asyncio.gather(*(agg.groups(week, dim="token", whole=True) for _ in range(4)))
        async with asyncio.timeout(60):  # a guard: each step waits for the reads, not for a time
            while asked[0] < 4 or running[0] < 2:
                await asyncio.sleep(0.01)
            for _ in range(20):  # every read has asked: two in the database, the others waiting
                await asyncio.sleep(0)
            assert running[0] == 2
            gate.set()
            answers = await reads
        assert [round(float(groups.spend.sum()), 6) for groups in answers] == [1.35] * 4
    finally:
        await service.close()


async def test_the_token_rollup_is_dropped_when_closing_hours_pass_the_cap(either: LogDB) -> None:
    clock = FakeClock(NOW)
    service = started(either, clock, cache_dir="off")
    agg = service.aggregator
    try:
        await agg.warm()
        rollups = agg.rollups
        assert "token" in rollups.parts
        held = nbytes([*rollups.parts.values(), *rollups.days.values()])
        rollups.cap = MemoryCap(held + 64)  # what is held fits; the next hour's cells do not
        await either.insert([Row(at("2026-11-20T12:40:00Z"), **MINI, token_id="tok_gamma_", prompt_tokens=1_000_000)])
        clock.set(at("2026-11-20T13:20:00Z"))  # 12:00 closes: its cells join the rollups
        await agg.sync()
        assert set(rollups.parts) == {None, "endpoint"} and rollups.dropped == {"token"}
        assert await by_token(agg) == {**BY_TOKEN, "tok_g…": 0.15}  # an id of 10 characters shows its first half
        await agg.warm()  # read again (another database behind the URL, retention): still not held
        assert "token" not in agg.rollups.parts
    finally:
        await service.close()


@pytest.mark.parametrize("cap_after", [0.001, 1024.0])
async def test_a_snapshot_saved_past_the_cap_restores_the_token_rollup_only_if_it_fits(
    tmp_path: Path, cap_after: float
) -> None:
    """Saved without the token rollup (past a tiny cap), restored under the same cap: not held; under
    a cap it fits (the setting raised since): its hours read from the log, the others restored."""
    log = SqliteLog(tmp_path / "log.db")
    await log.insert(ROWS)
    capped = started(log, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir=str(tmp_path / "cache"))
    try:
        await capped.aggregator.warm()
        agg = capped.aggregator
        await agg.rollups.save_if_due(agg._lock, agg.rows.bound)
    finally:
        await capped.close()
    restarted = started(log, FakeClock(NOW), rollup_memory_mb=cap_after, cache_dir=str(tmp_path / "cache"))
    try:
        await restarted.aggregator.warm()
        assert restarted.aggregator.rollups.hours_restored > 0
        assert ("token" in restarted.aggregator.rollups.parts) == (cap_after > 1)
        assert await by_token(restarted.aggregator) == BY_TOKEN
    finally:
        await restarted.close()


async def test_a_large_read_is_priced_off_the_event_loop_with_the_same_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap, the token lens is a read of many groups: priced and summed per token in a worker
    thread (the event loop answers other requests meanwhile), to the same figures."""
    monkeypatch.setattr(priced, "OFF_LOOP_ROWS", 0)  # every read counts as large
    threads: list[str] = []  # the thread of each read of some rows, and of each sum per token
    from_rows, per_key = priced.from_rows, aggregator.per_key

    def recorded(*args: Any) -> Any:
        if len(args[2]):
            threads.append(threading.current_thread().name)
        return from_rows(*args)

    def summed(groups: Any) -> Any:
        if len(groups):
            threads.append(f"per key in {threading.current_thread().name}")
        return per_key(groups)

    monkeypatch.setattr(priced, "from_rows", recorded)
    monkeypatch.setattr(aggregator, "per_key", summed)
    log = SqliteLog(tmp_path / "log.db")
    await log.insert(ROWS)
    service = started(log, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off")
    try:
        await service.aggregator.warm()
        threads.clear()
        assert await by_token(service.aggregator) == BY_TOKEN
        assert threads and threading.main_thread().name not in threads
        assert any(t.startswith("per key in ") for t in threads)
        assert f"per key in {threading.main_thread().name}" not in threads
    finally:
        await service.close()


def counted_reads(agg: Aggregator) -> list[tuple[timedelta, int]]:
    """From now on, each `groups` read of the log: its span and its groups, in order."""
    reads: list[tuple[timedelta, int]] = []
    fetch = agg.db.fetch

    async def counted(name: str, **params: Any) -> Any:
        rows = await fetch(name, **params)
        if name == "groups":
            reads.append((params["end"] - params["start"], len(rows)))
        return rows

    agg.db.fetch = counted  # type: ignore[method-assign]
    return reads


async def test_a_read_for_totals_is_one_group_per_key_and_price_span(either: LogDB, tmp_path: Path) -> None:
    """Read in SQL (before the warm-up; past the cap), the token lens asks one slot per span in which no
    rate changes: a token's rows of several days and hours are one group per span, priced at that
    span's rates (in hour or day slots, by token, about a group per request: 12 GiB at 100M rows)."""
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(  # gpt-4o-mini at $1 / $4 per 1M from 2026-11-19 (else $0.15 / $0.60)
        'version: "t1"\nmodels:\n  - {provider: openai, model: gpt-4o-mini, prices: '
        "[{input: 0.15, output: 0.60}, {since: 2026-11-19, input: 1, output: 4}]}\n"
    )
    await either.insert(
        [
            Row(at("2026-11-18T15:00:00Z"), **MINI, token_id="tok_alpha_00000000001", prompt_tokens=2_000_000),
            Row(at("2026-11-19T11:00:00Z"), **MINI, token_id="tok_alpha_00000000001", completion_tokens=250_000),
        ]
    )
    service = started(either, FakeClock(NOW), cache_dir="off", pricing_overrides=str(overrides))
    agg = service.aggregator  # not warm: every answer is SQL over its window
    try:
        reads = counted_reads(agg)
        # alpha: 3M input before the 19th at $0.15 = $0.45, 0.75M output from the 19th at $4 = $3.00;
        # beta: 1M output on the 19th = $4.00; anonymous: 2M input on the 20th at $1 = $2.00
        assert await by_token(agg) == {"tok_alpha_0…": 3.45, "tok_beta_00…": 4.00, "anonymous": 2.00}
        # the week before: no rows; this week, before the 19th: alpha's rows of two hours one group;
        # from the 19th: alpha's rows of two days one group, beta, anonymous (day slots: 5 groups)
        assert sorted(n for _, n in reads) == [0, 1, 3]
    finally:
        await service.close()


async def test_past_the_cap_reads_for_totals_keep_their_closed_days_and_hours(
    either: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap, a read by token for totals keeps what it read of closed hours, per UTC day and per
    hour at its edges, summed per token: the next answer reads nothing in SQL (the part of an hour at
    the window's start and the open hours come from single rows, as the rollups' do); a late row into
    a closed hour, once taken in, has its day read again, and only it. The heap the background read
    freed is given back after each piece it read."""
    released: list[str] = []
    monkeypatch.setattr(views, "release", lambda: released.append(threading.current_thread().name))
    service = started(either, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off")
    agg = service.aggregator
    try:
        await agg.warm()
        agg.rollups.cap = MemoryCap(1 << 20)  # the token rollup dropped; room for the pieces (1 MiB)
        reads = counted_reads(agg)
        assert await by_token(agg) == BY_TOKEN  # once its pieces are read (in the background; it waits)
        assert threading.main_thread().name not in released  # in a worker thread
        # 7 days from 12:34:56 back: 11 hours to the 14th, the 14th to the 19th, 12 hours of the 20th
        # (the 12:00 hour is open), and the week before likewise
        assert sorted(span for span, _ in reads).count(timedelta(days=1)) == 2 * 6
        assert len(released) >= 2 * 6  # once a piece at least
        assert max(span for span, _ in reads) == timedelta(days=1)
        reads.clear()
        assert await by_token(agg) == BY_TOKEN
        assert reads == []  # the edges from single rows: the 11:00 hour's kept rows, the open ones
        reads.clear()
        await either.insert(
            [Row(at("2026-11-19T10:30:00Z"), **MINI, token_id="tok_beta_000000000002", prompt_tokens=1_000_000)]
        )  # $0.15, late into a closed hour
        await agg.catch_up()  # by id (SQLite): the incremental read; without ids (chDB): the sweep's
        await agg.reconcile(0, NOW_HOUR)
        reads.clear()
        assert await by_token(agg) == {**BY_TOKEN, "tok_beta_00…": 0.75}
        assert [span for span, _ in reads if span >= timedelta(hours=1)] == [timedelta(days=1)]  # the 19th
        reads.clear()  # under a token filter (a budget's own read): each week whole, nothing kept
        assert await by_token(agg, tokens=("tok_alpha_0…",)) == {"tok_alpha_0…": 0.45}
        assert sorted(span for span, _ in reads) == [timedelta(days=7)] * 2
    finally:
        await service.close()


async def test_a_restart_takes_the_pieces_of_reads_by_token_from_the_snapshot(either: LogDB, tmp_path: Path) -> None:
    """Past the cap, the rollups' snapshot also holds the pieces the unfiltered read by token for totals
    kept: after a restart that answer reads no closed hour of the log (at 100M rows each day took ~0.85 s,
    and the first dashboard set after a restart came 18 s after the rollups were restored). A day whose
    rows changed after the save is read again, and only it; a day retention deleted from the log's start
    is not restored (its piece would still count the deleted rows)."""
    cache = tmp_path / "cache"

    async def restarted() -> Service:
        # 100 bytes: the token rollup dropped, however few rows the log keeps
        service = started(either, FakeClock(NOW), rollup_memory_mb=0.0001, cache_dir=str(cache))
        await service.aggregator.warm()
        service.aggregator.rollups.cap = MemoryCap(1 << 20)  # room for the pieces
        return service

    first = await restarted()
    rollups, bound = first.aggregator.rollups, first.aggregator.rows.bound
    try:
        await rollups.save_if_due(asyncio.Lock(), bound)  # as after a first start's warm-up: no pieces yet
        assert rollups.snapshot_due() is False  # (/readyz's `snapshot_due`)
        assert await by_token(first.aggregator) == BY_TOKEN  # its pieces read from the log, and kept
        pieces = rollups.held().pieces
        assert sorted(b - a for a, b in pieces) == [1] * 2 * 23 + [24] * 2 * 6  # 2 weeks of 6 days, 11 + 12 hours
        assert rollups.snapshot_due() is True  # pieces of more than SAVE_EVERY_HOURS hours since
        saving = asyncio.create_task(rollups.save_if_due(asyncio.Lock(), bound))
        await asyncio.sleep(0)  # the save begins: it reads the log's figures of the hours
        assert rollups.snapshot_due() is True  # until its file is written
        await saving
        assert rollups.snapshot_due() is False
    finally:
        await first.close()
    again = await restarted()
    try:
        reads = counted_reads(again.aggregator)
        assert await by_token(again.aggregator) == BY_TOKEN
        assert reads == []
    finally:
        await again.close()
    await either.insert(
        [Row(at("2026-11-19T10:30:00Z"), **MINI, token_id="tok_beta_000000000002", prompt_tokens=1_000_000)]
    )  # $0.15, late into a closed hour after the save
    late = await restarted()
    try:
        assert late.aggregator.rollups.hours_read == 1  # the 10:00 hour of the 19th
        reads = counted_reads(late.aggregator)
        assert await by_token(late.aggregator) == {**BY_TOKEN, "tok_beta_00…": 0.75}
        assert [span for span, _ in reads] == [timedelta(days=1)]  # the 19th
    finally:
        await late.close()
    # retention: alpha's row of the 18th ($0.15), the log's first, deleted; the log now starts on the 19th
    await either.execute("DELETE FROM request_log WHERE prompt_tokens = 1000000 AND token_id = 'tok_alpha_00000000001'")
    retained = await restarted()
    try:
        # alpha: the 20th's $0.30 alone; beta: $0.60 + the late $0.15
        assert await by_token(retained.aggregator) == {**BY_TOKEN, "tok_alpha_0…": 0.30, "tok_beta_00…": 0.75}
    finally:
        await retained.close()


async def test_past_the_cap_an_hour_read_again_makes_stale_only_the_pieces_over_it(either: LogDB) -> None:
    """Past the cap, an hour the sweep reads again (an update in place) makes stale only the kept piece
    over it: the next answer by token reads that day again, not its two weeks (every hour read again
    used to drop all that answers kept, with the token rollup already dropped)."""
    service = started(either, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off")
    agg = service.aggregator
    try:
        await agg.warm()
        agg.rollups.cap = MemoryCap(1 << 20)  # the token rollup dropped; room for the pieces (1 MiB)
        assert await by_token(agg) == BY_TOKEN
        # alpha's row of the 18th, 1M input tokens ($0.15), now 3M ($0.45)
        await either.execute("UPDATE request_log SET prompt_tokens = 3000000 WHERE prompt_tokens = 1000000")
        assert await agg.reconcile(0, NOW_HOUR) == 1
        reads = counted_reads(agg)
        assert await by_token(agg) == {**BY_TOKEN, "tok_alpha_0…": 0.75}
        assert [span for span, _ in reads] == [timedelta(days=1)]  # the 18th
    finally:
        await service.close()


async def test_past_the_cap_the_edges_of_a_read_for_totals_come_from_single_rows(either: LogDB) -> None:
    """Past the cap, the part of an hour at a window's start and the open hours of a read by token for
    totals are summed from single rows, as the rollups' edges are: exact to the second as the window
    slides, with no SQL read per answer (at 100M rows such a read was ~54,000 groups, 160-300 ms)."""
    gamma = {**MINI, "token_id": "tok_gamma_00000000003"}
    await either.insert(
        [
            Row(at("2026-11-13T12:20:00Z"), **gamma, prompt_tokens=1_000_000),  # before the window: out
            Row(at("2026-11-13T12:40:00Z"), **gamma, prompt_tokens=2_000_000),  # $0.30, in until 12:40
            Row(at("2026-11-20T12:10:00Z"), **gamma, completion_tokens=1_000_000),  # $0.60, the open hour
        ]
    )
    clock = FakeClock(NOW)  # the 7-day window starts at 2026-11-13T12:34:56
    service = started(either, clock, rollup_memory_mb=0.001, cache_dir="off")
    agg = service.aggregator
    try:
        await agg.warm()
        agg.rollups.cap = MemoryCap(1 << 20)  # the token rollup dropped; room for the pieces (1 MiB)
        assert await by_token(agg) == {**BY_TOKEN, "tok_gamma_0…": 0.90}  # $0.30 + $0.60
        reads = counted_reads(agg)
        assert await by_token(agg) == {**BY_TOKEN, "tok_gamma_0…": 0.90}
        clock.set(NOW + timedelta(minutes=10))  # the window now starts at 12:44:56: the 12:40 row leaves it
        assert await by_token(agg) == {**BY_TOKEN, "tok_gamma_0…": 0.60}
        assert reads == []
        # under a provider filter the edges' single rows pass the filter as the pieces' SQL does
        assert await by_token(agg, providers=("openai",)) == {**BY_TOKEN, "tok_gamma_0…": 0.60}
        assert await by_token(agg, providers=("anthropic",)) == {}
    finally:
        await service.close()


@pytest.mark.parametrize(
    ("hours_ago", "reads"), [(1, [timedelta(hours=1)]), (3, [timedelta(hours=1), timedelta(days=1)])]
)
async def test_a_warm_up_stops_reading_the_token_rollup_once_its_first_hours_say_it_cannot_fit(
    either: LogDB, hours_ago: int, reads: list[timedelta]
) -> None:
    """Ten days of four tokens each (and ROWS), `hours_ago` hours before NOW's hour each day. The token
    rollup's newest closed hour is read first, alone: 1 hour ago, its 4 cells project to ~217 over the
    9 days and 1 hour to read (a quarter: less than a day read), past a cap of 12 cells: dropped after
    that hour, where a day read first took ~0.7 GB at 100M rows. 3 hours ago, that hour is empty (it
    projects nothing) and the next read, a day, projects ~22 cells (halved): dropped then, where
    reading on until the cap is passed takes three days. The token lens answers the same from the
    database."""
    days = [
        Row(NOW - timedelta(days=d, hours=hours_ago), **MINI, token_id=f"tok_{d}_{k}", prompt_tokens=1000)
        for d in range(10)
        for k in range(4)
    ]
    await either.insert(days)
    uncapped = started(either, FakeClock(NOW), cache_dir="off")
    try:
        await uncapped.aggregator.warm()
        cells = uncapped.aggregator.rollups.parts["token"]
        assert len(cells) == 43  # 40 and ROWS' 3 closed ones
        cell_bytes = nbytes([cells]) / len(cells)
        expected = await by_token(uncapped.aggregator)
    finally:
        await uncapped.close()
    service = started(either, FakeClock(NOW), cache_dir="off", rollup_memory_mb=12 * cell_bytes / (1 << 20))
    agg = service.aggregator
    token_reads: list[timedelta] = []
    fetch = agg.db.fetch

    async def counted(name: str, **params: Any) -> Any:
        if name == "groups" and params["dim"] == "token" and params["end"] > params["start"]:
            token_reads.append(params["end"] - params["start"])
        return await fetch(name, **params)

    agg.db.fetch = counted  # type: ignore[method-assign]
    try:
        await agg.warm()
        assert agg.rollups.dropped == {"token"}
        assert token_reads == reads
        assert await by_token(agg) == expected
    finally:
        await service.close()


async def test_an_answer_waits_for_its_pieces_then_answers_503_and_once_they_are_read_from_memory(
    either: LogDB,
) -> None:
    """While the pieces of a read by token are read (held at a gate here), its answer waits at most
    0.8 × query_timeout, then is WarmingUp (503, Retry-After); once they are read, it answers."""
    service = started(either, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off", query_timeout="1s")
    agg = service.aggregator
    gate = asyncio.Event()
    fetch = agg.db.fetch

    async def gated(name: str, **params: Any) -> Any:
        if name == "groups" and params["end"] - params["start"] == timedelta(days=1):
            await gate.wait()
        return await fetch(name, **params)

    try:
        await agg.warm()
        agg.rollups.cap = MemoryCap(1 << 20)
        agg.db.fetch = gated  # type: ignore[method-assign]
        with pytest.raises(WarmingUp) as caught:
            await by_token(agg)
        assert caught.value.retry_after == 5
        gate.set()
        await asyncio.gather(*agg.rollups.views.filling.values())
        assert await by_token(agg) == BY_TOKEN
    finally:
        await service.close()


async def test_pieces_past_the_budget_are_not_kept_and_answers_read_their_window_whole(either: LogDB) -> None:
    """With no room beside the rollups (the 1 KiB cap), no piece is kept: the answer reads each week
    whole, to the same figures."""
    service = started(either, FakeClock(NOW), rollup_memory_mb=0.001, cache_dir="off")
    agg = service.aggregator
    try:
        await agg.warm()
        reads = counted_reads(agg)
        assert await by_token(agg) == BY_TOKEN
        assert agg.rollups.views.unkept
        assert sorted(span for span, _ in reads).count(timedelta(days=7)) == 2
    finally:
        await service.close()


# A process with eight threads alive at once, each of which allocates (from the heap: under glibc's mmap
# threshold), then glibc's statistics: one "Arena N:" per malloc arena. With `limit`, after `limit_arenas`.
ARENAS_USED = """
import ctypes, ctypes.util, sys, threading
from cost_api.aggregation import memory
if sys.argv[1] == "limit":
    memory.limit_arenas()
held, together = [], threading.Barrier(9)
def allocate():
    held.append(bytearray(4096))
    together.wait()  # alive until every thread has allocated: none hands its arena to the next
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
together.wait()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
for thread in threads:
    thread.join()
"""


def _arenas(how: str, environ: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_USED, how], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    return len(re.findall(r"^Arena \d+:", done.stderr, re.MULTILINE))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas")
def test_a_serving_process_holds_at_most_arenas_malloc_arenas() -> None:
    """glibc gives each new thread an arena of its own (up to 8 per core), each keeping what was freed in
    it; `limit_arenas` (as `cost-api serve` begins) keeps them to ARENAS, unless the environment chose."""
    environ = {name: value for name, value in os.environ.items() if name not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    assert _arenas("default", environ) > ARENAS  # the threads had arenas of their own
    assert _arenas("limit", environ) == ARENAS
    assert _arenas("limit", {**environ, "MALLOC_ARENA_MAX": "3"}) == 3  # the operator's number
