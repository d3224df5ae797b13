"""ClickHouse: the third dialect (`sql/clickhouse/`), on a server over HTTP (`clickhouse_http`) or
in-process on chDB (here). The engine sums; the service keeps what is small.

Every query runs with `readonly=1` (a write through this connection fails; tests/test_readonly.py) and
`max_execution_time` set to what is left of its deadline, so the engine stops it by itself, and
`max_estimated_execution_time` too: one that the engine, after ESTIMATE_AFTER_SECONDS, estimates to end
past it is stopped then (TOO_SLOW), not when its deadline comes (ClickHouse 24.1 or later). A query the
service gives up on first (a request cancelled, a deadline missed by the thread) is killed by its id
(`KILL QUERY`). What an error means is told by ClickHouse's own error code (`_UNAVAILABLE`, `_TIMEOUT`),
never by its message. Parameters are bound by name in ClickHouse's text form (`ch_value`): lists as
JSON text, which the queries take apart with `JSONExtract` (a list absent is NULL, as on SQLite).

chDB hosts one engine per process, bound to one directory: every `ChdbDatabase` of a process must name
the same directory (a second directory is refused until the first is closed), and another process
cannot open it meanwhile: `cost-api serve` reads it, nothing else writes (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from cost_api.store.base import TEXT_COLUMNS, Database
from cost_api.store.errors import DatabaseUnavailable, NotInSchema, QueryTimeout, TooManyGroups
from cost_api.store.queries import Registry
from cost_api.store.result import Coded, Rows, Table
from cost_api.store.url import DatabaseURL

# Settings of every query: read-only, and aliases never shadow the columns they are named after
# (`sum(prompt_tokens) AS prompt_tokens`); 64-bit integers as JSON numbers, not strings; text as
# Arrow's utf8, not binary (`fetch(..., table=True)`).
ESTIMATE_AFTER_SECONDS = 1  # when the engine first estimates a query's whole time from its progress
SETTINGS = {
    "readonly": 1,
    "timeout_before_checking_execution_speed": ESTIMATE_AFTER_SECONDS,
    "prefer_column_name_to_alias": 1,
    "output_format_json_quote_64bit_integers": 0,
    "output_format_arrow_string_as_string": 1,
}
ROWS_FORMAT, TABLE_FORMAT = "JSONCompact", "ArrowStream"  # the answers of `fetch`, without and with `table`
# ClickHouse error codes (src/Common/ErrorCodes.cpp): a query stopped at its time limit or killed ...
# The statement does not fit the schema (UNKNOWN_TABLE, UNKNOWN_IDENTIFIER, NO_SUCH_COLUMN_IN_TABLE):
# `NotInSchema`, as on the other dialects (the optional api_tokens table absent is the expected case).
_NOT_IN_SCHEMA = frozenset({60, 47, 16})
_TIMEOUT = frozenset({159, 394})  # TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED
_TOO_MANY_GROUPS = 158  # TOO_MANY_ROWS: past a query's `max_groups` (`_settings`)
_TOO_SLOW = 160  # its estimated time passes `max_estimated_execution_time` (`_settings`)
# ... and a server that cannot answer now: too many queries or connections, memory, network, shutting down.
_UNAVAILABLE = frozenset({202, 203, 209, 210, 241, 242, 425, 999})
_CODE = re.compile(r"Code: (\d+)\.")
_TICK = 0.001
_TAG = "cost-api "  # a chDB query's `log_comment`: this, then its marker (`ChdbDatabase.statement`)
UNRESPONSIVE = 2.0  # how long past its deadline a query is waited for once killed
OFF_LOOP_BYTES = 1 << 20  # an answer longer than this is decoded in a worker thread
Decoded = TypeVar("Decoded")


def ch_value(value: Any) -> Any:
    """A parameter in ClickHouse's text form: NULL as \\N, instants as epoch seconds with microseconds,
    lists as JSON text, booleans as 0/1."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        micros = round(value.timestamp() * 1_000_000)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return int(value)
    return value


# chDB's jemalloc options (JE_MALLOC_CONF). As built it keeps the pages a query freed for 5 s
# (`dirty_decay_ms:5000`), and gives them back only as it allocates again: a read by token's hash tables
# (~650 MiB at 100M rows) stayed in the service's RSS while it decoded and priced the answer. With 1 s,
# at 100M rows, the peak until the first dashboard set was ~500 MiB lower, and no read was seen slower
# (docs/performance.md#freed-memory-kept-by-the-allocators); with 0 s every read was twice as slow.
ENGINE_ALLOCATOR = "dirty_decay_ms:1000"


def chdb_connect(target: str) -> Any:
    """A chDB connection to `target` (a directory, `?database=` …). chDB is an optional dependency
    (`pip install 'cost-api[clickhouse]'`, some 700 MB with pyarrow): imported when first used, with its
    allocator's options (ENGINE_ALLOCATOR) unless the environment already sets them."""
    os.environ.setdefault("JE_MALLOC_CONF", ENGINE_ALLOCATOR)  # read as the engine's library loads
    try:
        import chdb
    except ImportError as exc:
        raise DatabaseUnavailable("chdb:// needs the chdb package: pip install 'cost-api[clickhouse]'") from exc
    connect: Callable[[str], Any] = chdb.connect  # untyped in chdb
    return connect(target)


def error_code(exc: BaseException) -> int | None:
    """ClickHouse's error code, from the `Code: N.` every engine error starts with."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


class ClickHouseDatabase(Database):
    """What both ClickHouse transports share: the schema check's types, the errors, the settings."""

    dialect = "clickhouse"

    def _unreadable(self, column: str, declared: str) -> str | None:
        """By the base type (Nullable, LowCardinality unwrapped): text columns as String, created_at as a
        DateTime64 or DateTime, cache_hit as Bool or an integer, every other column an integer."""
        base = _base_type(declared)
        if column in TEXT_COLUMNS:
            return None if base in ("String", "FixedString") else "String"
        if column == "created_at":
            return None if base in ("DateTime64", "DateTime") else "DateTime64(3, 'UTC')"
        if column in ("cache_hit", "streamed"):
            return None if base == "Bool" or base in _CH_INTEGER else "Bool"
        return None if base in _CH_INTEGER else "an integer type (Int32, Int64)"

    def _fault_in(self, found: dict[str, str]) -> str | None:
        """As on the other dialects, but `id` may be absent: ClickHouse has no identity column
        (queries.SYNTHETIC_ID stands in for it; the open hours are summed by created_at)."""
        if found and "id" not in found:
            found = {**found, "id": "Int64"}
        return super()._fault_in(found)

    async def _forget_prepared(self) -> None:
        """Nothing prepared: every query is parsed afresh by the engine."""

    async def _fetch(self, name: str, deadline: float, **params: Any) -> Rows:
        return Rows(await self._ask(name, deadline, params, ROWS_FORMAT, _tuples), self.registry[name].columns)

    async def _fetch_table(self, name: str, deadline: float, **params: Any) -> Table:
        columns = self.registry[name].columns
        return await self._ask(name, deadline, params, TABLE_FORMAT, lambda body: arrow_table(body, columns))

    @abstractmethod
    async def _ask(
        self, name: str, deadline: float, params: dict[str, Any], fmt: str, decode: Callable[[bytes], Decoded]
    ) -> Decoded:
        """Run the named query for an answer in format `fmt` (of this transport), `decode`d (`_answer`)."""

    def _settings(self, deadline: float, params: dict[str, Any]) -> dict[str, Any]:
        """SETTINGS, the time left (as the longest the query may run, and may be estimated to run: a scan
        that cannot end in time stops after ESTIMATE_AFTER_SECONDS, its cores freed for the others), and a
        query's `max_groups` (its LIMIT on every dialect) as the groups the engine may hold: it stops the
        aggregation as its hash table passes them (TooManyGroups), where a LIMIT alone would cut its
        answer only once the whole table is built."""
        left = round(max(deadline - time.monotonic(), _TICK), 3)
        settings = {**SETTINGS, "max_execution_time": left, "max_estimated_execution_time": left}
        if "max_groups" in params:
            settings["max_rows_to_group_by"] = params["max_groups"]
        return settings

    def _failed(self, name: str, exc: Exception) -> Exception:
        """The store's error for an engine error; `exc` itself when it is none of ours (`Database.fetch`
        then checks the schema)."""
        code = error_code(exc)
        if code in _TIMEOUT:
            return self._timed_out(name)
        if code == _TOO_SLOW:
            return QueryTimeout(
                f"query {name} would run past {self.timeout:g}s (query_timeout): the engine estimated so "
                f"after {ESTIMATE_AFTER_SECONDS}s and stopped it"
            )
        if code == _TOO_MANY_GROUPS:
            return TooManyGroups(f"query {name} passed its limit of groups: {exc}")
        if code in _UNAVAILABLE:
            return DatabaseUnavailable(f"ClickHouse is unavailable: {exc}")
        if code in _NOT_IN_SCHEMA:
            return NotInSchema(f"query {name} does not fit the database's schema: {exc}")
        return exc

    async def _answer(
        self,
        name: str,
        deadline: float,
        running: asyncio.Future[bytes],
        kill: Callable[[], Awaitable[None]],
        decode: Callable[[bytes], Decoded],
    ) -> Decoded:
        """The answer of the query `running`, `decode`d: awaited until its deadline (the engine stops it
        there by itself; a margin for one that does not), `kill`ed when given up on, its errors the
        store's."""
        try:
            async with asyncio.timeout(deadline - time.monotonic() + UNRESPONSIVE):
                body = await asyncio.shield(running)
        except (asyncio.CancelledError, TimeoutError) as exc:
            await kill()
            if isinstance(exc, TimeoutError):
                raise self._timed_out(name) from exc
            raise
        except Exception as exc:
            failed = self._failed(name, exc)
            if failed is exc:
                raise
            raise failed from exc
        if len(body) > OFF_LOOP_BYTES:  # a million token groups: seconds to decode, no other request meanwhile
            return await asyncio.to_thread(decode, body)
        return decode(body)


def _taken(done: asyncio.Future[bytes]) -> None:
    """Take a killed query's outcome (its error), so that asyncio does not log it as never retrieved."""
    if not done.cancelled():
        done.exception()


_CH_INTEGER = frozenset({"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Int128", "UInt128"})


def _base_type(declared: str) -> str:
    while True:
        outer, _, inner = declared.partition("(")
        if outer not in ("Nullable", "LowCardinality"):
            return outer.strip()
        declared = inner.rsplit(")", 1)[0]


class ChdbDatabase(ClickHouseDatabase):
    """chDB: the engine in this process. A connection per worker thread (`pool_size` of them); a query
    runs in one and is awaited from the event loop."""

    def __init__(self, url: DatabaseURL, registry: Registry, timeout: float, pool_size: int) -> None:
        super().__init__(registry, timeout)
        assert url.path is not None
        self.path = url.path.resolve()
        self.database = url.database
        self._size = pool_size
        self._threads = ThreadPoolExecutor(pool_size, thread_name_prefix="chdb")
        self._idle: list[Any] = []
        self._opened: list[Any] = []
        self._slots = asyncio.Semaphore(pool_size)

    def _connect(self) -> Any:
        if not self.path.is_dir():
            raise DatabaseUnavailable(f"chDB directory {self.path} does not exist")
        try:
            conn = chdb_connect(f"{self.path}?database={self.database}")
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # another directory open in this process, or not a chDB directory
            raise DatabaseUnavailable(f"cannot open chDB directory {self.path}: {exc}") from exc
        self._opened.append(conn)
        return conn

    def _run(self, sql: str, params: dict[str, Any], fmt: str) -> bytes:
        """`sql`'s answer on an idle connection. One whose query failed (an engine error, a timeout, a
        kill) is closed, never used again: chDB 4.4 hands the next query on it the output the failed
        one had begun, ahead of its own (a JSON answer that does not parse, an Arrow stream whose first
        part is the failed query's: its rows, read as the next answer's)."""
        conn = self._idle.pop() if self._idle else self._connect()
        try:
            body = bytes(conn.query(sql, fmt, params=params).bytes())
        except BaseException:
            self._opened.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
            raise
        self._idle.append(conn)
        return body

    def statement(self, sql: str, marker: str, deadline: float, params: dict[str, Any]) -> str:
        """`sql` as this store runs it, under the settings of every query (read-only, the time left;
        `_settings`) and tagged with `marker` as its `log_comment` setting: what `KILL QUERY` finds it by
        in `system.processes`. (Not a comment in its text: a query with parameters is listed there as
        the engine rewrites it, its parameters bound and its comments gone, so such a tag matched no
        query and a query given up on ran to its end.)"""
        settings = {**self._settings(deadline, params), "log_comment": f"'{_TAG}{marker}'"}
        listed = ", ".join(f"{k} = {v}" for k, v in settings.items())
        return f"{sql.rstrip().rstrip(';')}\nSETTINGS {listed}"

    async def _ask(
        self, name: str, deadline: float, params: dict[str, Any], fmt: str, decode: Callable[[bytes], Decoded]
    ) -> Decoded:
        query = self.registry[name]
        values = {p: ch_value(v) for p, v in zip(query.params, query.bind(params), strict=True)}
        marker = uuid.uuid4().hex
        sql = self.statement(query.sql, marker, deadline, params)
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise self._waited(name) from exc
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._threads, self._run, sql, values, fmt)
        running.add_done_callback(lambda _: self._slots.release())
        return await self._answer(name, deadline, running, lambda: self._kill(marker, running), decode)

    async def _kill(self, marker: str, running: asyncio.Future[bytes]) -> None:
        """Stop the query tagged `marker` in the engine, and wait for its thread to be free."""
        kill = f"KILL QUERY WHERE Settings['log_comment'] = '{_TAG}{marker}' ASYNC"
        running.add_done_callback(_taken)  # it ends in the kill's error, which nobody reads
        with contextlib.suppress(Exception):
            conn = chdb_connect(f"{self.path}?database={self.database}")
            try:
                await asyncio.to_thread(conn.query, kill)
            finally:
                conn.close()
        with contextlib.suppress(BaseException):
            await asyncio.wait({running}, timeout=self.timeout + UNRESPONSIVE)

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.shutdown, True, cancel_futures=True)
        opened, self._opened, self._idle = self._opened, [], []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()


_JSON = msgspec.json.Decoder()


def _tuples(body: bytes) -> list[tuple[Any, ...]]:
    return list(map(tuple, decode_rows(body)))


def arrow_table(body: bytes, names: tuple[str, ...]) -> Table:
    """The columns of an ArrowStream answer, by the query's column names (in its select list's order):
    numbers and booleans as numpy arrays (NULL as 0), text as `Coded`. pyarrow comes with the
    clickhouse extra."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not body:
        return Table(names, ((name, ()) for name in names), 0)
    table = pa.ipc.open_stream(body).read_all()

    def column(values: Any) -> Any:
        values = values.combine_chunks()
        kind = values.type
        if not (pa.types.is_dictionary(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            if values.null_count:
                values = pc.fill_null(values, pa.scalar(False if pa.types.is_boolean(kind) else 0, type=kind))
            return values.to_numpy(zero_copy_only=False, writable=True)  # a copy: the columns are worked on
        coded = values if pa.types.is_dictionary(kind) else values.dictionary_encode()
        distinct = [*coded.dictionary.to_pylist(), None]
        return Coded(
            pc.fill_null(coded.indices, len(distinct) - 1).to_numpy(zero_copy_only=False, writable=True), distinct
        )

    return Table(names, zip(names, map(column, table.columns), strict=True), table.num_rows)


def decode_rows(body: bytes) -> list[list[Any]]:
    """The rows of a JSONCompact answer."""
    if not body:
        return []
    data: list[list[Any]] = _JSON.decode(body)["data"]
    return data
