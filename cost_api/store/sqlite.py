"""SQLite: a file opened read-only (`mode=ro`), a small pool of aiosqlite connections to it.

A query is stopped at its deadline by the connection's progress handler. What a driver error means is
told by its result code (`sqlite3.Error.sqlite_errorcode`), never by its message: a lock held by a
writer (BUSY, LOCKED) is a 503 after at most `SQLITE_BUSY_WAIT`; a file that cannot be opened or read
(CANTOPEN, IOERR, and whatever is not a sound database: NOTADB, CORRUPT) a 503 too, and the connection
is dropped; an interrupted query (INTERRUPT) a 504; a statement that cannot be prepared against the
schema (ERROR: no such table or column) is `NotInSchema`. The file is watched by its (device, inode): one
replaced under the name is another database (`generation`), whose connections replace the old ones.
Parameters are plain Python values, sent as SQLite stores them: epoch milliseconds for datetimes,
JSON text for lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, cast

import aiosqlite

from cost_api.store.base import TEXT_COLUMNS, Database
from cost_api.store.errors import DatabaseUnavailable, NotInSchema
from cost_api.store.queries import Registry
from cost_api.store.result import Row, Rows
from cost_api.store.url import DatabaseURL
from cost_api.windows import epoch_ms

# How long a SQLite reader waits on a lock (a writer in rollback-journal mode holding EXCLUSIVE)
# before answering 503: commits take milliseconds, a lock held longer is an outage, not a queue.
SQLITE_BUSY_WAIT = 1.0

# What a failed query's primary result code (the low byte of the extended code) means.
# The database cannot be read now: a writer holds a lock (503; the connection is sound) ...
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# ... or the file cannot be opened or read (503; the connection is dropped, a new one opens the file
# as it is then: back, replaced, or still missing).
_UNREADABLE = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR})
# The statement could not be prepared against the schema as this connection knows it (no such table
# or column, after a migration or a swap; `NotInSchema`): the connection is dropped, the next one reads
# the schema anew.
_NOT_PREPARED = sqlite3.SQLITE_ERROR


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
        self._pool: asyncio.Queue[_SqliteConn] = asyncio.Queue()  # the idle connections
        # One per connection in use: a query waits for a slot, not for a connection to come back, so
        # that one dropped (its file broken or replaced) lets a waiting query open a new one at once.
        self._slots = asyncio.Semaphore(pool_size)
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
        # the file's identity before it is opened: replaced while it opens, the connection reads the old
        # file or the new, and is marked as of the old (reopened at its next use, never kept as current)
        inode = _inode(self.path)
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
            await conn.create_function("key_hash", 1, key_hash, deterministic=True)
        except BaseException:
            await conn.close()
            raise
        holder.conn = conn
        holder.inode = inode
        return holder

    async def _acquire(self) -> _SqliteConn:
        self._watch()
        await self._slots.acquire()
        try:
            return await self._checkout()
        except BaseException:
            self._slots.release()
            raise

    def _watch(self) -> tuple[int, int] | None:
        """The file's (device, inode) now; another one than last seen is another database."""
        current = _inode(self.path)
        if current is not None and current != self._seen:
            self.generation += self._seen is not None
            self._seen = current
        return current

    async def _checkout(self) -> _SqliteConn:
        """An idle connection to the file as it is now, or a new one (the caller holds a slot)."""
        if self._pool.empty():
            self._opened += 1
            try:
                return await self._open()
            except BaseException:
                self._opened -= 1
                raise
        holder = self._pool.get_nowait()
        current = _inode(self.path)  # again: the wait for a slot may have been long
        if holder.inode != current:  # the file was replaced (or removed): reopen
            # Close every idle connection to the old file first: the new file's readers share the
            # -wal/-shm names with it, and none of ours should keep the old file's index in use.
            stale, kept = [holder], list[_SqliteConn]()
            while not self._pool.empty():
                other = self._pool.get_nowait()
                (stale if other.inode != current else kept).append(other)
            for other in kept:
                self._pool.put_nowait(other)
            await asyncio.wait([self._drop(old) for old in stale])
            self._watch()
            return await self._checkout()
        return holder

    async def _fetch(self, name: str, deadline: float, **params: Any) -> Rows:
        query = self.registry[name]
        args = [_sqlite_value(v) for v in query.bind(params)]
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                holder = await self._acquire()
        except TimeoutError as exc:  # opening a SQLite file takes no time: all connections were busy
            raise self._waited(name) from exc
        holder.deadline = deadline
        # no row factory: the rows are plain tuples, not the sqlite3.Row aiosqlite's annotation names
        fetched = cast("Coroutine[Any, Any, list[Row]]", holder.conn.execute_fetchall(query.sql, args))
        running = asyncio.ensure_future(fetched)
        healthy = True
        try:
            # the rows are tuples already (no row factory): taken as they are, named by the query
            return Rows(await asyncio.shield(running), query.columns)
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
            code = _primary(exc)
            if code == sqlite3.SQLITE_INTERRUPT:  # by the progress handler: past the deadline
                raise self._timed_out(name) from exc
            if code in _BUSY or code in _UNREADABLE:
                healthy = code in _BUSY
                raise DatabaseUnavailable(f"SQLite database is unavailable: {exc}") from exc
            if code == _NOT_PREPARED:
                healthy = False
                raise NotInSchema(f"query {name} does not fit the database's schema: {exc}") from exc
            raise
        except sqlite3.DatabaseError as exc:  # replaced by something that is not a (sound) database
            healthy = False
            raise DatabaseUnavailable(f"SQLite database {self.path} cannot be read: {exc}") from exc
        finally:
            if running.done():
                if not running.cancelled():
                    running.exception()  # retrieved (an interrupted query is expected after a cancel)
                self._release(holder, healthy=healthy)

    def _requeue(self, holder: _SqliteConn, done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: an interrupted query is the expected end here
        self._release(holder, healthy=True)

    def _release(self, holder: _SqliteConn, *, healthy: bool) -> None:
        """A connection's query is over: back to the idle ones, or dropped when broken, and its slot
        freed either way (a query waiting for one then takes an idle connection or opens one)."""
        if self._closed:  # the database was closed while this query ran
            self._close_later(holder)
        elif healthy:
            self._pool.put_nowait(holder)
        else:
            self._drop(holder)
        self._slots.release()

    def _drop(self, holder: _SqliteConn) -> asyncio.Future[None]:
        """Take a connection out of the pool for good. Counted out at once and closed in a task of its
        own, so that a cancellation arriving meanwhile (a client gone, a deadline) cannot leave the pool
        counting a connection that no longer serves."""
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


def key_hash(text: str) -> int:
    """The `groups` query's hash of a key (`:parts`, `:part`): CRC-32 of its UTF-8 bytes, the same in
    every process (SQLite has no hash function of its own)."""
    return zlib.crc32(text.encode())


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


def _primary(exc: sqlite3.Error) -> int:
    """The primary result code of a driver error (SQLITE_IOERR for SQLITE_IOERR_SHORT_READ, say)."""
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
