"""Parse `database_url`: `sqlite:///relative.db`, `sqlite:////abs/path.db`, `postgresql://…`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


class DatabaseURLError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    dialect: Literal["sqlite", "postgres"]
    path: Path | None = None  # sqlite
    dsn: str | None = None  # postgres

    def __str__(self) -> str:
        return f"sqlite:///{self.path}" if self.dialect == "sqlite" else _redact(self.dsn or "")


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
    raise DatabaseURLError(
        f"database_url {url!r}: expected sqlite:///relative.db, sqlite:////abs/path.db or postgresql://…"
    )
