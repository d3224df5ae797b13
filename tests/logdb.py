"""Test logs: an empty request log on SQLite, Postgres or ClickHouse (chDB), and a way to write rows into it.

Only tests (and the demo) write; the API under test opens the same database read-only.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import chdb

from cost_api.resources import sql_dir
from cost_api.windows import epoch_ms


@dataclass
class Row:
    created_at: datetime
    provider: str = "openai"
    model: str = "gpt-4o-mini"
    endpoint: str = "/chat"
    token_id: str | None = None
    status_code: int = 200
    streamed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit: bool = False
    prompt_tokens_avoided: int = 0
    completion_tokens_avoided: int = 0
    latency_ms: int = 100
    cache_key: str | None = None
    request_id: str | None = None
    # optional columns (docs/request-log.md#optional-columns)
    cache_write_1h_tokens: int = 0
    service_tier: str | None = None
    usage_exact: bool | None = None


COLUMNS = [f.name for f in fields(Row)]
OPTIONAL = ["cache_write_1h_tokens", "service_tier", "usage_exact"]
_numbers = itertools.count(1)


def tagged(tokens: list[tuple[str, str, str | None]], tags: list[str | None] | None) -> list[tuple[object, ...]]:
    return [(*token, tag) for token, tag in zip(tokens, tags or [None] * len(tokens), strict=True)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class LogDB:
    url: str
    dialect: str
    columns: list[str] = COLUMNS  # the request log's columns: all, or without the optional ones

    async def insert(self, rows: list[Row]) -> None:
        raise NotImplementedError

    async def drop_optional_columns(self) -> None:
        """Make this a log of the contract's first shape: no cache_write_1h_tokens, service_tier,
        usage_exact (rows inserted from then on must leave them at their defaults)."""
        await self.execute(";".join(f"ALTER TABLE request_log DROP COLUMN {c}" for c in OPTIONAL))
        self.columns = [c for c in COLUMNS if c not in OPTIONAL]

    def _values(self, row: Row) -> list[object]:
        data = dict(zip(COLUMNS, astuple(row), strict=True))
        if self.columns is not COLUMNS:
            given = tuple(data[c] for c in OPTIONAL)
            assert given == (0, None, None), f"this log has no optional columns, but the row sets {given}"
        return [data[c] for c in self.columns]

    async def add_tokens(self, tokens: list[tuple[str, str, str | None]], tags: list[str | None] | None = None) -> None:
        """api_tokens rows (id, prefix, name), each with its `tags` column's text (default NULL)."""
        raise NotImplementedError

    async def execute(self, sql: str) -> None:
        raise NotImplementedError

    async def drop(self) -> None:
        """Remove the database (called after the test)."""


class SqliteLog(LogDB):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript((sql_dir() / "schema" / "sqlite.sql").read_text())

    async def insert(self, rows: list[Row]) -> None:
        values = []
        for row in rows:
            data = self._values(row)
            data[0] = epoch_ms(row.created_at)
            values.append([int(v) if isinstance(v, bool) else v for v in data])
        placeholders = ", ".join("?" for _ in self.columns)
        with sqlite3.connect(self.path) as conn:
            conn.executemany(f"INSERT INTO request_log ({', '.join(self.columns)}) VALUES ({placeholders})", values)

    async def add_tokens(self, tokens: list[tuple[str, str, str | None]], tags: list[str | None] | None = None) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.executemany(
                "INSERT INTO api_tokens (id, prefix, name, tags) VALUES (?, ?, ?, ?)", tagged(tokens, tags)
            )

    async def execute(self, sql: str) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.executescript(sql)


class PostgresLog(LogDB):
    dialect = "postgres"

    def __init__(self, admin_dsn: str, url: str, name: str) -> None:
        self.admin_dsn = admin_dsn
        self.url = url
        self.name = name

    @classmethod
    async def create(cls, cluster: object) -> PostgresLog:
        name = f"t{next(_numbers)}"
        admin = await asyncpg.connect(cluster.dsn)  # type: ignore[attr-defined]
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        log = cls(cluster.dsn, cluster.url(name), name)  # type: ignore[attr-defined]
        await log.execute((sql_dir() / "schema" / "postgres.sql").read_text())
        return log

    async def insert(self, rows: list[Row]) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.copy_records_to_table(
                "request_log", records=[self._values(r) for r in rows], columns=self.columns
            )
        finally:
            await conn.close()

    async def add_tokens(self, tokens: list[tuple[str, str, str | None]], tags: list[str | None] | None = None) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.executemany(
                "INSERT INTO api_tokens (id, prefix, name, tags) VALUES ($1, $2, $3, $4)", tagged(tokens, tags)
            )
        finally:
            await conn.close()

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def drop(self) -> None:
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()


_ISO = re.compile(r"'(\d{4}-\d\d-\d\dT[^']+)'")


class ChdbLog(LogDB):
    """A database of its own in the session's chDB directory (`chdb_dir`): chDB hosts one engine per
    process, bound to one directory, so every test's log is a database there. Rows get ids 1, 2, …"""

    dialect = "clickhouse"

    def __init__(self, directory: Path, http_port: int | None = None) -> None:
        """Read by the API in-process (`chdb://`), or over HTTP through tests/chserver.py on `http_port`."""
        self.name = f"t{next(_numbers)}"
        self.url = f"chdb:///{directory}?database={self.name}"
        if http_port is not None:
            self.url = f"clickhouse://default:secret@127.0.0.1:{http_port}/{self.name}"
        chdb.connect(str(directory)).query(f"CREATE DATABASE {self.name}")
        self.conn = chdb.connect(f"{directory}?database={self.name}&mutations_sync=2")
        self._ids = itertools.count(1)
        self._run((sql_dir() / "schema" / "clickhouse.sql").read_text())

    async def insert(self, rows: list[Row]) -> None:
        lines = []
        for row in rows:
            data = dict(zip(self.columns, self._values(row), strict=True))
            data["created_at"] = epoch_ms(row.created_at) / 1000
            lines.append(json.dumps({"id": next(self._ids), **data}))
        if lines:
            self.conn.query("INSERT INTO request_log FORMAT JSONEachRow\n" + "\n".join(lines))

    async def add_tokens(self, tokens: list[tuple[str, str, str | None]], tags: list[str | None] | None = None) -> None:
        lines = [json.dumps({"id": i, "prefix": p, "name": n, "tags": t}) for i, p, n, t in tagged(tokens, tags)]
        self.conn.query("INSERT INTO api_tokens FORMAT JSONEachRow\n" + "\n".join(lines))

    async def execute(self, sql: str) -> None:
        self._run(sql)

    def _run(self, sql: str) -> None:
        """The statements of `sql`, the tests' Postgres-like DML read as ClickHouse's: ISO instants
        parsed, `UPDATE t SET` as the mutation `ALTER TABLE t UPDATE`, `DELETE FROM t` (every row) as
        `TRUNCATE`, Postgres's `OVERRIDING SYSTEM VALUE` (ids given by hand) left out."""
        for statement in sql.split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
            body = _ISO.sub(r"parseDateTime64BestEffort('\1', 3, 'UTC')", body)
            body = re.sub(r"^\s*UPDATE (\w+) SET", r"ALTER TABLE \1 UPDATE", body)
            body = re.sub(r"^\s*DELETE FROM (\w+)\s*$", r"TRUNCATE TABLE \1", body)
            body = body.replace("OVERRIDING SYSTEM VALUE", "")
            if body.strip():
                self.conn.query(body)

    async def drop(self) -> None:
        self.conn.query(f"DROP DATABASE {self.name} SYNC")
        self.conn.close()
