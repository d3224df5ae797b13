"""Faults: time limits, shedding, a database that stops, is locked, or is replaced under the service.

Every fault is an answer, never a hang or a 500: 504 past `query_timeout` (with the database work
stopped), 503 + `Retry-After` when the database is unavailable or `max_concurrent_queries` are
running, and answers resume by themselves, with the right figures, once the fault is gone.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.resources import sql_dir
from cost_api.store.database import SQLITE_BUSY_WAIT
from cost_api.web.app import create_app
from cost_api.windows import epoch_ms

from .logdb import COLUMNS, LogDB, PostgresLog, Row, SqliteLog
from .pgcluster import PgCluster, find_bindir

PROBLEM = {"type", "title", "status", "detail", "errors"}
MINI = 0.15  # gpt-4o-mini, $ per 1M prompt tokens


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM
    assert body["status"] == status
    assert "Traceback" not in response.text
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
    return body


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


def fill_sqlite(path: Path, rows: int, minutes: int = 10) -> None:
    """`rows` gpt-4o-mini rows of 1,000 prompt tokens over the last `minutes`, written in one go."""
    end = epoch_ms(datetime.now(UTC))
    step = max(minutes * 60_000 // rows, 1)
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"""WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < {rows - 1})
            INSERT INTO request_log (created_at, provider, model, endpoint, token_id, status_code,
                                     prompt_tokens, completion_tokens)
            SELECT {end} - i * {step}, 'openai', 'gpt-4o-mini', '/e' || (i % 7), 'tok' || (i % 11),
                   200, 1000, 0 FROM g"""
        )
    conn.close()


# --------------------------------------------------------------------------- time limit → 504


async def test_sqlite_query_over_the_limit_is_a_504_and_stops(tmp_path: Path) -> None:
    log = sqlite_log(tmp_path / "log.db", "wal", [])
    fill_sqlite(log.path, 200_000)  # each groups query takes ~100 ms here: far past 20 ms
    async with serving(log.url, query_timeout="20ms") as client:
        started = time.monotonic()
        response = await client.get("/v1/summary")
        took = time.monotonic() - started
        body = assert_problem(response, 504)
        assert body["type"] == "/problems/timeout"
        assert "was cancelled" in body["detail"]
        assert took < 2.0
        # the work stopped: every connection is back in the pool, none is still reading (a query
        # left running would hold its connection for the ~100 ms a groups query takes here)
        db = client.app.state.service.db
        for _ in range(5):
            if db._pool.qsize() == db._opened:
                break
            await asyncio.sleep(0.01)
        assert db._pool.qsize() == db._opened


async def test_postgres_query_over_the_limit_is_a_504_and_stops(pg_cluster: Any) -> None:
    """A table lock makes the query wait, deterministically; `statement_timeout` cancels it."""
    log = await PostgresLog.create(pg_cluster)
    locker = await asyncpg.connect(log.url)
    try:
        await log.insert([Row(recent(5), prompt_tokens=1_000_000)])
        async with serving(log.url, query_timeout="300ms") as client:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute("LOCK TABLE request_log IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            response = await client.get("/v1/summary", params={"window": "1h"})
            took = time.monotonic() - started
            # right after the answer: no query of the API is left running or waiting on the lock
            left = await locker.fetch(
                "SELECT pid, state, query FROM pg_stat_activity WHERE application_name = 'cost-api' "
                "AND state <> 'idle' AND pid <> pg_backend_pid()"
            )
            await transaction.rollback()
            body = assert_problem(response, 504)
            assert "was cancelled" in body["detail"]
            assert took < 3.0
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

        started = time.monotonic()
        shed = await client.get("/v1/summary", params={"window": "1h"})
        took = time.monotonic() - started
        body = assert_problem(shed, 503)
        assert body["type"] == "/problems/overloaded"
        assert shed.headers["retry-after"] == "1"
        assert took < 1.0  # rejected at once (after a 0.1 s grace), not queued
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
    async with serving(log.url, query_timeout="2s") as client:
        assert (await client.get("/v1/summary", params=params)).json()["spend"] == MINI
        assert (await client.get("/readyz")).status_code == 200

        await log.execute("CHECKPOINT")  # the test cluster runs without fsync: write out before the crash
        own_cluster.stop()
        for path in ("/v1/summary", "/readyz"):
            started = time.monotonic()
            response = await client.get(path, params=params)
            took = time.monotonic() - started
            body = assert_problem(response, 503)
            assert "unavailable" in body["detail"].lower()
            assert took < 2.0 + 1.0, f"{path} took {took:.1f}s"
        assert (await client.get("/healthz")).status_code == 200

        own_cluster.launch()
        await log.insert([Row(recent(4), prompt_tokens=2_000_000)])  # written while the API kept running
        resumed = await client.get("/v1/summary", params=params)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["spend"] == round(3 * MINI, 6)
        assert resumed.json()["requests"] == 2
        assert (await client.get("/readyz")).status_code == 200


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
    log = sqlite_log(tmp_path / "log.db", "delete", [Row(recent(5), prompt_tokens=1_000_000)])
    async with serving(log.url, query_timeout="10s") as client:
        assert (await client.get("/v1/summary", params={"window": "1h"})).status_code == 200
        writer = sqlite3.connect(log.path, isolation_level=None)
        try:
            writer.execute("BEGIN EXCLUSIVE")  # in rollback-journal mode this locks readers out
            for path in ("/v1/summary", "/readyz"):
                started = time.monotonic()
                response = await client.get(path, params={"window": "1h"})
                took = time.monotonic() - started
                body = assert_problem(response, 503)
                assert "locked" in body["detail"]
                assert took < SQLITE_BUSY_WAIT + 1.5, f"{path} took {took:.1f}s"  # not query_timeout
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
        for _ in range(100):
            if aggregator.rollups.ready:
                break
            await asyncio.sleep(0.05)
        assert aggregator.rollups.ready
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


async def test_sqlite_file_gone_and_back(tmp_path: Path) -> None:
    log = sqlite_log(tmp_path / "log.db", "wal", [Row(recent(5), prompt_tokens=1_000_000)])
    away = tmp_path / "away.db"
    async with serving(log.url) as client:
        assert (await client.get("/v1/summary", params={"window": "1h"})).status_code == 200
        log.path.rename(away)
        body = assert_problem(await client.get("/v1/summary", params={"window": "1h"}), 503)
        assert "does not exist" in body["detail"]
        assert_problem(await client.get("/readyz"), 503)
        away.rename(log.path)
        assert (await client.get("/v1/summary", params={"window": "1h"})).json()["spend"] == MINI
        assert (await client.get("/readyz")).status_code == 200


async def test_sqlite_file_replaced_by_garbage_is_a_503(tmp_path: Path) -> None:
    log = sqlite_log(tmp_path / "log.db", "delete", [Row(recent(5), prompt_tokens=1_000_000)])
    async with serving(log.url) as client:
        assert (await client.get("/v1/summary", params={"window": "1h"})).status_code == 200
        garbage = tmp_path / "garbage"
        garbage.write_bytes(b"this is not a database, it is a log line\n" * 200)
        os.replace(garbage, log.path)
        for path in ("/v1/summary", "/readyz"):
            body = assert_problem(await client.get(path, params={"window": "1h"}), 503)
            assert "not a database" in body["detail"]
