"""The ClickHouse stores on their own, in-process (chdb://) and over HTTP (clickhouse://, through
tests/chserver.py): their URLs, their parameters, and a query stopped at its deadline or when its
request gives up — killed in the engine (by its tag, or by its query id over HTTP), not left running."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cost_api.resources import sql_dir
from cost_api.store.clickhouse import ENGINE_ALLOCATOR, ch_value
from cost_api.store.database import Database, open_database
from cost_api.store.errors import QueryTimeout, TooManyGroups
from cost_api.store.leadership import Leadership
from cost_api.store.queries import Query, Registry
from cost_api.store.url import DatabaseURLError, parse_database_url
from cost_api.watch.alerts import ALERT_LOCK

from ..logdb import ChdbLog

# Endless work for the engine, of no size it can estimate: stopped only by its time limit or a KILL. With
# a parameter, as every query of the service: the engine lists such a query with its parameters bound
# and its comments gone.
SLOW = "SELECT count() AS n FROM system.numbers WHERE sipHash64(number) = {one:UInt64}"
# Hours of work, of a size the engine knows (a trillion rows): estimated past any deadline here.
HUGE = "SELECT count() AS n FROM numbers(1000000000000) WHERE sipHash64(number) = {one:UInt64}"


def test_chdb_urls_name_a_directory_and_a_database() -> None:
    url = parse_database_url("chdb:////var/lib/log?database=gateway")
    assert (url.dialect, url.path, url.database) == ("clickhouse", Path("/var/lib/log"), "gateway")
    assert str(url) == "chdb:////var/lib/log?database=gateway"
    relative = parse_database_url("chdb:///data/log")
    assert (relative.path, relative.database, str(relative)) == (Path("data/log"), "default", "chdb:///data/log")
    for bad in ("chdb:///", "chdb:///x?database=a;b", "chdb:///x?user=me"):
        with pytest.raises(DatabaseURLError, match="chdb:///path/to/dir"):
            parse_database_url(bad)


def _load_chdb(allocator: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that opens chDB through `chdb_connect`, whose options for the engine's
    allocator are `allocator`."""
    script = (
        "import sys\n"
        "from cost_api.store import clickhouse\n"
        "clickhouse.ENGINE_ALLOCATOR = sys.argv[1]\n"
        "clickhouse.chdb_connect(':memory:').query('SELECT 1', 'CSV')\n"
    )
    command = [sys.executable, "-c", script, allocator]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120, check=False)


def test_chdb_loads_with_the_allocator_options_of_engine_allocator() -> None:
    """chDB's jemalloc reads JE_MALLOC_CONF once, as the library loads: `chdb_connect` sets it to
    ENGINE_ALLOCATOR before, unless the environment has its own. With `abort_conf:true` an option the
    allocator rejects aborts the process: ours is accepted, a wrong one aborts (so it did reach the
    allocator), and an operator's own is what the allocator reads."""
    environ = {name: value for name, value in os.environ.items() if name != "JE_MALLOC_CONF"}
    ours = _load_chdb(f"abort_conf:true,{ENGINE_ALLOCATOR}", environ)
    assert ours.returncode == 0, ours.stderr
    assert _load_chdb("abort_conf:true,dirty_decay_ms:oops", environ).returncode == -signal.SIGABRT
    operators = {**environ, "JE_MALLOC_CONF": "abort_conf:true,dirty_decay_ms:2000"}
    assert _load_chdb("abort_conf:true,dirty_decay_ms:oops", operators).returncode == 0
    assert _load_chdb("", {**environ, "JE_MALLOC_CONF": "abort_conf:true,dirty_decay_ms:oops"}).returncode == (
        -signal.SIGABRT
    )


def test_parameters_go_in_clickhouse_text_form() -> None:
    assert ch_value(None) == "\\N"
    assert parse_database_url("clickhouses://u:p%40ss@ch.internal:8443/logs").dsn is not None
    assert str(parse_database_url("clickhouse://u:pass@h:8123/db")) == "clickhouse://u:***@h:8123/db"
    assert ch_value(datetime(2026, 11, 19, 10, 0, 0, 123456, tzinfo=UTC)) == "1795082400.123456"
    assert ch_value(["a", "it's"]) == '["a", "it\'s"]'
    assert (ch_value(True), ch_value(7), ch_value("x")) == (1, 7, "x")


def _store(log: ChdbLog, timeout: float) -> Database:
    long = {"slow": SLOW, "huge": HUGE}
    queries = {name: Query(name, "Runs for hours.", sql, sql, ("one",), "test", ("n",)) for name, sql in long.items()}
    return open_database(parse_database_url(log.url), Registry(queries, "clickhouse"), timeout=timeout, pool_size=2)


def _running(log: ChdbLog) -> list[str]:
    found = log.conn.query("SELECT query FROM system.processes WHERE query LIKE '%sipHash64(number) = %'", "JSON")
    return [row["query"] for row in json.loads(bytes(found.bytes()))["data"] if "system.processes" not in row["query"]]


@pytest.fixture(params=["chdb", "http"])
async def chdb_log(request: pytest.FixtureRequest, chdb_dir: Path) -> AsyncIterator[ChdbLog]:
    log = ChdbLog(chdb_dir, request.getfixturevalue("chdb_http") if request.param == "http" else None)
    yield log
    await log.drop()


# Every kind of column the `groups` and row queries answer: booleans, 64-bit counts, NULLs, text,
# LowCardinality text (Arrow's dictionaries), small integers.
KINDS = """SELECT toBool(n % 2) AS hit, if(n = 1, NULL, toInt64(n) * 4000000000) AS big,
       if(n = 2, NULL, concat('tok_', toString(n % 2))) AS text, toLowCardinality(concat('m', toString(n))) AS low,
       toUInt8(n) AS small
FROM (SELECT number AS n FROM numbers(4)) WHERE n < {upto:Int64}"""


async def test_an_answer_as_columns_is_the_answer_as_rows(chdb_log: ChdbLog) -> None:
    """`fetch(..., table=True)` (Arrow) gives each column the values `fetch` (JSON) gives its rows: NULL
    as 0 in numbers, as None in text; an empty answer has every column, empty."""
    query = Query(
        "kinds", "Every kind of column.", KINDS, KINDS, ("upto",), "test", ("hit", "big", "text", "low", "small")
    )
    db = open_database(
        parse_database_url(chdb_log.url), Registry({"kinds": query}, "clickhouse"), timeout=30, pool_size=1
    )
    try:
        rows = await db.fetch("kinds", upto=4)
        table = await db.fetch("kinds", table=True, upto=4)
        assert len(table) == len(rows) == 4
        columns = table.columns()
        assert columns["hit"].tolist() == [False, True, False, True]
        assert columns["big"].tolist() == [0, 0, 8_000_000_000, 12_000_000_000]  # NULL as 0
        text, low = columns["text"], columns["low"]  # codes into each column's distinct values
        assert [text.values[c] for c in text.codes] == ["tok_0", "tok_1", None, "tok_1"] == rows.column("text")
        assert [low.values[c] for c in low.codes] == ["m0", "m1", "m2", "m3"]
        assert columns["small"].tolist() == [0, 1, 2, 3]
        empty = await db.fetch("kinds", table=True, upto=0)
        nothing = empty.columns()
        assert (len(empty), list(nothing), len(nothing["big"])) == (0, [*query.columns], 0)
    finally:
        await db.close()


KIND = Query("kinds", "Every kind.", KINDS, KINDS, ("upto",), "test", ("hit", "big", "text", "low", "small"))


async def test_after_a_query_fails_the_next_answer_on_its_connection_is_its_own(chdb_log: ChdbLog) -> None:
    """chDB 4.4 handed the next query on a connection the output a failed query had begun, ahead of its
    own: a JSON answer that did not parse, an Arrow answer read as the failed query's rows. A connection
    whose query failed (here: past its deadline) is closed: on the one connection of the pool, every
    answer after a failure is its own, as rows and as columns."""
    queries = {"kinds": KIND, "slow": Query("slow", "Runs until stopped.", SLOW, SLOW, ("one",), "test", ("n",))}
    db = open_database(parse_database_url(chdb_log.url), Registry(queries, "clickhouse"), timeout=0.3, pool_size=1)
    try:
        for table in (False, True, False, True):
            with pytest.raises(QueryTimeout):
                await db.fetch("slow", one=1, table=table)
            if table:
                assert (await db.fetch("kinds", table=True, upto=4)).columns()["small"].tolist() == [0, 1, 2, 3]
            else:
                assert (await db.fetch("kinds", upto=4)).column("small") == [0, 1, 2, 3]
    finally:
        await db.close()


# A GROUP BY of 1,000 groups, limited as the `groups` query is: its LIMIT, and the engine stopped past it.
MANY = "SELECT number % 1000 AS k, count() AS n FROM numbers(100000) GROUP BY k LIMIT {max_groups:UInt64} + 1"


async def test_a_query_past_max_groups_stops(chdb_log: ChdbLog) -> None:
    """A query's `max_groups` is the groups the engine may hold: past it the query stops (TooManyGroups),
    and the next answer is the next query's."""
    queries = {"kinds": KIND, "many": Query("many", "1,000 groups.", MANY, MANY, ("max_groups",), "test", ("k", "n"))}
    db = open_database(parse_database_url(chdb_log.url), Registry(queries, "clickhouse"), timeout=30, pool_size=1)
    try:
        assert len(await db.fetch("many", max_groups=1000)) == 1000
        for table in (False, True):
            with pytest.raises(TooManyGroups):
                await db.fetch("many", table=table, max_groups=10)
            assert (await db.fetch("kinds", upto=4)).column("small") == [0, 1, 2, 3]
    finally:
        await db.close()


async def test_a_query_past_its_deadline_is_a_timeout_and_stops(chdb_log: ChdbLog) -> None:
    db = _store(chdb_log, timeout=0.3)
    try:
        with pytest.raises(QueryTimeout, match=re.escape("query slow ran past 0.3s")):
            await db.fetch("slow", one=1)
        assert _running(chdb_log) == []
    finally:
        await db.close()


async def test_a_query_estimated_to_end_past_its_deadline_stops_early(chdb_log: ChdbLog) -> None:
    """Its deadline is 10 minutes away, but a trillion rows do not fit them: the engine's estimate after
    ESTIMATE_AFTER_SECONDS stops it (TOO_SLOW), and the store says so as a timeout (a 504), the query
    gone. (A query that fits its deadline runs to its end: every other test.)"""
    db = _store(chdb_log, timeout=600)
    try:
        with pytest.raises(QueryTimeout, match=re.escape("query huge would run past 600s (query_timeout): the engine")):
            await db.fetch("huge", one=1)
        assert _running(chdb_log) == []
    finally:
        await db.close()


async def test_a_query_whose_request_gives_up_is_killed(chdb_log: ChdbLog) -> None:
    """Given up on (its request cancelled), the query is killed in the engine, and the store waits for
    that. On chDB it was tagged by a comment, which the engine drops from a query with parameters:
    the kill found nothing and the cancel waited out the query's own time limit."""
    db = _store(chdb_log, timeout=120)
    try:
        running = asyncio.ensure_future(db.fetch("slow", one=1))
        while not _running(chdb_log):  # the engine has it
            await asyncio.sleep(0.01)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(30):  # a kill takes milliseconds; its time limit, 120 s
                await running
        assert _running(chdb_log) == []
    finally:
        await db.close()


async def test_one_of_two_servers_on_one_clickhouse_holds_the_alert_lock(chdb_dir: Path, chdb_http: int) -> None:
    """Two servers (two stores, as two replicas have) on one ClickHouse over HTTP: the first to try holds,
    the second waits; when the first lets go, the second holds. Both only read."""
    log = ChdbLog(chdb_dir, chdb_http)
    registry = Registry.load(sql_dir(), "clickhouse")
    first, second = (open_database(parse_database_url(log.url), registry, timeout=2, pool_size=2) for _ in range(2))
    one, two = Leadership(first, ALERT_LOCK), Leadership(second, ALERT_LOCK)
    try:
        assert await one.hold()
        assert not await two.hold()
        assert await one.hold() and not await two.hold()  # as long as it stands
        await one.release()
        assert await two.hold()
        assert not await one.hold()  # back in line: the younger now
    finally:
        await one.release()
        await two.release()
        await first.close()
        await second.close()
        await log.drop()
