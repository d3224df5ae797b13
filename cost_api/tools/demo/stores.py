"""The database the demo creates and writes: the same operations on SQLite (stdlib sqlite3), PostgreSQL
(asyncpg) and ClickHouse (chDB in-process, or a server over HTTP with clickhouse-connect). The only demo
module that imports a driver: a writer of its own, never the API's read path."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg

from cost_api.resources import sql_dir
from cost_api.store.clickhouse import chdb_connect
from cost_api.store.clickhouse_http import http_options
from cost_api.store.url import DatabaseURL
from cost_api.tools.demo.catalogue import COLUMNS, EPOCH, Batch, Token, epoch_ms
from cost_api.tools.demo.generator import Params

T = TypeVar("T")

MARKER = "cost_api_demo"
MARKER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {MARKER} (created_at {{created_at}} NOT NULL, seed BIGINT NOT NULL, "
    "days INTEGER NOT NULL, requests_per_day INTEGER NOT NULL, tz TEXT NOT NULL)"
)  # created_at: the `now` the log was generated up to, as in request_log


class SqliteStore:
    """What the demo reads and writes, on stdlib sqlite3 (WAL, executemany a day per transaction)."""

    def __init__(self, url: DatabaseURL) -> None:
        assert url.path is not None  # parse_database_url sets it for sqlite
        self.conn = sqlite3.connect(url.path)

    def tables(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
        )
        return {name for (name,) in rows}

    def create_schema(self) -> None:
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(
            (sql_dir() / "schema" / "sqlite.sql").read_text() + MARKER_DDL.format(created_at="INTEGER")
        )

    def params(self) -> Params | None:
        row = self.conn.execute(f"SELECT created_at, seed, days, requests_per_day, tz FROM {MARKER}").fetchone()
        return Params(*row) if row else None

    def count(self) -> int:
        count: int = self.conn.execute("SELECT count(*) FROM request_log").fetchone()[0]
        return count

    def last_created_at(self) -> int | None:
        last: int | None = self.conn.execute("SELECT max(created_at) FROM request_log").fetchone()[0]
        return last

    def reset(self, tokens: list[Token], tags: dict[str, str]) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM request_log")
            self.conn.execute("DELETE FROM api_tokens")
            self.conn.executemany(
                "INSERT INTO api_tokens (id, prefix, name, tags) VALUES (?, ?, ?, ?)", labels(tokens, tags)
            )

    def insert(self, batch: Batch) -> None:
        rows = zip(*(batch[c].tolist() for c in COLUMNS), strict=True)
        sql = f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        with self.conn:
            self.conn.executemany(sql, rows)

    def mark(self, params: Params) -> None:
        with self.conn:
            self.conn.execute(f"INSERT INTO {MARKER} VALUES (?, ?, ?, ?, ?)", _astuple(params))

    def close(self) -> None:
        self.conn.close()

    abort = close


class PostgresStore:
    """The same operations over asyncpg (COPY a day per transaction), each run on a private event loop."""

    def __init__(self, url: DatabaseURL) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self._run(asyncpg.connect(url.dsn))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def tables(self) -> set[str]:
        rows = self._run(
            self.conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        )
        return {r[0] for r in rows}

    def create_schema(self) -> None:
        self._run(
            self.conn.execute(
                (sql_dir() / "schema" / "postgres.sql").read_text() + MARKER_DDL.format(created_at="TIMESTAMPTZ")
            )
        )

    def params(self) -> Params | None:
        row = self._run(self.conn.fetchrow(f"SELECT created_at, seed, days, requests_per_day, tz FROM {MARKER}"))
        if row is None:
            return None
        return Params(epoch_ms(row["created_at"]), row["seed"], row["days"], row["requests_per_day"], row["tz"])

    def count(self) -> int:
        count: int = self._run(self.conn.fetchval("SELECT count(*) FROM request_log"))
        return count

    def last_created_at(self) -> int | None:
        last = self._run(self.conn.fetchval("SELECT max(created_at) FROM request_log"))
        return None if last is None else epoch_ms(last)

    def reset(self, tokens: list[Token], tags: dict[str, str]) -> None:
        async def reset() -> None:
            async with self.conn.transaction():
                await self.conn.execute("TRUNCATE request_log, api_tokens RESTART IDENTITY")
                await self.conn.copy_records_to_table(
                    "api_tokens", records=labels(tokens, tags), columns=["id", "prefix", "name", "tags"]
                )

        self._run(reset())

    def insert(self, batch: Batch) -> None:
        created_at = [EPOCH + timedelta(milliseconds=ms) for ms in batch["created_at"].tolist()]
        rows = zip(created_at, *(batch[c].tolist() for c in COLUMNS[1:]), strict=True)

        async def insert() -> None:
            async with self.conn.transaction():
                await self.conn.copy_records_to_table("request_log", records=rows, columns=COLUMNS)

        self._run(insert())

    def mark(self, params: Params) -> None:
        values = (EPOCH + timedelta(milliseconds=params.now_ms), *_astuple(params)[1:])
        self._run(self.conn.execute(f"INSERT INTO {MARKER} VALUES ($1, $2, $3, $4, $5)", *values))

    def close(self) -> None:
        self._run(self.conn.close())
        self.loop.close()

    def abort(self) -> None:
        """Drop the connection without waiting: an interrupted COPY leaves nothing to say goodbye to."""
        self.conn.terminate()
        self.loop.close()


class ClickHouseStore:
    """The same operations on ClickHouse: in this process on chDB, or a server over HTTP
    (clickhouse-connect). Rows are inserted a day per batch (JSONEachRow), each given the next id
    (ClickHouse has no identity column). On chDB the API reads the directory once this exits: chDB is
    one process's engine (docs/scale-out.md)."""

    def __init__(self, url: DatabaseURL) -> None:
        if url.path is not None:  # chdb
            url.path.mkdir(parents=True, exist_ok=True)
            creating = chdb_connect(str(url.path))
            creating.query(f"CREATE DATABASE IF NOT EXISTS {url.database}")
            creating.close()  # the engine shuts down with the last connection: the API may open it then
            conn = chdb_connect(f"{url.path}?database={url.database}&mutations_sync=2")

            def run(sql: str, fmt: str | None) -> bytes:
                return bytes(conn.query(sql, fmt or "TabSeparated").bytes())

            self._close: Callable[[], object] = conn.close
        else:
            import clickhouse_connect  # only for clickhouse://: the dependency is optional

            assert url.dsn is not None
            options = http_options(url.dsn, timeout=60)
            database = options.pop("database")
            clickhouse_connect.get_client(**options).command(f"CREATE DATABASE IF NOT EXISTS {database}")
            client = clickhouse_connect.get_client(**options, database=database, settings={"mutations_sync": 2})

            def run(sql: str, fmt: str | None) -> bytes:
                return bytes(client.raw_query(sql, fmt=fmt))

            self._close = client.close
        self._run: Callable[[str, str | None], bytes] = run
        self._next_id = 1

    def _rows(self, sql: str) -> list[list[Any]]:
        data: list[list[Any]] = json.loads(self._run(sql, "JSONCompact"))["data"]
        return data

    def tables(self) -> set[str]:
        return {name for (name,) in self._rows("SELECT name FROM system.tables WHERE database = currentDatabase()")}

    def create_schema(self) -> None:
        script = (sql_dir() / "schema" / "clickhouse.sql").read_text()
        marker = MARKER_DDL.format(created_at="Int64").replace(" NOT NULL", "").replace("BIGINT", "Int64")
        for statement in [*script.split(";"), f"{marker.replace('INTEGER', 'Int64')} ENGINE = TinyLog"]:
            body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
            if body.strip():
                self._run(body, None)
        self._next_id = int(self._rows("SELECT max(id) FROM request_log")[0][0]) + 1

    def params(self) -> Params | None:
        rows = self._rows(f"SELECT created_at, seed, days, requests_per_day, tz FROM {MARKER}")
        return Params(*rows[0]) if rows else None

    def count(self) -> int:
        return int(self._rows("SELECT count() FROM request_log")[0][0])

    def last_created_at(self) -> int | None:
        last = self._rows("SELECT toUnixTimestamp64Milli(maxOrNull(created_at)) FROM request_log")[0][0]
        return None if last is None else int(last)

    def reset(self, tokens: list[Token], tags: dict[str, str]) -> None:
        self._run("TRUNCATE TABLE request_log", None)
        self._run("TRUNCATE TABLE api_tokens", None)
        self._next_id = 1
        self._insert(
            "api_tokens", [dict(zip(("id", "prefix", "name", "tags"), r, strict=True)) for r in labels(tokens, tags)]
        )

    def insert(self, batch: Batch) -> None:
        columns = [batch[c].tolist() for c in COLUMNS]
        columns[0] = [ms / 1000 for ms in columns[0]]  # created_at: epoch seconds, milliseconds exact
        ids = range(self._next_id, self._next_id + len(columns[0]))
        self._insert(
            "request_log", [dict(zip(("id", *COLUMNS), row, strict=True)) for row in zip(ids, *columns, strict=True)]
        )
        self._next_id += len(ids)

    def mark(self, params: Params) -> None:
        self._insert(MARKER, [dict(zip(_MARKED, _astuple(params), strict=True))])

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n" + "\n".join(map(json.dumps, rows)), None)

    def close(self) -> None:
        self._close()

    abort = close


def labels(tokens: list[Token], tags: dict[str, str]) -> list[tuple[str, str, str | None, str | None]]:
    """The api_tokens rows: (id, prefix, name, tags) of each token that has a name."""
    return [(i, p, n, tags.get(i)) for i, p, n in tokens if n]


_MARKED = ("created_at", "seed", "days", "requests_per_day", "tz")

Store = SqliteStore | PostgresStore | ClickHouseStore


def _astuple(params: Params) -> tuple[int, int, int, int, str]:
    return (params.now_ms, params.seed, params.days, params.requests_per_day, params.tz)
