"""The database layer: read-only connections, one `fetch(name, **params)` for every query.

What the rest of the service imports from the store. SQLite is opened with `mode=ro` (`sqlite`),
Postgres connections run read-only transactions from a pool (`postgres`), ClickHouse queries run with
`readonly=1` on chDB in-process (`clickhouse`) or a server over HTTP (`clickhouse_http`); each is a `Database`
(`base`): every query under `query_timeout`, and a query of an HTTP request only under what is left
of that request's deadline (`request_deadline`), its rows named by the query's columns (`Rows`); the
background reads (`background_reads`: the rollups' warm-up from the log, the sweep) begin behind the
answers'. Parameters are plain Python values; each driver gets them in its own form (SQLite: epoch
milliseconds for datetimes, JSON text for lists; Postgres: native types).
"""

from __future__ import annotations

from cost_api.store.base import LOG_COLUMNS, TEXT_COLUMNS, Database, background_reads, request_deadline
from cost_api.store.clickhouse import ChdbDatabase
from cost_api.store.clickhouse_http import ClickHouseHttpDatabase
from cost_api.store.errors import DatabaseUnavailable, NotInSchema, QueryTimeout, SchemaMissing, TooManyGroups
from cost_api.store.postgres import PostgresDatabase
from cost_api.store.queries import Registry
from cost_api.store.result import Row, Rows
from cost_api.store.sqlite import SQLITE_BUSY_WAIT, SqliteDatabase
from cost_api.store.url import DatabaseURL

__all__ = [
    "LOG_COLUMNS",
    "SQLITE_BUSY_WAIT",
    "TEXT_COLUMNS",
    "ChdbDatabase",
    "Database",
    "DatabaseUnavailable",
    "NotInSchema",
    "PostgresDatabase",
    "QueryTimeout",
    "Row",
    "Rows",
    "SchemaMissing",
    "SqliteDatabase",
    "TooManyGroups",
    "background_reads",
    "open_database",
    "request_deadline",
]


def open_database(url: DatabaseURL, registry: Registry, *, timeout: float, pool_size: int) -> Database:
    cls: type[SqliteDatabase | PostgresDatabase | ChdbDatabase | ClickHouseHttpDatabase]
    if url.dialect == "clickhouse":
        cls = ChdbDatabase if url.path is not None else ClickHouseHttpDatabase
    else:
        cls = SqliteDatabase if url.dialect == "sqlite" else PostgresDatabase
    return cls(url, registry, timeout, pool_size)
