"""One holder among replicas on one database: whoever holds the lock does the work (the alert engine
sends the webhooks). On Postgres, a session advisory lock on a connection of its own (it goes with the
connection: a replica that dies or loses its connection lets another take over); on SQLite there is
one process per file, so the lock is always held."""

from __future__ import annotations

import contextlib

import asyncpg

from cost_api.store.base import Database
from cost_api.store.errors import DatabaseUnavailable
from cost_api.store.postgres import PostgresDatabase


class Leadership:
    """`hold()`: whether this process holds the lock now (taking it if free, checking the connection
    if held); `release()`: give it up."""

    def __init__(self, db: Database, key: int) -> None:
        self._db = db
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def hold(self) -> bool:
        db = self._db
        if not isinstance(db, PostgresDatabase):
            self.held = True
            return True
        conn = self._conn
        try:
            if conn is None or conn.is_closed():
                self.held = False
                conn = self._conn = await asyncpg.connect(
                    db.dsn,
                    timeout=db.timeout,
                    server_settings={"application_name": "cost-api leader", "default_transaction_read_only": "on"},
                )
            if self.held:
                await conn.fetchval("SELECT 1")  # still connected: still holding
            else:
                self.held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.release()
            raise DatabaseUnavailable(f"leader lock: {exc or type(exc).__name__}") from exc
        return self.held

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        self.held = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
