"""The database layer's dialect-neutral half: `Database`, one `fetch(name, **params)` for every query.

Every query runs under `query_timeout`, and a query of an HTTP request only under what is left of
that request's deadline (`request_deadline`, set by limits.DeadlineMiddleware): one budget for all
the queries of an answer, however many it runs in a row. A query's rows come back as a `Rows`, read
by the names of the query's columns (or as columns, a `Table`: `fetch(..., table=True)`). `Database`
also checks the log's schema (the contract's columns, their types) and reads which optional columns
it has; the drivers are in `sqlite`, `postgres` and `clickhouse`, each a subclass that runs a query
and tells its driver's errors apart by their type.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Literal, TypeVar, overload

from cost_api.store.errors import DatabaseUnavailable, QueryTimeout, SchemaMissing, TooManyGroups
from cost_api.store.queries import LogColumns, Registry
from cost_api.store.result import Row, Rows, Table
from cost_api.store.timing import time_query
from cost_api.windows import from_ms

__all__ = [
    "LOG_COLUMNS",
    "TEXT_COLUMNS",
    "Database",
    "Row",
    "Rows",
    "Table",
    "background_reads",
    "in_background",
    "request_deadline",
]

_Answer = TypeVar("_Answer", Rows, Table)

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


# Whether the queries that start in this context are background reads (the rollups' warm-up from the
# log, which only answers over many closed hours wait for; the sweep for deletes and updates): each
# begins once the answers' queries in flight have ended, or YIELD_SECONDS later (`Database._query`).
_BACKGROUND: ContextVar[bool] = ContextVar("background_reads", default=False)
YIELD_SECONDS = 1.0


@contextlib.contextmanager
def background_reads() -> Iterator[None]:
    """Run the queries that start in this block (and in the tasks it creates) behind the answers'."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def in_background() -> bool:
    """Whether a query started here is one of `background_reads`."""
    return _BACKGROUND.get()


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
        self._answering = 0  # queries in flight not of `background_reads`
        self._answered = asyncio.Event()  # set while there are none
        self._answered.set()

    @overload
    async def fetch(self, name: str, *, table: Literal[False] = False, **params: Any) -> Rows: ...

    @overload
    async def fetch(self, name: str, *, table: Literal[True], **params: Any) -> Table: ...

    async def fetch(self, name: str, *, table: bool = False, **params: Any) -> Rows | Table:
        """Run the named query (timed by name and outcome for /metrics): its rows, and the names of their
        columns (`Rows`); with `table`, the same as columns (`Table`): a columnar driver's answer then
        never becomes a tuple per row (the `groups` of a day by token: ~576,000 rows at 100M).

        A query that fails for a reason of its own is checked against the log's schema: when that is
        what is wrong (a table dropped, a column renamed or retyped under the service), the answer is a
        SchemaMissing naming it, not the driver's error; and while the schema is known to be wrong
        (from such a failure, /readyz or the start-up check), every query checks it again first
        instead of running on a log it cannot read right. When the schema is sound, it may have been
        mended (or the file swapped) since the failed query started: that query runs once more, afresh."""
        if table:
            return await self._query(name, params, self._fetch_table)
        return await self._query(name, params, self._fetch)

    async def _query(self, name: str, params: dict[str, Any], run: Callable[..., Awaitable[_Answer]]) -> _Answer:
        """`run(name, deadline, **params)` (`_fetch` or `_fetch_table`), as `fetch` says. A read of
        `background_reads` begins once no other query is in flight, or YIELD_SECONDS later: the engine's
        cores go to the answers first (on a first start, a cold dashboard's SQL beside the warm-up's 60
        days), and a stream of answers slows such a read, never stops it."""
        if in_background():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), YIELD_SECONDS)
            return await self._query_now(name, params, run)
        self._answering += 1
        self._answered.clear()
        try:
            return await self._query_now(name, params, run)
        finally:
            self._answering -= 1
            if not self._answering:
                self._answered.set()

    async def _query_now(self, name: str, params: dict[str, Any], run: Callable[..., Awaitable[_Answer]]) -> _Answer:
        with time_query(name):
            if self._schema_fault is not None:
                await self._raise_schema_fault()
            if self._columns_of != self.generation and self.registry.reads_log(name):
                await self.read_log_columns()
            try:
                return await run(name, self._deadline(name), **params)
            except (DatabaseUnavailable, QueryTimeout, TooManyGroups):
                raise
            except Exception as exc:
                await self._forget_prepared()
                await self._raise_schema_fault(exc)
                if self.registry.reads_log(name):  # an optional column may have come or gone
                    self._columns_of = None
                    await self.read_log_columns()
                return await run(name, self._deadline(name), **params)

    async def read_log_columns(self) -> LogColumns:
        """Which optional columns the log has, read once (again for another database behind the URL,
        after a query failed, or while the table is missing), and the queries bound to read them
        (queries.LogColumns)."""
        async with self._columns_lock:
            if self.log_columns is None or self._columns_of != self.generation:
                generation = self.generation
                with time_query("log_columns"):
                    found = await self._fetch("log_columns", self._deadline("log_columns"))
                columns = LogColumns.of(found.column("name"))
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
    async def _fetch(self, name: str, deadline: float, **params: Any) -> Rows: ...

    async def _fetch_table(self, name: str, deadline: float, **params: Any) -> Table:
        """A driver that answers rows: taken apart into columns here."""
        return Table.of(await self._fetch(name, deadline, **params))

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
            found: dict[str, str] = dict(
                (await self._fetch("log_columns", self._deadline("log_columns"))).pick("name", "type")
            )
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
        recovering, replayed = (await self.fetch("recovery")).first("in_recovery", "replayed_at_ms")
        return bool(recovering), None if replayed is None else from_ms(replayed)

    @abstractmethod
    def _unreadable(self, column: str, declared: str) -> str | None:
        """None when the queries read `column` of type `declared` as they expect, else the type expected."""
