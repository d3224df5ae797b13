"""Faults: time limits, shedding, a database that stops, is locked, or is replaced under the service.

Every fault is an answer, never a hang or a 500: 504 past `query_timeout` (with the database work
stopped), 503 + `Retry-After` when the database is unavailable or `max_concurrent_queries` are
running, and answers resume by themselves, with the right figures, once the fault is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from cost_api.config import load_settings
from cost_api.resources import sql_dir
from cost_api.store.database import DatabaseUnavailable, QueryTimeout, request_deadline
from cost_api.web.app import create_app
from cost_api.web.service import build_service
from cost_api.windows import epoch_ms

from ..logdb import COLUMNS, LogDB, PostgresLog, Row, SqliteLog
from ..pgcluster import PgCluster, find_bindir
from ..problems import assert_problem
from ..server import serving_app

MINI = 0.15  # gpt-4o-mini, $ per 1M prompt tokens


def recent(minutes: float) -> datetime:
    """An instant inside the open hours (never served from the closed-hour rollups)."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


@asynccontextmanager
async def serving(url: str, **settings: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(load_settings(environ={}, overrides={"database_url": url, **settings}))
    async with AsyncTestClient(app=app) as client:
        yield client


def sqlite_log(path: Path, journal: str, rows: list[Row]) -> SqliteLog:
    """A log file in `journal` mode holding `rows`, every connection to it closed (nothing lingers)."""
    log = SqliteLog.__new__(SqliteLog)
    log.path, log.url = path, f"sqlite:///{path}"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.executescript((sql_dir() / "schema" / "sqlite.sql").read_text())
        append(conn, rows)
    finally:
        conn.close()
    return log


def append(conn: sqlite3.Connection, rows: list[Row]) -> None:
    values = [
        [epoch_ms(v) if isinstance(v, datetime) else int(v) if isinstance(v, bool) else v for v in astuple(row)]
        for row in rows
    ]
    conn.executemany(f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", values)


# --------------------------------------------------------------------------- time limit → 504


async def test_sqlite_query_over_the_limit_is_a_504_and_stops(tmp_path: Path) -> None:
    """A read of the log that would never end (whatever the machine's speed) is stopped at
    query_timeout: a 504, and its connection back in the pool. The spend of the last hour: an answer
    over more than a day (the summary's top lists read 7 days) waits for the warm-up, stalled too, and
    answers 503 `warming-up` without a query of its own."""
    log = sqlite_log(tmp_path / "log.db", "wal", [Row(recent(5), prompt_tokens=1_000_000)])
    async with serving(log.url, query_timeout="200ms") as client, stalled(log, "request_log"):
        response = await client.get("/v1/spend", params={"window": "1h", "group_by": "provider"})
        body = assert_problem(response, 504)
        assert body["type"] == "/problems/timeout"
        # stopped while it ran, or (on a machine so busy that the cheap queries before it used up the
        # 0.2 s) never started: either way no query outlives the request's time
        assert "was cancelled" in body["detail"] or "was not run" in body["detail"], body["detail"]
        # the work stopped: every connection comes back to the pool (one left reading never would)
        db = client.app.state.service.db
        await until(lambda: db._pool.qsize() == db._opened, "every connection back in the pool")


async def test_postgres_query_over_the_limit_is_a_504_and_stops(pg_cluster: Any) -> None:
    """A table lock makes the query wait, deterministically; `statement_timeout` cancels it."""
    log = await PostgresLog.create(pg_cluster)
    locker = await asyncpg.connect(log.url)
    try:
        await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
        async with in_this_loop(log.url, query_timeout="1s") as (client, _):
            await without_rollups()  # the request's queries are the only ones of the API
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("LOCK TABLE request_log IN ACCESS EXCLUSIVE MODE")
            response = await client.get("/v1/summary", params={"window": "1h"})
            # right after the answer: no query of the API is left running or waiting on the lock
            left = await locker.fetch(
                "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = 'cost-api' "
                "AND state <> 'idle' AND pid <> pg_backend_pid()"
            )
            await transaction.rollback()
            body = assert_problem(response, 504)
            assert "was cancelled" in body["detail"]  # a wait on the lock never ends by itself
            assert left == []
            after = await client.get("/v1/summary", params={"window": "1h"})
            assert after.status_code == 200
            assert after.json()["spend"] == MINI
    finally:
        await locker.close()
        await log.drop()


# --------------------------------------------------------------------------- shedding → 503


@asynccontextmanager
async def in_this_loop(url: str, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Litestar]]:
    """The app on this test's event loop (the test client runs it on a thread of its own), so that
    requests can really overlap and the test can hold one of them inside the database."""
    app = create_app(load_settings(environ={}, overrides={"database_url": url, **settings}))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, app


async def test_over_max_concurrent_queries_is_a_503_not_a_queue(log: LogDB, monkeypatch: pytest.MonkeyPatch) -> None:
    await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
    async with in_this_loop(log.url, max_concurrent_queries=1) as (client, app):
        db = app.state.service.db
        real_fetch = db.fetch
        entered, release = asyncio.Event(), asyncio.Event()

        async def slow_fetch(name: str, **params: Any) -> Any:
            entered.set()
            await release.wait()
            return await real_fetch(name, **params)

        monkeypatch.setattr(db, "fetch", slow_fetch)
        first = asyncio.ensure_future(client.get("/v1/summary", params={"window": "1h"}))
        await asyncio.wait_for(entered.wait(), 5)

        # a request queued behind the first would wait until `release`, which comes after its answer
        shed = await asyncio.wait_for(client.get("/v1/summary", params={"window": "1h"}), 60)  # (a hang guard)
        assert not first.done() and app.state.admission.active == 1  # answered while the first runs
        body = assert_problem(shed, 503)
        assert body["type"] == "/problems/overloaded"
        assert shed.headers["retry-after"] == "1"
        # operations are never shed
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200

        release.set()
        assert (await asyncio.wait_for(first, 10)).json()["spend"] == MINI
        monkeypatch.setattr(db, "fetch", real_fetch)
        again = await client.get("/v1/summary", params={"window": "1h"})
        assert again.status_code == 200
        assert app.state.admission.active == 0
        metrics = (await client.get("/metrics")).text
        assert "cost_api_shed_requests_total" in metrics


# --------------------------------------------------------------------------- Postgres stopped


@pytest.fixture
async def own_cluster() -> AsyncIterator[PgCluster]:
    """A Postgres cluster of this test's own, to stop and start (never the session's shared one)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found")
    cluster = PgCluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


async def test_postgres_stopped_and_back(own_cluster: PgCluster) -> None:
    log = await PostgresLog.create(own_cluster)
    await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
    params = {"window": "1h"}
    # a long query_timeout: a request waiting for the stopped server would end as a 504, not a 503
    async with serving(log.url, query_timeout="60s") as client:
        assert (await client.get("/v1/summary", params=params)).json()["spend"] == MINI
        assert (await client.get("/readyz")).status_code == 200

        await log.execute("CHECKPOINT")  # the test cluster runs without fsync: write out before the crash
        own_cluster.stop()
        for path in ("/v1/summary", "/readyz"):
            body = assert_problem(await client.get(path, params=params), 503)
            assert "unavailable" in body["detail"].lower(), path
        assert (await client.get("/healthz")).status_code == 200

        own_cluster.launch()
        await log.insert([Row(recent(4), prompt_tokens=2_000_000)])  # written while the API kept running
        resumed = await client.get("/v1/summary", params=params)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["spend"] == round(3 * MINI, 6)
        assert resumed.json()["requests"] == 2
        assert (await client.get("/readyz")).status_code == 200


async def hammer(client: httpx.AsyncClient, stop: asyncio.Event, seen: list[httpx.Response]) -> None:
    """Ask the heavy routes one after another until `stop`, keeping every answer."""
    asks = [
        ("/v1/summary", {"window": "1h"}),
        ("/v1/spend", {"group_by": "token", "window": "2h"}),
        ("/v1/requests", {"window": "1h", "limit": "50"}),
        ("/v1/trend", {"window": "2h", "interval": "hour", "group_by": "endpoint"}),
        ("/v1/live", {}),
    ]
    while not stop.is_set():
        for path, params in asks:
            seen.append(await client.get(path, params=params))


async def test_postgres_fast_shutdown_and_restart_under_load(own_cluster: PgCluster) -> None:
    """`pg_ctl -m fast stop` while requests keep coming, then a restart: every answer is a figure, a
    503 with Retry-After or a 504 — never a 500, whatever state a driver connection was caught in —
    and the figures after the restart are the database's."""
    log = await PostgresLog.create(own_cluster)
    await log.insert(
        [Row(recent(1 + i % 50), endpoint=f"/e{i % 5}", token_id=f"t{i % 7}", prompt_tokens=1000) for i in range(5000)]
    )
    async with in_this_loop(log.url, query_timeout="2s") as (client, _):
        seen: list[httpx.Response] = []
        stop = asyncio.Event()
        workers = [asyncio.ensure_future(hammer(client, stop, seen)) for _ in range(6)]
        try:
            await until(lambda: len(seen) >= 30, "answers before the stop")
            await log.execute("CHECKPOINT")
            await asyncio.to_thread(own_cluster.stop, "fast")
            down = len(seen)
            await until(lambda: len(seen) >= down + 30, "answers while it is down")
            await asyncio.to_thread(own_cluster.launch)
            back = len(seen)
            await until(lambda: any(r.status_code == 200 for r in seen[back:]), "answers after the restart")
        finally:
            stop.set()
            await asyncio.gather(*workers)
        for response in seen:
            if response.status_code != 200:
                assert response.status_code in (503, 504), response.text
                assert_problem(response, response.status_code)
        assert any(r.status_code == 503 for r in seen[down:back])
        counted = await client.get("/v1/summary", params={"window": "1h"})
        conn = await asyncpg.connect(log.url)
        try:
            assert counted.json()["requests"] == await conn.fetchval("SELECT count(*) FROM request_log") == 5000
        finally:
            await conn.close()
        assert counted.json()["spend"] == round(5000 * 1000 * MINI / 1e6, 6)


async def rows_on(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM request_log")


async def holds(conn: asyncpg.Connection, rows: int) -> bool:
    return await rows_on(conn) == rows


async def test_postgres_read_replica_lagging(own_cluster: PgCluster) -> None:
    """The service on a hot standby (a base backup of the primary with -R, in recovery, replaying its
    WAL): ready, saying it reads a replica; while the replica lags (its replay paused here) every
    answer is the replica's own consistent figure — what it has replayed, nothing half-read — and once
    it has caught up, the figures are the primary's."""
    log = await PostgresLog.create(own_cluster)
    await log.insert([Row(recent(3 * 24 * 60), prompt_tokens=10_000_000), Row(recent(5), prompt_tokens=1_000_000)])
    standby = PgCluster(own_cluster.bindir)
    try:
        standby.start_standby(own_cluster)
        replica = await asyncpg.connect(standby.url(log.name))
        primary = await asyncpg.connect(log.url)
        try:
            await until(lambda: holds(replica, 2), "the replica to have the rows")
            week = {"window": "7d"}
            async with serving(standby.url(log.name)) as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                assert ready.json()["replica"] is not None  # (nothing replayed yet: all came in the backup)
                assert (await client.get("/v1/summary", params=week)).json()["requests"] == 2

                await replica.execute("SELECT pg_wal_replay_pause()")
                await until(
                    lambda: replica.fetchval("SELECT pg_get_wal_replay_pause_state() = 'paused'"), "replay to pause"
                )
                await log.insert([Row(recent(4), prompt_tokens=1_000_000), Row(recent(3), prompt_tokens=1_000_000)])
                lagging = (await client.get("/v1/summary", params=week)).json()
                assert lagging["requests"] == await rows_on(replica) == 2 < await rows_on(primary)
                assert lagging["spend"] == round(11 * MINI, 6)
                assert (await client.get("/readyz")).status_code == 200

                await replica.execute("SELECT pg_wal_replay_resume()")
                await until(lambda: holds(replica, 4), "the replica to catch up")
                caught_up = (await client.get("/v1/summary", params=week)).json()
                assert caught_up["requests"] == await rows_on(primary) == 4
                assert caught_up["spend"] == round(13 * MINI, 6)
                assert (await client.get("/readyz")).json()["replica"]["last_replayed_commit_at"] is not None
        finally:
            await replica.close()
            await primary.close()
    finally:
        standby.destroy()


async def test_postgres_query_rolled_back_by_the_server_is_a_503(pg_log: PostgresLog) -> None:
    """A hot standby cancels a query that holds back its replay (SQLSTATE 40001, "conflict with
    recovery"), as a primary cancels one side of a deadlock (40P01): a retry answers, so it is a 503
    with Retry-After, not a 500. A conflict cannot be timed from a test: here the log is read through
    a view whose function raises that SQLSTATE while a switch is on."""
    log = pg_log
    await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
    await log.execute(
        """
        ALTER TABLE request_log RENAME TO logged;
        CREATE TABLE conflict (since timestamptz);
        CREATE FUNCTION replayable() RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM conflict) THEN
                RAISE EXCEPTION 'canceling statement due to conflict with recovery'
                    USING ERRCODE = 'serialization_failure';
            END IF;
            RETURN true;
        END $$;
        CREATE VIEW request_log AS SELECT * FROM logged WHERE replayable();
        """
    )
    async with serving(log.url) as client:
        assert (await client.get("/v1/summary", params={"window": "1h"})).json()["spend"] == MINI
        await log.execute("INSERT INTO conflict VALUES (now())")
        for path, params in DATA_ROUTES:
            body = assert_problem(await client.get(path, params=params), 503)
            assert "conflict with recovery" in body["detail"]
        await log.execute(
            "DELETE FROM conflict; INSERT INTO logged (created_at, provider, model, endpoint, prompt_tokens)"
            " VALUES (now() - interval '4 minutes', 'openai', 'gpt-4o-mini', '/chat', 1000000)"
        )
        assert (await client.get("/v1/summary", params={"window": "1h"})).json()["spend"] == 2 * MINI


# --------------------------------------------------------------------------- SQLite locked or replaced


async def test_sqlite_wal_writer_holding_exclusive_does_not_block_readers(tmp_path: Path) -> None:
    log = sqlite_log(tmp_path / "log.db", "wal", [Row(recent(5), prompt_tokens=1_000_000)])
    async with serving(log.url, query_timeout="2s") as client:
        writer = sqlite3.connect(log.path, isolation_level=None)
        try:
            writer.execute("BEGIN EXCLUSIVE")
            append(writer, [Row(recent(4), prompt_tokens=1_000_000)])
            during = await client.get("/v1/summary", params={"window": "1h"})
            assert during.status_code == 200
            assert during.json()["spend"] == MINI  # the uncommitted row is not seen
            writer.execute("COMMIT")
        finally:
            writer.close()
        after = await client.get("/v1/summary", params={"window": "1h"})
        assert after.json()["spend"] == 2 * MINI


async def test_sqlite_rollback_journal_exclusive_lock_is_a_quick_503(tmp_path: Path) -> None:
    """The lock is held until the answers are in: a reader waiting on it until query_timeout would end
    as a 504; it gives up after SQLITE_BUSY_WAIT with a 503 instead."""
    log = sqlite_log(tmp_path / "log.db", "delete", [Row(recent(5), prompt_tokens=1_000_000)])
    async with serving(log.url, query_timeout="60s") as client:
        assert (await client.get("/v1/summary", params={"window": "1h"})).status_code == 200
        writer = sqlite3.connect(log.path, isolation_level=None)
        try:
            writer.execute("BEGIN EXCLUSIVE")  # in rollback-journal mode this locks readers out
            for path in ("/v1/summary", "/readyz"):
                body = assert_problem(await client.get(path, params={"window": "1h"}), 503)
                assert "locked" in body["detail"], path
            append(writer, [Row(recent(4), prompt_tokens=1_000_000)])
            writer.execute("COMMIT")
        finally:
            writer.close()
        after = await client.get("/v1/summary", params={"window": "1h"})
        assert after.status_code == 200
        assert after.json()["spend"] == 2 * MINI


@pytest.mark.parametrize("journal", ["wal", "delete"])
async def test_sqlite_file_replaced_answers_with_the_new_files_figures(tmp_path: Path, journal: str) -> None:
    """A restore or a rotation: a self-contained file moved over the name (os.replace / mv) after
    the writer's last checkpoint of the old one. The pool's connections to the old file are closed
    and new ones opened on the new file."""
    days_ago = recent(3 * 24 * 60)  # a closed hour: held in memory by the rollups once they are warm
    log = sqlite_log(tmp_path / "log.db", "wal", [Row(days_ago, prompt_tokens=10_000_000), Row(recent(5))])
    week = {"window": "7d"}
    async with serving(log.url) as client:
        aggregator = client.app.state.service.aggregator
        await until(lambda: aggregator.rollups.ready, "the rollups to warm")
        assert (await client.get("/v1/summary", params=week)).json()["spend"] == round(10 * MINI, 6)

        writer = sqlite3.connect(log.path, isolation_level=None)  # the gateway, about to let go
        append(writer, [Row(recent(4), prompt_tokens=1_000_000)])
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        writer.close()
        incoming = [Row(days_ago, prompt_tokens=4_000_000), Row(recent(3), prompt_tokens=2_000_000)]
        sqlite_log(tmp_path / "incoming.db", journal, incoming)
        os.replace(tmp_path / "incoming.db", log.path)

        for _ in range(3):  # every pooled connection, not just the first one reopened
            response = await client.get("/v1/summary", params=week)
            assert response.status_code == 200, response.text
            assert response.json()["spend"] == round(6 * MINI, 6)
            assert response.json()["requests"] == 2


def sqlite_fault(fault: str, log: SqliteLog, tmp_path: Path) -> Any:
    """Do `fault` to the log file; return what undoes it, with one row more in the log than before."""
    extra = [Row(recent(2), prompt_tokens=1_000_000)]
    if fault == "locked":  # a writer in rollback-journal mode holding EXCLUSIVE: readers are locked out
        writer = sqlite3.connect(log.path, isolation_level=None)
        writer.execute("BEGIN EXCLUSIVE")
        append(writer, extra)

        def commit() -> None:
            writer.execute("COMMIT")
            writer.close()

        return commit
    mended = tmp_path / "mended.db"  # the restore: the log as it was, and one row more
    shutil.copyfile(log.path, mended)
    with contextlib.closing(sqlite3.connect(mended)) as conn:
        append(conn, extra)
        conn.commit()
    if fault == "gone":
        log.path.unlink()
    else:
        broken = tmp_path / "broken"
        broken.write_bytes(b"" if fault == "emptied" else b"this is not a database, it is a log line\n" * 200)
        os.replace(broken, log.path)
    return lambda: os.replace(mended, log.path)


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("locked", "database is locked"),
        ("not-a-database", "file is not a database"),
        ("emptied", "no request_log table"),  # an empty file is an empty database to SQLite
        ("gone", "does not exist"),
    ],
)
async def test_sqlite_file_unreadable_under_load_then_back(tmp_path: Path, fault: str, named: str) -> None:
    """While clients keep asking, the log file is locked, replaced by something that is not a
    database or by an empty file, or removed: every answer is a figure or a 503 with Retry-After
    saying why (a locked file in at most a second), /readyz too; once the file is back, with a row
    more, answers resume on their own with the file's own figures."""
    log = sqlite_log(tmp_path / "log.db", "delete", [Row(recent(5), prompt_tokens=1_000_000)] * 3)
    async with in_this_loop(log.url, query_timeout="5s") as (client, _):
        seen: list[httpx.Response] = []
        stop = asyncio.Event()
        workers = [asyncio.ensure_future(hammer(client, stop, seen)) for _ in range(4)]
        try:
            await until(lambda: len(seen) >= 20, "answers before the fault")
            mend = sqlite_fault(fault, log, tmp_path)
            start = len(seen)
            await until(lambda: sum(r.status_code == 503 for r in seen[start:]) >= 10, "503s during the fault")
            body = assert_problem(await client.get("/readyz"), 503)
            assert named in body["detail"]
            mend()
            back = len(seen)
            await until(lambda: any(r.status_code == 200 for r in seen[back:]), "answers after the fault")
        finally:
            stop.set()
            await asyncio.gather(*workers)
        for response in seen:
            if response.status_code != 200:
                assert named in assert_problem(response, 503)["detail"]
        await assert_recovered(client, log, 4)


async def test_sqlite_query_waiting_for_a_connection_gets_one_when_the_busy_one_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection busy, a query waiting for one, then the busy one dropped (its query found the
    file is not a database): the waiting query opens a connection at once. It waited for one to come
    back to the pool instead, which none did, until query_timeout: a 504 where the fault was a 503
    (the rare 504 of test_sqlite_file_unreadable_under_load_then_back)."""
    log = sqlite_log(tmp_path / "log.db", "delete", [])
    settings = {"database_url": log.url, "query_timeout": "30s", "max_concurrent_queries": 1}
    service = build_service(load_settings(environ={}, overrides=settings))
    real = aiosqlite.Connection.execute_fetchall
    entered, broken = asyncio.Event(), asyncio.Event()

    async def fails_first(conn: aiosqlite.Connection, sql: str, parameters: Any = None) -> Any:
        if not entered.is_set():  # the first query: running when the file turns out broken
            entered.set()
            await broken.wait()
            raise sqlite3.DatabaseError("file is not a database")
        return await real(conn, sql, parameters)

    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", fails_first)
    try:
        busy = asyncio.ensure_future(service.db.fetch("token_labels"))
        await asyncio.wait_for(entered.wait(), 10)
        waiting = asyncio.ensure_future(service.db.fetch("token_labels"))
        await asyncio.sleep(0)  # (no I/O before it waits: one turn of the loop takes it there)
        assert not waiting.done() and in_use(service.db) == 1
        broken.set()
        with pytest.raises(DatabaseUnavailable, match="not a database"):
            await busy
        assert list(await waiting) == []  # answered on a connection of its own, not timed out
        assert in_use(service.db) == 0
    finally:
        await service.close()


async def test_sqlite_file_replaced_while_a_connection_opens_is_read_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log file replaced while a connection to it opens (an empty file swapped for the real one, as
    a restore does): the connection may read the empty file, and is marked as of it, so the next query
    reopens on the file as it is now. Marked as of the file found once it had opened, it kept reading the
    empty file, and the schema checks it served said "no request_log table" after the restore (the rare
    failure of test_sqlite_file_unreadable_under_load_then_back[emptied]: 15 s of 503s after the fault)."""
    log = sqlite_log(tmp_path / "log.db", "delete", [Row(recent(5), prompt_tokens=1_000_000)])
    restored = tmp_path / "restored.db"
    shutil.copyfile(log.path, restored)
    (tmp_path / "empty").write_bytes(b"")
    os.replace(tmp_path / "empty", log.path)
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    real = aiosqlite.connect

    async def connect_then_restore(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        conn = await real(*args, **kwargs)
        if restored.exists():  # the first connection: the restore lands just after it opened
            os.replace(restored, log.path)
        return conn

    monkeypatch.setattr(aiosqlite, "connect", connect_then_restore)
    try:
        # the first connection read the empty file; restored since, the file is sound again
        assert await service.db.schema_problem() == "the database has no request_log table (or view)"
        assert not restored.exists()
        assert await service.db.schema_problem() is None
        assert len(await service.db.fetch("log_bounds")) == 1
    finally:
        await service.close()


# --------------------------------------------------------------------------- one deadline per request


@asynccontextmanager
async def stalled(log: LogDB, table: str) -> AsyncIterator[None]:
    """Every read of `table` runs until stopped: on Postgres the table is locked by a transaction of
    the test's; on SQLite it is replaced by a view that never ends (and never yields a row)."""
    if isinstance(log, SqliteLog):
        columns = {"api_tokens": "'id' AS id, 'prefix' AS prefix, NULL AS name"}.get(
            table, ", ".join(f"i AS {c}" for c in ("id", *COLUMNS))
        )
        await log.execute(
            f"DROP TABLE {table}; CREATE VIEW {table} AS WITH RECURSIVE n(i) AS "
            f"(SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT {columns} FROM n WHERE i < 0;"
        )
        yield
        return
    assert isinstance(log, PostgresLog)
    locker = await asyncpg.connect(log.url)
    try:
        async with locker.transaction():
            await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await locker.close()


def in_use(db: Any) -> int:
    """The API's database connections checked out of its pool right now."""
    if db.dialect == "sqlite":
        return db._opened - db._pool.qsize()
    return 0 if db._pool is None else db._pool.get_size() - db._pool.get_idle_size()


@pytest.fixture
async def pg_log(pg_cluster: Any) -> AsyncIterator[PostgresLog]:
    log = await PostgresLog.create(pg_cluster)
    yield log
    await log.drop()


async def until(condition: Any, what: str, within: float = 15.0) -> None:
    """Wait until `condition()` (sync or async) holds; fail naming `what` after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = condition()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"waited {within:g}s for {what}") from None


async def without_rollups() -> None:
    """Stop the rollups' background reads, so that the request under test is the only one reading."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "rollups"]
    task.cancel()
    await asyncio.wait({task})


def app_for(url: str, **settings: Any) -> Litestar:
    return create_app(load_settings(environ={}, overrides={"database_url": url, **settings}))


def deadlines_of(db: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """(query, the deadline it is run under) of every query `db` runs from now on."""
    seen: list[tuple[str, float]] = []
    run = db._fetch

    async def recorded(name: str, deadline: float, **params: Any) -> Any:
        seen.append((name, deadline))
        return await run(name, deadline, **params)

    monkeypatch.setattr(db, "_fetch", recorded)
    return seen


async def test_every_query_gets_only_what_is_left_of_the_requests_time(
    log: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its deadline a request runs no further query; a query of it runs only until the deadline,
    however long query_timeout is."""
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url, "query_timeout": "1h"}))
    try:
        with request_deadline(time.monotonic() - 1), pytest.raises(QueryTimeout, match="not run"):
            await service.db.fetch("log_bounds")
        assert in_use(service.db) == 0  # not even a connection was taken
        async with stalled(log, "api_tokens"):
            seen = deadlines_of(service.db, monkeypatch)
            deadline = time.monotonic() + 2
            with request_deadline(deadline), pytest.raises(QueryTimeout, match="was cancelled"):
                await service.db.fetch("token_labels")  # (given query_timeout, it would run for an hour)
            assert seen == [("token_labels", deadline)]  # the request's deadline, not an hour from its start
            assert in_use(service.db) == 0
    finally:
        await service.close()


async def test_a_client_that_leaves_stops_its_queries(log: LogDB) -> None:
    """`curl -m 1` on a token lens whose query would run for a minute: once the client is gone its
    query stops and the connection is free again, at once, not after query_timeout."""
    await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
    app = app_for(log.url, query_timeout="60s", max_concurrent_queries=1)  # one connection: the one it holds
    async with serving_app(app) as base, stalled(log, "api_tokens"):
        await without_rollups()
        host, port = base.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /v1/spend?group_by=token&window=90d HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        await until(lambda: in_use(app.state.service.db) == 1, "the token query to start")
        if isinstance(log, PostgresLog):
            assert await token_queries(log) == 1
        abandoned = sample("cost_api_abandoned_requests_total")
        writer.close()
        await writer.wait_closed()
        await until(lambda: in_use(app.state.service.db) == 0, "the connection to come back")
        if isinstance(log, PostgresLog):
            assert await token_queries(log) == 0
        assert sample("cost_api_abandoned_requests_total") == abandoned + 1
        async with httpx.AsyncClient(base_url=base) as client:  # the one connection serves the next request
            live = await client.get("/v1/live")
            assert live.status_code == 200, live.text
            assert live.json()["spend"] == MINI


async def token_queries(log: PostgresLog) -> int:
    """The API's queries of api_tokens running now, as Postgres sees them."""
    conn = await asyncpg.connect(log.url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cost-api' AND state = 'active' "
            "AND query LIKE '%api_tokens%'"
        )
    finally:
        await conn.close()


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_one_deadline_for_all_the_queries_of_a_request(
    pg_log: PostgresLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token lens runs its queries in a row: the token labels, then the groups. When the first has
    used most of query_timeout, the second gets only what is left (the same deadline as the first,
    not query_timeout from its own start): the answer is a 504, and nothing is left running."""
    log = pg_log
    budget = 3.0
    await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
    app = app_for(log.url, query_timeout=f"{budget:g}s")
    async with serving_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        await without_rollups()
        seen = deadlines_of(app.state.service.db, monkeypatch)
        tokens = await asyncpg.connect(log.url)  # holds api_tokens until most of the budget is gone
        watcher = await asyncpg.connect(log.url)  # (pg_stat_activity reads stay the same in a transaction)
        try:
            async with stalled(log, "request_log"):
                labels = tokens.transaction()
                await labels.start()
                await tokens.execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE")
                answer = asyncio.ensure_future(client.get("/v1/spend", params={"group_by": "token"}))
                await until(lambda: waited_on_tokens(watcher, 0.7 * budget), "the labels to use 70% of the budget")
                await labels.commit()
                response = await answer
                left = await watcher.fetch(
                    "SELECT query FROM pg_stat_activity WHERE application_name = 'cost-api' AND state <> 'idle'"
                )
            body = assert_problem(response, 504)
            assert "was cancelled" in body["detail"]
            names = [name for name, _ in seen]
            assert "token_labels" in names and len(names) >= 2, names  # the labels, then the groups
            assert len({deadline for _, deadline in seen}) == 1, seen  # one deadline for all of them
            assert left == []
            after = await client.get("/v1/spend", params={"group_by": "token"})
            assert after.status_code == 200
            assert after.json()["spend"] == MINI
        finally:
            await tokens.close()
            await watcher.close()


async def waited_on_tokens(conn: asyncpg.Connection, seconds: float) -> bool:
    """Whether the API's query of api_tokens has been running for `seconds`, by Postgres's clock."""
    waited = await conn.fetchval(
        "SELECT max(extract(epoch FROM clock_timestamp() - query_start)) FROM pg_stat_activity "
        "WHERE application_name = 'cost-api' AND state = 'active' AND query LIKE '%api_tokens%'"
    )
    return waited is not None and float(waited) >= seconds


async def test_a_handler_stuck_outside_any_query_is_stopped_at_its_deadline(tmp_path: Path) -> None:
    """What the deadline cannot reach through a query (a handler waiting on a lock, say) is cancelled
    just after it, and answered 504 there: no request outlives query_timeout by more than a moment."""
    log = sqlite_log(tmp_path / "log.db", "wal", [Row(recent(5), prompt_tokens=1_000_000)])
    app = app_for(log.url, query_timeout="1s")
    async with serving_app(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        aggregator = app.state.service.aggregator
        await until(lambda: aggregator.rollups.ready, "the rollups to warm")
        async with aggregator._lock:  # what keeps the held rows consistent: the request waits for it, not in a query
            # held until the answer is in: only the deadline can end the request (else a ReadTimeout)
            response = await client.get("/v1/summary", params={"window": "1h"})
        body = assert_problem(response, 504)
        assert body["detail"] == "the request ran past 1s (query_timeout) and was cancelled"
        assert app.state.admission.active == 0  # its admission slot went with it
        assert (await client.get("/v1/summary", params={"window": "1h"})).json()["spend"] == MINI


# --------------------------------------------------------------------------- the log's schema


def sqlite_log_with(path: Path, declared: dict[str, str], rows: list[Row]) -> SqliteLog:
    """A log whose columns are declared with other types, `{column: type}`, holding `rows`."""
    ddl = (sql_dir() / "schema" / "sqlite.sql").read_text()
    for column, type_ in declared.items():
        ddl = re.sub(rf"^(\s+{column}\s+)\w+", rf"\g<1>{type_}", ddl, count=1, flags=re.M)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(ddl)
        append(conn, rows)
        conn.commit()
    finally:
        conn.close()
    log = SqliteLog.__new__(SqliteLog)
    log.path, log.url = path, f"sqlite:///{path}"
    return log


async def direct_count(log: LogDB) -> int:
    """SELECT count(*) FROM request_log, on the database itself."""
    if isinstance(log, SqliteLog):
        with contextlib.closing(sqlite3.connect(log.path)) as conn:
            return conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
    assert isinstance(log, PostgresLog)
    conn = await asyncpg.connect(log.url)
    try:
        return await conn.fetchval("SELECT count(*) FROM request_log")
    finally:
        await conn.close()


DATA_ROUTES = [
    ("/v1/summary", {"window": "1h"}),
    ("/v1/requests", {"window": "1h"}),
    ("/v1/spend", {"group_by": "token", "window": "1h"}),
    ("/v1/live", {}),
]


async def refused(client: Any, *words: str) -> None:
    """/readyz and every data route: a 503 with Retry-After whose detail has `words`."""
    for path, params in [("/readyz", {}), *DATA_ROUTES]:
        body = assert_problem(await client.get(path, params=params), 503)
        assert all(word in body["detail"] for word in words), (path, body["detail"])


async def assert_recovered(client: Any, log: LogDB, requests: int) -> None:
    """Ready, and the figures are the database's own (its count of rows, 1M gpt-4o-mini tokens each)."""
    assert (await client.get("/readyz")).status_code == 200
    assert await direct_count(log) == requests
    for path, params in DATA_ROUTES:
        assert (await client.get(path, params=params)).status_code == 200, path
    summary = (await client.get("/v1/summary", params={"window": "1h"})).json()
    assert summary["requests"] == requests
    assert summary["spend"] == round(requests * MINI, 6)


@pytest.mark.parametrize(
    ("break_it", "mend_it", "named"),
    [
        ("ALTER TABLE request_log RENAME TO away", "ALTER TABLE away RENAME TO request_log", ["no request_log table"]),
        (
            "ALTER TABLE request_log RENAME COLUMN cache_key TO ck",
            "ALTER TABLE request_log RENAME COLUMN ck TO cache_key",
            ["no column cache_key"],
        ),
    ],
    ids=["table", "column"],
)
async def test_log_table_or_column_gone_then_back(log: LogDB, break_it: str, mend_it: str, named: list[str]) -> None:
    """A migration or a restore takes the table, or one column, away under the running service: every
    data route and /readyz answer 503 naming what is missing, and all is back, with the database's
    figures, as soon as it is back."""
    await log.insert([Row(recent(5), prompt_tokens=1_000_000), Row(recent(4), prompt_tokens=1_000_000)])
    async with serving(log.url) as client:
        await assert_recovered(client, log, 2)
        await log.execute(break_it)
        await refused(client, *named)
        await log.execute(mend_it)
        await log.insert([Row(recent(3), prompt_tokens=1_000_000)])  # written while it was away
        await assert_recovered(client, log, 3)


@pytest.mark.parametrize(
    ("column", "to_type", "expected"),
    [
        ("created_at", "timestamp", "expected timestamp with time zone"),
        ("cache_hit", "integer USING cache_hit::int", "expected boolean"),
    ],
    ids=["created_at-timestamp", "cache_hit-integer"],
)
async def test_postgres_column_of_a_type_the_queries_cannot_read(
    pg_log: PostgresLog, column: str, to_type: str, expected: str
) -> None:
    """Every data route was a 500 while /readyz said ready. Now /readyz is never ready while the
    queries cannot read the log, every route answers 503 naming the column and the type expected,
    and a fix of the column is taken at once."""
    log = pg_log
    await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
    back = {
        "created_at": "timestamptz USING created_at AT TIME ZONE 'UTC'",
        "cache_hit": "boolean USING cache_hit <> 0",
    }[column]
    async with serving(log.url) as client:
        await assert_recovered(client, log, 1)
        await log.execute(f"ALTER TABLE request_log ALTER {column} DROP DEFAULT, ALTER {column} TYPE {to_type}")
        await refused(client, f"request_log.{column}", expected)
        await log.execute(f"ALTER TABLE request_log ALTER {column} TYPE {back}")
        await assert_recovered(client, log, 1)


async def test_postgres_numeric_and_bigint_token_columns_are_numbers(pg_log: PostgresLog) -> None:
    """Token columns declared numeric or bigint are read as numbers: /v1/requests carried numeric
    ones as JSON strings ("1.00E+6"); every sum of a bigint column is a numeric in Postgres."""
    log = pg_log
    await log.execute(
        "ALTER TABLE request_log ALTER prompt_tokens TYPE numeric, ALTER completion_tokens TYPE bigint, "
        "ALTER cache_read_tokens TYPE numeric(20, 2), ALTER latency_ms TYPE numeric"
    )
    await log.insert([Row(recent(5), prompt_tokens=1_000_000, completion_tokens=2_000_000, cache_read_tokens=4)])
    async with serving(log.url) as client:
        assert (await client.get("/readyz")).status_code == 200
        (item,) = (await client.get("/v1/requests", params={"window": "1h"})).json()["items"]
        tokens = (item["prompt_tokens"], item["completion_tokens"], item["cache_read_tokens"])
        assert tokens == (1_000_000, 2_000_000, 4)
        assert item["latency_ms"] == 100
        spend = round(MINI + 2 * 0.60 + 4 * 0.075 / 1e6, 6)  # gpt-4o-mini: $0.60 per 1M out, $0.075 cached in
        assert item["cost"] == spend
        assert (await client.get("/v1/summary", params={"window": "1h"})).json()["spend"] == spend


async def test_sqlite_column_declared_as_text_is_refused_by_name(tmp_path: Path) -> None:
    """created_at declared TEXT stores epoch milliseconds as text, which compares with numbers as
    text: every window would be empty. A provider declared INTEGER would make numbers of ids."""
    log = sqlite_log_with(
        tmp_path / "log.db", {"created_at": "TEXT", "provider": "INTEGER"}, [Row(recent(5), prompt_tokens=1_000_000)]
    )
    async with serving(log.url) as client:
        await refused(
            client, "request_log.created_at is TEXT; expected INTEGER", "request_log.provider is INTEGER; expected TEXT"
        )
