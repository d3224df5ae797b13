"""Postgres: a pool of asyncpg connections, each running read-only transactions.

A query is stopped at its deadline by the driver's cancel request (with `statement_timeout` behind
it). What a driver error means is told by its type, never by its message (`_UNAVAILABLE`: 503;
`QueryCanceledError`: 504; an undefined table or column: `NotInSchema`; anything else is checked
against the log's schema by `Database.fetch`).
Parameters are sent as native types; numeric values come back as numbers (`_read_numeric`).
"""

from __future__ import annotations

import asyncio
import decimal
import time
from typing import Any

import asyncpg

from cost_api.store.base import TEXT_COLUMNS, Database
from cost_api.store.errors import DatabaseUnavailable, NotInSchema
from cost_api.store.queries import Registry
from cost_api.store.result import Rows
from cost_api.store.url import DatabaseURL

# How long past a query's deadline a Postgres server that stops answering (even the cancel request)
# is waited for before the query is given up as timed out; and the least time a query is given.
_UNRESPONSIVE = 2.0
_TICK = 0.001


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
                        # every query is planned for its own parameters: a generic plan (Postgres picks one
                        # after five runs when it looks no dearer) reads the whole log for `rows_after`
                        # (an id range) and for windows, where the values decide (docs/performance.md)
                        "plan_cache_mode": "force_custom_plan",
                        "application_name": "cost-api",
                    },
                )
            return self._pool

    async def _fetch(self, name: str, deadline: float, **params: Any) -> Rows:
        query = self.registry[name]
        call = _Call()
        running = asyncio.ensure_future(self._call(call, query.sql, query.bind(params), deadline))
        running.add_done_callback(_retrieve)
        try:
            records = await asyncio.shield(running)
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
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
            raise NotInSchema(f"query {name} does not fit the database's schema: {exc}") from exc
        except _UNAVAILABLE as exc:
            if isinstance(exc, ValueError):  # an argument the driver cannot send: not the connection's state
                raise
            raise DatabaseUnavailable(f"Postgres is unavailable: {exc or type(exc).__name__}") from exc
        # tuples in the select list's order, named by the query: no asyncpg type above the store
        return Rows(map(tuple, records), query.columns)

    async def _call(self, call: _Call, sql: str, args: list[Any], deadline: float) -> list[asyncpg.Record]:
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
        return rows

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
