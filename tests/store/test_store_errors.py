"""What a driver error means is told by its result code or type, never by its message text.

The faults themselves (a lock, a file removed, replaced, not a database) are in tests/api/test_faults.py;
here each result code is given a message that says something else, to show which of the two decides.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from cost_api.config import load_settings
from cost_api.store.database import Database, DatabaseUnavailable, NotInSchema, QueryTimeout
from cost_api.web.service import build_service

from ..logdb import LogDB, SqliteLog

LAST_ID = "max(id) AS max_id"  # what only the `last_id` query's SQL says


def failing(code: int, message: str) -> Any:
    """aiosqlite's execute_fetchall, failing the `last_id` query with this code and message."""
    real = aiosqlite.Connection.execute_fetchall

    async def execute_fetchall(self: aiosqlite.Connection, sql: str, parameters: Any = None) -> Any:
        if LAST_ID in sql:
            error = sqlite3.OperationalError(message)
            error.sqlite_errorcode = code
            raise error
        return await real(self, sql, parameters)

    return execute_fetchall


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    log = SqliteLog(tmp_path / "log.db")
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    await service.db.check_schema()
    yield service.db
    await service.close()


@pytest.mark.parametrize(
    ("code", "message", "kept"),
    [
        (sqlite3.SQLITE_BUSY, "no such table: somewhere", True),
        (sqlite3.SQLITE_LOCKED, "syntax error", True),
        (sqlite3.SQLITE_BUSY_SNAPSHOT, "an extended code", True),
        (sqlite3.SQLITE_CANTOPEN, "database is locked", False),  # a file that cannot be opened: reopened
        (sqlite3.SQLITE_IOERR_SHORT_READ, "an extended code", False),
    ],
)
async def test_busy_locked_cantopen_and_ioerr_are_unavailable(
    db: Database, monkeypatch: pytest.MonkeyPatch, code: int, message: str, kept: bool
) -> None:
    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", failing(code, message))
    opened = db._opened  # type: ignore[attr-defined]
    with pytest.raises(DatabaseUnavailable, match=f"SQLite database is unavailable: {message}"):
        await db.fetch("last_id")
    assert db._opened == (opened if kept else opened - 1)  # type: ignore[attr-defined]


async def test_an_interrupted_query_is_a_timeout(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", failing(sqlite3.SQLITE_INTERRUPT, "locked"))
    with pytest.raises(QueryTimeout, match="query last_id ran past"):
        await db.fetch("last_id")


@pytest.mark.parametrize("message", ["database is locked", "interrupted", "unable to open database file"])
async def test_a_message_alone_decides_nothing(db: Database, monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """A statement that cannot be prepared (SQLITE_ERROR: no such table or column) is NotInSchema,
    whatever its text says: checked against the schema (sound here), run once more, raised."""
    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", failing(sqlite3.SQLITE_ERROR, message))
    opened = db._opened  # type: ignore[attr-defined]
    with pytest.raises(NotInSchema, match=message) as raised:
        await db.fetch("last_id")
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert not isinstance(raised.value, DatabaseUnavailable | QueryTimeout)
    # the connections it failed on (before and after the schema check) are dropped: a new one reads
    # the schema anew
    assert db._opened == opened - 1  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert (await db.fetch("last_id")).first("max_id") is None


async def test_no_api_tokens_table_shows_tokens_unlabelled(log: LogDB) -> None:
    """Both dialects: the optional table absent is NotInSchema (by the driver's type or code), and the
    token directory is empty: a token is shown by its id's start."""
    await log.execute("DROP TABLE api_tokens")
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    try:
        with pytest.raises(NotInSchema, match="token_labels"):
            await service.db.fetch("token_labels")
        directory = await service.aggregator.tokens()
        assert directory.labels == {}
        assert directory.display("tok_abcdefghijkl") == ("tok_abcdefg…", None)
    finally:
        await service.close()


async def test_a_busy_token_table_is_no_missing_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A lock whose message names api_tokens is a 503, not an absent table: the code decides."""
    real = aiosqlite.Connection.execute_fetchall

    async def execute_fetchall(self: aiosqlite.Connection, sql: str, parameters: Any = None) -> Any:
        if "api_tokens" in sql:
            error = sqlite3.OperationalError("no such table: api_tokens")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error
        return await real(self, sql, parameters)

    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", execute_fetchall)
    service = build_service(load_settings(environ={}, overrides={"database_url": SqliteLog(tmp_path / "t.db").url}))
    try:
        with pytest.raises(DatabaseUnavailable):
            await service.aggregator.tokens()
    finally:
        await service.close()
