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
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiosqlite
import asyncpg

from .dburl import DatabaseURL
from .metrics import time_query
from .queries import LogColumns, Registry

Row = tuple[Any, ...]
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached (503)."""


class QueryTimeout(Exception):
    """A query ran past `query_timeout` and was cancelled (504)."""


class SchemaMissing(Exception):
    """The database is reachable but has no `request_log` table."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How long a SQLite reader waits on a lock (a writer in rollback-journal mode holding EXCLUSIVE)
# before answering 503: commits take milliseconds, a lock held longer is an outage, not a queue.
SQLITE_BUSY_WAIT = 1.0


def epoch_ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


class Database(ABC):
    dialect: str
    # Bumped when another database answers behind the same URL (a SQLite file replaced by a new one):
    # whatever was derived from the old one (the closed-hour rollups) must be read again.
    generation = 0

    def __init__(self, registry: Registry, timeout: float) -> None:
        self.registry = registry
        self.timeout = timeout
        self.log_columns: LogColumns | None = None  # the optional columns the queries read
        self._columns_of: int | None = None  # the generation they were read from
        self._columns_lock = asyncio.Lock()

    async def fetch(self, name: str, **params: Any) -> list[Row]:
        """Run the named query (timed by name and outcome for /metrics)."""
        if self._columns_of != self.generation and self.registry.reads_log(name):
            await self.read_log_columns()
        with time_query(name):
            return await self._fetch(name, **params)

    async def read_log_columns(self) -> LogColumns:
        """Which optional columns the log has, read once (again for another database behind the URL,
        or while the table is missing), and the queries bound to read them (queries.LogColumns)."""
        async with self._columns_lock:
            if self.log_columns is None or self._columns_of != self.generation:
                generation = self.generation
                columns = LogColumns.of(row[0] for row in await self.fetch("log_columns"))
                self.registry = self.registry.bind(columns.table_expression(self.dialect))
                self.log_columns = columns
                self._columns_of = generation if columns.table_found else None
        return self.log_columns

    @abstractmethod
    async def _fetch(self, name: str, **params: Any) -> list[Row]: ...

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
        self._closed = False
        self._closing: set[asyncio.Future[None]] = set()
        self._seen: tuple[int, int] | None = None  # the file's (device, inode) when last opened

    async def _open(self) -> _SqliteConn:
        if not self.path.exists():
            raise DatabaseUnavailable(f"SQLite database {self.path} does not exist")
        holder = _SqliteConn()
        opening = asyncio.ensure_future(self._connect(holder))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Cancelled while connecting (a request or the rollups task gave up): let the connection
            # finish opening and close it, or its thread outlives the service.
            with contextlib.suppress(Exception):
                await (await asyncio.wait_for(opening, self.timeout)).close()
            raise

    async def _connect(self, holder: _SqliteConn) -> _SqliteConn:
        try:
            conn = await aiosqlite.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                check_same_thread=False,
                timeout=min(self.timeout, SQLITE_BUSY_WAIT),
            )
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            await conn.set_progress_handler(holder.over_time, 10_000)
            await conn.execute("PRAGMA query_only = ON")
        except BaseException:
            await conn.close()
            raise
        holder.conn = conn
        holder.inode = _inode(self.path)
        return holder

    async def _acquire(self) -> _SqliteConn:
        current = _inode(self.path)
        if current is not None and current != self._seen:
            self.generation += self._seen is not None
            self._seen = current
        if self._pool.empty() and self._opened < self._size:
            self._opened += 1
            try:
                return await self._open()
            except BaseException:
                self._opened -= 1
                raise
        holder = await self._pool.get()
        current = _inode(self.path)  # again: the wait for a connection may have been long
        if holder.inode != current:  # the file was replaced (or removed): reopen
            # Close every idle connection to the old file first: the new file's readers share the
            # -wal/-shm names with it, and none of ours should keep the old file's index in use.
            stale, kept = [holder], []
            while not self._pool.empty():
                other = self._pool.get_nowait()
                (stale if other.inode != current else kept).append(other)
            for other in kept:
                self._pool.put_nowait(other)
            for old in stale:
                await old.close()
                self._opened -= 1
            return await self._acquire()
        return holder

    async def _fetch(self, name: str, **params: Any) -> list[Row]:
        query = self.registry[name]
        args = [_sqlite_value(v) for v in query.bind(params)]
        holder = await self._acquire()
        holder.deadline = time.monotonic() + self.timeout
        running = asyncio.ensure_future(holder.conn.execute_fetchall(query.sql, args))
        healthy = True
        try:
            return [tuple(r) for r in await asyncio.shield(running)]
        except asyncio.CancelledError:
            if not running.done():
                # The request gave up (a sibling query failed): the progress handler stops this query
                # at its next tick; wait for that, so that a cancelled request leaves nothing running.
                holder.deadline = 0.0
                try:
                    await asyncio.wait({running})
                except asyncio.CancelledError:  # cancelled again: requeue once the query has stopped
                    running.add_done_callback(lambda done: self._requeue(holder, done))
                    raise
            raise
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if message == "interrupted":
                raise QueryTimeout(f"query {name} ran past {self.timeout:g}s and was cancelled") from exc
            if any(s in message for s in ("locked", "busy", "unable to open", "disk I/O")):
                healthy = "unable to open" not in message and "disk I/O" not in message
                raise DatabaseUnavailable(f"SQLite database is unavailable: {exc}") from exc
            healthy = "no such" not in message
            raise
        except sqlite3.DatabaseError as exc:  # replaced by something that is not a (sound) database
            healthy = False
            raise DatabaseUnavailable(f"SQLite database {self.path} cannot be read: {exc}") from exc
        finally:
            if running.done():
                if not running.cancelled():
                    running.exception()  # retrieved (an interrupted query is expected after a cancel)
                if healthy and not self._closed:
                    self._pool.put_nowait(holder)
                else:  # broken, or the database was closed while this query ran
                    await holder.close()
                    self._opened -= 1

    def _requeue(self, holder: _SqliteConn, done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: an interrupted query is the expected end here
        if self._closed:
            closing = asyncio.ensure_future(holder.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        else:
            self._pool.put_nowait(holder)

    async def close(self) -> None:
        self._closed = True
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

    async def _fetch(self, name: str, **params: Any) -> list[Row]:
        query = self.registry[name]
        args = query.bind(params)
        try:
            # not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
            # pool is handed over, and a cancelled task (the rollups at shutdown) would run on
            async with asyncio.timeout(self.timeout):
                pool = await self._get_pool()
            async with asyncio.timeout(self.timeout + 2):
                async with pool.acquire() as conn:
                    rows = await conn.fetch(query.sql, *args)
        except asyncpg.QueryCanceledError as exc:
            raise QueryTimeout(f"query {name} ran past {self.timeout:g}s and was cancelled") from exc
        except (
            OSError,
            asyncpg.OperatorInterventionError,  # shutting down, crashed, starting up (57P0x)
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
    cls: type[SqliteDatabase | PostgresDatabase] = SqliteDatabase if url.dialect == "sqlite" else PostgresDatabase
    return cls(url, registry, timeout, pool_size)


async def gather_or_cancel(*aws: Awaitable[T]) -> list[T]:
    """`asyncio.gather`, except that the first failure (a 504, a 503) cancels the other queries and
    waits until they have stopped before it is raised: a failed request leaves no query running."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
