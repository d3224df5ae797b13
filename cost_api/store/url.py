"""Parse `database_url`: `sqlite:///relative.db`, `sqlite:////abs/path.db`, `postgresql://…`,
`clickhouse://user:pass@host:8123/db` (`clickhouses://` for TLS), `chdb:///relative/dir`,
`chdb:////abs/dir` (ClickHouse in-process on chDB, paths as for SQLite; `?database=name` for another
database than `default` in that directory)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DatabaseURLError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    dialect: Literal["sqlite", "postgres", "clickhouse"]
    path: Path | None = None  # sqlite; clickhouse on chDB: its directory
    dsn: str | None = None  # postgres; clickhouse over HTTP
    database: str = "default"  # clickhouse on chDB

    def __str__(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite:///{self.path}"
        if self.path is not None:  # chdb
            suffix = "" if self.database == "default" else f"?database={self.database}"
            return f"chdb:///{self.path}{suffix}"
        return _redact(self.dsn or "")


def _redact(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return dsn
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def parse_database_url(url: str) -> DatabaseURL:
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///") :]
        if not raw:
            raise DatabaseURLError(f"database_url {url!r}: no file path after sqlite:///")
        return DatabaseURL("sqlite", path=Path(raw))
    if url.startswith(("postgresql://", "postgres://")):
        return DatabaseURL("postgres", dsn=url)
    if url.startswith(("clickhouse://", "clickhouses://")):
        return DatabaseURL("clickhouse", dsn=url)
    if url.startswith("chdb:///"):
        raw, _, query = url[len("chdb:///") :].partition("?")
        options = parse_qs(query)
        database = options.pop("database", ["default"])[-1]
        if not raw or options or not _NAME.fullmatch(database):
            raise DatabaseURLError(f"database_url {url!r}: expected chdb:///path/to/dir[?database=name]")
        return DatabaseURL("clickhouse", path=Path(raw), database=database)
    raise DatabaseURLError(
        f"database_url {url!r}: expected sqlite:///relative.db, sqlite:////abs/path.db, postgresql://…, "
        "clickhouse://user:pass@host:8123/db or chdb:///relative/dir, chdb:////abs/dir"
    )
