"""The database layer: read-only connections, one `fetch(name, **params)` for every query.

SQLite is opened with `mode=ro`, Postgres connections run read-only transactions from a pool.
Every query runs under `query_timeout`, and a query of an HTTP request only under what is left of
that request's deadline (`request_deadline`, set by limits.DeadlineMiddleware): one budget for all
the queries of an answer, however many it runs in a row. SQLite stops a query through its progress
handler; Postgres through the driver's cancel request (with `statement_timeout` behind it).
Parameters are plain Python values; each driver gets them in its own form (SQLite: epoch
milliseconds for datetimes, JSON text for lists; Postgres: native types).
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import json
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import aiosqlite
import asyncpg

from cost_api.store.errors import DatabaseUnavailable, QueryTimeout, SchemaMissing
from cost_api.store.queries import LogColumns, Registry
from cost_api.store.timing import time_query
from cost_api.store.url import DatabaseURL
from cost_api.windows import epoch_ms, from_ms

Row = tuple[Any, ...]


# The request-log contract (docs/request-log.md): every column the queries read, and which hold text.
LOG_COLUMNS = (
    "id",
    "created_at",
    "request_id",
    "provider",
    "model",
    "endpoint",
    "token_id",
    "status_code",
    "streamed",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_hit",
    "prompt_tokens_avoided",
    "completion_tokens_avoided",
    "latency_ms",
    "cache_key",
)
TEXT_COLUMNS = frozenset({"request_id", "provider", "model", "endpoint", "token_id", "cache_key"})


# How long past a query's deadline a Postgres server that stops answering (even the cancel request)
# is waited for before the query is given up as timed out; and the least time a query is given.
_UNRESPONSIVE = 2.0
_TICK = 0.001
# How long a SQLite reader waits on a lock (a writer in rollback-journal mode holding EXCLUSIVE)
# before answering 503: commits take milliseconds, a lock held longer is an outage, not a queue.
SQLITE_BUSY_WAIT = 1.0


# The deadline (time.monotonic()) of the HTTP request whose handler runs in this context; None
# outside a request (the rollups, the budgets, start-up): each query then gets `query_timeout`.
_REQUEST_DEADLINE: ContextVar[float | None] = ContextVar("request_deadline", default=None)


@contextlib.contextmanager
def request_deadline(at: float) -> Iterator[None]:
    """Run what starts in this block (and the tasks it creates) under one deadline, `time.monotonic()`."""
    token = _REQUEST_DEADLINE.set(at)
    try:
        yield
    finally:
        _REQUEST_DEADLINE.reset(token)


class Database(ABC):
    dialect: str
    # Bumped when another database answers behind the same URL (a SQLite file replaced by a new one):
    # whatever was derived from the old one (the closed-hour rollups) must be read again.
    generation = 0

    def __init__(self, registry: Registry, timeout: float) -> None:
        self.registry = registry
        self.timeout = timeout
        self._schema_fault: str | None = None  # what schema_problem found, until it finds nothing
        self.log_columns: LogColumns | None = None  # the optional columns the queries read
        self._columns_of: int | None = None  # the generation they were read from
        self._columns_lock = asyncio.Lock()

    async def fetch(self, name: str, **params: Any) -> list[Row]:
        """Run the named query (timed by name and outcome for /metrics).

        A query that fails for a reason of its own is checked against the log's schema: when that is
        what is wrong (a table dropped, a column renamed or retyped under the service), the answer is a
        SchemaMissing naming it, not the driver's error; and while the schema is known to be wrong
        (from such a failure, /readyz or the start-up check), every query checks it again first
        instead of running on a log it cannot read right. When the schema is sound, it may have been
        mended (or the file swapped) since the failed query started: that query runs once more, afresh."""
        with time_query(name):
            if self._schema_fault is not None:
                await self._raise_schema_fault()
            if self._columns_of != self.generation and self.registry.reads_log(name):
                await self.read_log_columns()
            try:
                return await self._fetch(name, self._deadline(name), **params)
            except (DatabaseUnavailable, QueryTimeout):
                raise
            except Exception as exc:
                await self._forget_prepared()
                await self._raise_schema_fault(exc)
                if self.registry.reads_log(name):  # an optional column may have come or gone
                    self._columns_of = None
                    await self.read_log_columns()
                return await self._fetch(name, self._deadline(name), **params)

    async def read_log_columns(self) -> LogColumns:
        """Which optional columns the log has, read once (again for another database behind the URL,
        after a query failed, or while the table is missing), and the queries bound to read them
        (queries.LogColumns)."""
        async with self._columns_lock:
            if self.log_columns is None or self._columns_of != self.generation:
                generation = self.generation
                with time_query("log_columns"):
                    found = await self._fetch("log_columns", self._deadline("log_columns"))
                columns = LogColumns.of(row[0] for row in found)
                self.registry = self.registry.bind(columns.table_expression(self.dialect))
                self.log_columns = columns
                self._columns_of = generation if columns.table_found else None
        return self.log_columns

    async def _raise_schema_fault(self, cause: Exception | None = None) -> None:
        problem = await self.schema_problem()
        if problem is not None:
            raise SchemaMissing(problem) from cause

    @abstractmethod
    async def _forget_prepared(self) -> None:
        """Drop what the driver prepared for the schema as it was."""

    def _deadline(self, name: str) -> float:
        """When this query must have ended: `query_timeout` from now, or the request's deadline if
        sooner. A request past its deadline runs no further query."""
        deadline = time.monotonic() + self.timeout
        request = _REQUEST_DEADLINE.get()
        if request is None or request >= deadline:
            return deadline
        if request <= time.monotonic():
            raise QueryTimeout(f"query {name} was not run: the request used up its {self.timeout:g}s (query_timeout)")
        return request

    def _timed_out(self, name: str) -> QueryTimeout:
        if _REQUEST_DEADLINE.get() is None:
            return QueryTimeout(f"query {name} ran past {self.timeout:g}s and was cancelled")
        return QueryTimeout(f"query {name} ran past the request's {self.timeout:g}s (query_timeout) and was cancelled")

    def _waited(self, name: str) -> QueryTimeout:
        """The deadline came while this query waited for a connection (busy with other queries, or
        still being opened)."""
        return QueryTimeout(f"{self._timed_out(name)} while it waited for a database connection")

    @abstractmethod
    async def _fetch(self, name: str, deadline: float, **params: Any) -> list[Row]: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def check_schema(self) -> None:
        """Raise SchemaMissing (or DatabaseUnavailable) unless `request_log` can be read: every column
        of the contract present and of a type the queries read, and the table readable."""
        await self._raise_schema_fault()
        try:
            await self.fetch("schema_check")
        except (DatabaseUnavailable, QueryTimeout):
            raise
        except Exception as exc:  # present but not readable: no privilege on it, say
            raise SchemaMissing(f"the database has no readable request_log table ({exc})") from exc

    async def schema_problem(self) -> str | None:
        """What keeps the queries from reading `request_log`, naming the table, the columns missing, or
        each column of the wrong type and the type expected; None when there is nothing. Remembered
        until the next check."""
        with time_query("log_columns"):
            found = dict(await self._fetch("log_columns", self._deadline("log_columns")))
        self._schema_fault = self._fault_in(found)
        return self._schema_fault

    def _fault_in(self, found: dict[str, str]) -> str | None:
        if not found:
            return "the database has no request_log table (or view)"
        missing = [column for column in LOG_COLUMNS if column not in found]
        if missing:
            return f"request_log has no column {', '.join(missing)} (see docs/request-log.md)"
        wrong = []
        for column in LOG_COLUMNS:
            expected = self._unreadable(column, found[column] or "")
            if expected is not None:
                wrong.append(f"request_log.{column} is {found[column] or 'untyped'}; expected {expected}")
        return "; ".join(wrong) or None

    async def replica(self) -> tuple[bool, datetime | None]:
        """Whether the database is a hot standby (a replica in recovery), and when the last transaction
        it replayed committed on the primary: how far behind it may be."""
        ((recovering, replayed),) = await self.fetch("recovery")
        return bool(recovering), None if replayed is None else from_ms(replayed)

    @abstractmethod
    def _unreadable(self, column: str, declared: str) -> str | None:
        """None when the queries read `column` of type `declared` as they expect, else the type expected."""


class SqliteDatabase(Database):
    dialect = "sqlite"

    async def _forget_prepared(self) -> None:
        """Nothing to drop: SQLite prepares a statement again when the schema changed, and a connection
        whose query found no such table or column is closed (see `_fetch`)."""

    def _unreadable(self, column: str, declared: str) -> str | None:
        """By the declared type's affinity (what SQLite converts a stored value to): a number column
        with TEXT affinity stores numbers as text, which compare with numbers as text; a text column
        with a numeric affinity turns an id like '123' into a number. A view's computed column has
        no declared type and is taken as it comes."""
        affinity = _affinity(declared)
        if column in TEXT_COLUMNS:
            return None if affinity in ("TEXT", "BLOB") else "TEXT"
        if affinity != "TEXT":
            return None
        return "INTEGER (epoch milliseconds)" if column == "created_at" else "INTEGER"

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
            await asyncio.wait([self._discard(old) for old in stale])
            return await self._acquire()
        return holder

    async def _fetch(self, name: str, deadline: float, **params: Any) -> list[Row]:
        query = self.registry[name]
        args = [_sqlite_value(v) for v in query.bind(params)]
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                holder = await self._acquire()
        except TimeoutError as exc:  # opening a SQLite file takes no time: all connections were busy
            raise self._waited(name) from exc
        holder.deadline = deadline
        running = asyncio.ensure_future(holder.conn.execute_fetchall(query.sql, args))
        healthy = True
        try:
            return [tuple(r) for r in await asyncio.shield(running)]
        except asyncio.CancelledError:
            if not running.done():
                # The request gave up (its client left, or a sibling query failed): the progress handler
                # stops this query at its next tick; wait for that, so that a cancelled request leaves
                # nothing running.
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
                raise self._timed_out(name) from exc
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
                elif self._closed:  # the database was closed while this query ran
                    self._close_later(holder)
                else:  # broken
                    self._discard(holder)

    def _requeue(self, holder: _SqliteConn, done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: an interrupted query is the expected end here
        if self._closed:
            self._close_later(holder)
        else:
            self._pool.put_nowait(holder)

    def _discard(self, holder: _SqliteConn) -> asyncio.Future[None]:
        """Take a connection out of the pool for good. Counted out at once and closed in a task of its
        own, so that a cancellation arriving meanwhile (a client gone, a deadline) cannot leave the pool
        counting a connection that no longer serves: enough such and every query would wait for one."""
        self._opened -= 1
        return self._close_later(holder)

    def _close_later(self, holder: _SqliteConn) -> asyncio.Future[None]:
        closing = asyncio.ensure_future(holder.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        return closing

    async def close(self) -> None:
        self._closed = True
        while not self._pool.empty():
            await self._pool.get_nowait().close()
        self._opened = 0
        await asyncio.gather(*self._closing)


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


def _affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (https://sqlite.org/datatype3.html, 3.1)."""
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper:
        return "BLOB"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


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

    def _unreadable(self, column: str, declared: str) -> str | None:
        """Any integer width and numeric are read as numbers (numeric through the codec set up in
        `_read_numeric`); timestamps without a zone and non-boolean cache hits are not: the queries
        compare created_at with instants and test cache_hit as a condition."""
        if column == "created_at":
            return None if declared == "timestamp with time zone" else "timestamp with time zone (timestamptz)"
        if column == "cache_hit":
            return None if declared == "boolean" else "boolean"
        if column in TEXT_COLUMNS:
            return None if declared in _PG_TEXT else "text"
        if column == "streamed":  # only shown, as true/false
            return None if declared == "boolean" or declared in _PG_NUMBER else "boolean"
        return None if declared in _PG_NUMBER else "an integer type (integer, bigint) or numeric"

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
                    init=_read_numeric,
                    server_settings={
                        "default_transaction_read_only": "on",
                        "statement_timeout": str(int(self.timeout * 1000)),
                        "application_name": "cost-api",
                    },
                )
            return self._pool

    async def _fetch(self, name: str, deadline: float, **params: Any) -> list[Row]:
        query = self.registry[name]
        call = _Call()
        running = asyncio.ensure_future(self._call(call, query.sql, query.bind(params), deadline))
        running.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            # The request gave up (its client left, or a sibling query failed). A query in flight is
            # cancelled through the driver, which hands its connection back only once the server has
            # stopped the query; one that has ended already is left to hand its connection back. Either
            # way, wait for that: a cancelled request leaves nothing running.
            if not call.ended:
                running.cancel()
            await asyncio.wait({running})
            raise
        except asyncpg.QueryCanceledError as exc:
            raise self._timed_out(name) from exc
        except TimeoutError as exc:
            if call.connected:  # the query ran out of time (or the server stopped answering)
                raise self._timed_out(name) from exc
            if self._pool is None or self._pool.get_size() == 0:  # not one connection could be opened
                raise DatabaseUnavailable(f"Postgres is unavailable: no connection within {self.timeout:g}s") from exc
            raise self._waited(name) from exc
        except _UNAVAILABLE as exc:
            if isinstance(exc, ValueError):  # an argument the driver cannot send: not the connection's state
                raise
            raise DatabaseUnavailable(f"Postgres is unavailable: {exc or type(exc).__name__}") from exc

    async def _call(self, call: _Call, sql: str, args: list[Any], deadline: float) -> list[Row]:
        # not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the
        # pool is handed over, and a cancelled task (the rollups at shutdown) would run on
        async with asyncio.timeout(deadline - time.monotonic()) as limit:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                # From here the driver's own timeout stops the query: it sends the server a cancel
                # request, and hands the connection back only once the server has stopped the query.
                # The outer limit is left a margin, only for a server that stops answering.
                call.connected = True
                limit.reschedule(asyncio.get_running_loop().time() + deadline - time.monotonic() + _UNRESPONSIVE)
                try:
                    rows = await conn.fetch(sql, *args, timeout=max(deadline - time.monotonic(), _TICK))
                finally:
                    call.ended = True
        return [tuple(r) for r in rows]

    async def _forget_prepared(self) -> None:
        """asyncpg keeps each connection's prepared statements with their parameter types: one that
        predates a column's new type fails in the driver itself, before the server could say so. New
        connections prepare anew; the ones in use are closed once released."""
        if self._pool is not None:
            await self._pool.expire_connections()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


_PG_NUMBER = frozenset({"smallint", "integer", "bigint", "numeric"})
_PG_TEXT = frozenset({"text", "character varying", "character"})


async def _read_numeric(conn: asyncpg.Connection) -> None:
    """Read numeric values as numbers, not as Decimal (which answers would carry as JSON strings):
    token columns declared numeric, and every sum of a bigint column, which Postgres makes numeric."""
    await conn.set_type_codec("numeric", schema="pg_catalog", encoder=str, decoder=_number, format="text")


def _number(text: str) -> int | float:
    value = decimal.Decimal(text)
    return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)


# What a Postgres connection raises when the database cannot answer now, told apart by type (never by
# message): all are 503, worth a retry. A server that is away, refusing, shutting down, crashed or
# starting up; a connection lost, closed or busy, or caught by a shutdown in the middle of an
# operation ("cannot switch to state …"); and a query the server rolled back to let something else
# through (a hot standby's conflict with recovery, a deadlock). InterfaceError's ValueError kinds (an
# argument it cannot encode, a bad option) are not about the connection and are excluded above.
_UNAVAILABLE = (
    OSError,
    asyncpg.OperatorInterventionError,  # 57P0x: admin or crash shutdown, cannot connect now, database dropped
    asyncpg.PostgresConnectionError,  # 08xxx, and the driver's "connection was closed in the middle of operation"
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.InternalClientError,  # the protocol's state machine: "cannot switch to state …"
    asyncpg.TransactionRollbackError,  # 40xxx: serialization failure (conflict with recovery), deadlock
)


class _Call:
    """How far one Postgres query has got: connected (it holds a connection), ended (the server is
    done with it; its connection is being handed back)."""

    def __init__(self) -> None:
        self.connected = False
        self.ended = False


def _retrieve(done: asyncio.Future[Any]) -> None:
    """Mark a query task's exception as seen: whoever awaited it may have been cancelled meanwhile."""
    if not done.cancelled():
        done.exception()


def open_database(url: DatabaseURL, registry: Registry, *, timeout: float, pool_size: int) -> Database:
    cls: type[SqliteDatabase | PostgresDatabase] = SqliteDatabase if url.dialect == "sqlite" else PostgresDatabase
    return cls(url, registry, timeout, pool_size)
