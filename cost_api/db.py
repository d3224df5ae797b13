"""The database layer: read-only connections, one `fetch(name, **params)` for every query.

SQLite is opened with `mode=ro`, Postgres connections run read-only transactions from a pool.
Every query runs under `query_timeout` (SQLite: the progress handler; Postgres:
`statement_timeout`). Parameters are plain Python values; each driver gets them in its own form
(SQLite: epoch milliseconds for datetimes, JSON text for lists; Postgres: native types).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
import asyncpg

from .dburl import DatabaseURL
from .queries import Registry

Row = tuple[Any, ...]


class DatabaseUnavailable(Exception):
    """The database cannot be reached (503)."""


class QueryTimeout(Exception):
    """A query ran past `query_timeout` and was cancelled (504)."""


class SchemaMissing(Exception):
    """The database is reachable but has no `request_log` table."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


class Database(ABC):
    dialect: str

    def __init__(self, registry: Registry, timeout: float) -> None:
        self.registry = registry
        self.timeout = timeout

    @abstractmethod
    async def fetch(self, name: str, **params: Any) -> list[Row]: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def check_schema(self) -> None:
        """Raise SchemaMissing (or DatabaseUnavailable) unless `request_log` can be read."""
        try:
            await self.fetch("schema_check")
        except (DatabaseUnavailable, QueryTimeout):
            raise
        except Exception as exc:  # the driver's "no such table"/"undefined table"
            raise SchemaMissing(f"the database has no readable request_log table ({exc})") from exc


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, url: DatabaseURL, registry: Registry, timeout: float, pool_size: int) -> None:
        super().__init__(registry, timeout)
        assert url.path is not None
        self.path = url.path.resolve()
        self._pool: asyncio.Queue[_SqliteConn] = asyncio.Queue()
        self._size = pool_size
        self._opened = 0

    async def _open(self) -> _SqliteConn:
        if not self.path.exists():
            raise DatabaseUnavailable(f"SQLite database {self.path} does not exist")
        holder = _SqliteConn()
        try:
            conn = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        await conn.set_progress_handler(holder.over_time, 10_000)
        await conn.execute("PRAGMA query_only = ON")
        holder.conn = conn
        holder.inode = _inode(self.path)
        return holder

    async def _acquire(self) -> _SqliteConn:
        if self._pool.empty() and self._opened < self._size:
            self._opened += 1
            try:
                return await self._open()
            except BaseException:
                self._opened -= 1
                raise
        holder = await self._pool.get()
        if holder.inode != _inode(self.path):  # the file was replaced: reopen
            await holder.close()
            self._opened -= 1
            return await self._acquire()
        return holder

    async def fetch(self, name: str, **params: Any) -> list[Row]:
        query = self.registry[name]
        args = [_sqlite_value(v) for v in query.bind(params)]
        holder = await self._acquire()
        holder.deadline = time.monotonic() + self.timeout
        healthy = True
        try:
            return [tuple(r) for r in await holder.conn.execute_fetchall(query.sql, args)]
        except sqlite3.OperationalError as exc:
            if str(exc) == "interrupted":
                raise QueryTimeout(f"query {name} ran past {self.timeout:g}s and was cancelled") from exc
            if "locked" in str(exc) or "busy" in str(exc):
                raise DatabaseUnavailable(f"SQLite database is busy: {exc}") from exc
            healthy = "no such" not in str(exc)
            raise
        finally:
            if healthy:
                self._pool.put_nowait(holder)
            else:
                await holder.close()
                self._opened -= 1

    async def close(self) -> None:
        while not self._pool.empty():
            await self._pool.get_nowait().close()
        self._opened = 0


class _SqliteConn:
    def __init__(self) -> None:
        self.conn: aiosqlite.Connection
        self.deadline = float("inf")
        self.inode: tuple[int, int] | None = None

    def over_time(self) -> int:
        return 1 if time.monotonic() > self.deadline else 0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()


def _inode(path: os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return int(value)
    return value


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: DatabaseURL, registry: Registry, timeout: float, pool_size: int) -> None:
        super().__init__(registry, timeout)
        self.dsn = url.dsn
        self._size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=self._size,
                    timeout=self.timeout,
                    server_settings={
                        "default_transaction_read_only": "on",
                        "statement_timeout": str(int(self.timeout * 1000)),
                        "application_name": "cost-api",
                    },
                )
            return self._pool

    async def fetch(self, name: str, **params: Any) -> list[Row]:
        query = self.registry[name]
        args = query.bind(params)
        try:
            pool = await asyncio.wait_for(self._get_pool(), self.timeout)
            async with asyncio.timeout(self.timeout + 2):
                async with pool.acquire() as conn:
                    rows = await conn.fetch(query.sql, *args)
        except asyncpg.QueryCanceledError as exc:
            raise QueryTimeout(f"query {name} ran past {self.timeout:g}s and was cancelled") from exc
        except (
            OSError,
            TimeoutError,
            asyncpg.CannotConnectNowError,
            asyncpg.ConnectionDoesNotExistError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
        ) as exc:
            raise DatabaseUnavailable(f"Postgres is unavailable: {exc or type(exc).__name__}") from exc
        return [tuple(r) for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def open_database(url: DatabaseURL, registry: Registry, *, timeout: float, pool_size: int) -> Database:
    cls: type[SqliteDatabase | PostgresDatabase] = (
        SqliteDatabase if url.dialect == "sqlite" else PostgresDatabase
    )
    return cls(url, registry, timeout, pool_size)


def as_list(values: Sequence[str] | None) -> list[str] | None:
    """A repeatable filter: None when absent (the SQL reads NULL as 'no filter')."""
    return list(values) if values else None
