"""Read-only at the database: the API's own connections cannot write, on every dialect.

The connections are taken exactly where the API's queries take theirs (the SQLite pool's `_acquire`,
the asyncpg pool, chDB's connection under the settings every query runs with), so what fails here is
what would fail if a query ever tried to write.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from chdb._exceptions import ChdbError
from clickhouse_connect.driver.exceptions import DatabaseError
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.store.clickhouse import ROWS_FORMAT
from cost_api.store.clickhouse_http import ClickHouseHttpDatabase
from cost_api.store.database import ChdbDatabase, Database, PostgresDatabase, SqliteDatabase
from cost_api.web.app import create_app
from cost_api.web.service import build_service

from ..logdb import LogDB, PostgresLog, Row, at

ROOT = Path(__file__).parents[2]
WRITES = [
    "INSERT INTO request_log (created_at, provider, model, endpoint)"
    " SELECT created_at, provider, model, endpoint FROM request_log",
    "UPDATE request_log SET model = 'changed' WHERE true",
    "DELETE FROM request_log WHERE true",
    "CREATE TABLE intruder (x INTEGER)",
    "DROP TABLE request_log",
]


@asynccontextmanager
async def api_connection(db: Database) -> AsyncIterator[Any]:
    """A raw connection from the API's own pool, opened the way its queries open theirs."""
    if isinstance(db, SqliteDatabase):
        holder = await db._acquire()
        try:
            yield holder.conn
        finally:
            db._release(holder, healthy=True)
    elif isinstance(db, ChdbDatabase):
        yield _ChdbWriter(db)
    elif isinstance(db, ClickHouseHttpDatabase):
        yield _HttpWriter(db)
    else:
        assert isinstance(db, PostgresDatabase)
        pool = await db._get_pool()
        async with pool.acquire() as conn:
            yield conn


class _ChdbWriter:
    """chDB's connection as the API's queries use it: `execute` runs a statement as `_fetch` does."""

    def __init__(self, db: ChdbDatabase) -> None:
        self.db = db

    async def execute(self, sql: str) -> None:
        await asyncio.to_thread(self.db._run, self.db.statement(sql, "test", time.monotonic() + 5, {}), {}, ROWS_FORMAT)


class _HttpWriter:
    """The HTTP client as the API's queries use it: `execute` sends a statement as `_fetch` does."""

    def __init__(self, db: ClickHouseHttpDatabase) -> None:
        self.db = db

    async def execute(self, sql: str) -> None:
        client = await self.db._get_client()
        await client.raw_query(sql, settings=self.db._settings(time.monotonic() + 5, {}))


async def test_the_api_connections_cannot_write(log: LogDB) -> None:
    await log.insert([Row(at("2026-11-19T10:00:00Z"), prompt_tokens=10)])
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    refused = {
        "sqlite": sqlite3.OperationalError,
        "postgres": asyncpg.ReadOnlySQLTransactionError,
        "clickhouse": DatabaseError if log.url.startswith("clickhouse:") else ChdbError,
    }[log.dialect]
    try:
        for sql in WRITES:
            async with api_connection(service.db) as conn:
                with pytest.raises(refused, match=r"(?i)readonly|read-only"):
                    await conn.execute(sql)
        if log.dialect == "sqlite":  # switching query_only off does not help: the file is open mode=ro
            async with api_connection(service.db) as conn:
                await conn.execute("PRAGMA query_only = OFF")
                with pytest.raises(sqlite3.OperationalError, match="readonly"):
                    await conn.execute(WRITES[0])
        # the log is untouched and the API still reads it
        assert (await service.aggregator.freshness()).latest == at("2026-11-19T10:00:00Z")
    finally:
        await service.close()


def _reader_sql(database: str) -> str:
    """The read-only role exactly as docs/deployment.md creates it, for `database`."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"```sql\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md lost its ```sql block"
    return block.group(1).replace("DATABASE gateway", f'DATABASE "{database}"')


@pytest.fixture
async def pg_log(pg_cluster: Any) -> AsyncIterator[PostgresLog]:
    log = await PostgresLog.create(pg_cluster)
    yield log
    await log.drop()


async def test_the_documented_role_reads_and_cannot_write(pg_log: PostgresLog) -> None:
    """The role of docs/deployment.md: the API works with it, and even a session that turns its
    read-only default off cannot write (the role has SELECT and nothing else)."""
    log = pg_log
    await log.insert([Row(at("2026-11-19T10:00:00Z"), prompt_tokens=1_000_000)])
    admin = await asyncpg.connect(log.url)
    try:
        await admin.execute("DROP OWNED BY cost_api_reader" if await _role_exists(admin) else "SELECT 1")
        await admin.execute("DROP ROLE IF EXISTS cost_api_reader")
        await admin.execute(_reader_sql(log.name))
        reader_url = log.url.replace("postgresql://postgres@", "postgresql://cost_api_reader:change-me@")

        reader = await asyncpg.connect(reader_url)
        try:
            await reader.execute("SET default_transaction_read_only = off")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(WRITES[0])
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute("CREATE TABLE intruder (x INTEGER)")
        finally:
            await reader.close()

        app = create_app(load_settings(environ={}, overrides={"database_url": reader_url}))
        async with AsyncTestClient(app=app) as client:
            body = (await client.get("/v1/summary", params={"to": "2026-11-20T00:00:00Z"})).json()
            assert body["spend"] == 0.15  # 1M gpt-4o-mini prompt tokens at $0.15
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await admin.execute("DROP OWNED BY cost_api_reader" if await _role_exists(admin) else "SELECT 1")
        await admin.execute("DROP ROLE IF EXISTS cost_api_reader")
        await admin.close()


async def _role_exists(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'cost_api_reader'"))
