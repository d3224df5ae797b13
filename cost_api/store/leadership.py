"""One holder among replicas on one database: whoever holds the lock does the work (the alert engine
sends the webhooks).

- Postgres: a session advisory lock on a connection of its own. It goes with the connection: a
  replica that dies or loses its connection lets another take over.
- ClickHouse over HTTP: no advisory lock, and no writes: a lease kept by standing read-only queries,
  the oldest contender listed in `system.processes` holds (`presence`).
- chDB: one process has the directory open: that process holds.
- SQLite: an exclusive `flock` on a lock file of our own: never the gateway's database, nor anything
  beside it, but `$XDG_CACHE_HOME/cost-api/` (by default `~/.cache/cost-api/`; where that cannot be
  written, `<tmp>/cost-api-<uid>/`), one file per database (a hash of its real path) and key. The
  kernel drops the lock when the holder exits or dies, and another process takes it at its next try.
  It spans the processes of one host that share that directory: the workers of `cost-api serve
  --workers N`, several servers of one user; not containers or hosts that share the database file
  over a volume (each of those holds its own). The holder removes the file when it lets go; the file
  holds its process id. Where no directory can be written, the lock is held without a file (every
  process on the file acts, as one process alone did), said once in the log; tried again each time.

A change of holder is logged (INFO), and so is a first try that finds the lock taken: each process
says once whether it acts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import stat
import tempfile
from pathlib import Path

import asyncpg

from cost_api.store.base import Database
from cost_api.store.clickhouse_http import ClickHouseHttpDatabase
from cost_api.store.errors import DatabaseUnavailable
from cost_api.store.postgres import PostgresDatabase
from cost_api.store.presence import Presence
from cost_api.store.sqlite import SqliteDatabase

log = logging.getLogger("cost_api.store.leadership")

LOCK_DIR_NAME = "cost-api"
_ATTEMPTS = 3  # a holder that lets go removes its file: whoever opened it meanwhile opens the new one


def lock_directories() -> list[Path]:
    """Where the SQLite lock files may go, in order of preference."""
    found = []
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # a relative value is to be ignored (XDG base directory specification)
        found.append(Path(xdg) / LOCK_DIR_NAME)
    else:
        with contextlib.suppress(RuntimeError, KeyError):  # no home directory
            found.append(Path.home() / ".cache" / LOCK_DIR_NAME)
    found.append(Path(tempfile.gettempdir()) / f"{LOCK_DIR_NAME}-{os.getuid()}")
    return found


def lock_directory() -> Path:
    """The first of `lock_directories()` that is, or can be made, a directory of ours we can write
    (not a link or another user's directory planted in a shared /tmp); OSError if none."""
    problems = []
    for directory in lock_directories():
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(directory)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                raise PermissionError(f"{directory} is not a directory of user {os.getuid()}")
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(f"{directory} is not writable")
            return directory
        except OSError as exc:
            problems.append(str(exc))
    raise OSError("no directory for the lock file: " + "; ".join(problems))


def lock_path(database: Path, key: int, directory: Path | None = None) -> Path:
    """The lock file of `key` on the SQLite file `database` (a resolved path)."""
    digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
    return (directory or lock_directory()) / f"leader-{key:x}-{digest}.lock"


class FileLock:
    """An exclusive, non-blocking `flock` on `path`, removed by its holder on release."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; True while this object holds it. Raises OSError when the file
        cannot be opened."""
        if self._fd is not None:
            if self._is_current(self._fd):
                return True
            self.release()  # removed or replaced under us: someone else may lock the file now there
        for _ in range(_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            except BaseException:
                os.close(fd)
                raise
            if self._is_current(fd):
                self._fd = fd
                with contextlib.suppress(OSError):  # for whoever looks: which process holds it
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return True
            os.close(fd)  # the previous holder removed this file as we opened it: open the new one
        return False

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if self._is_current(fd):
                os.unlink(self.path)  # while still locked: nobody can hold the removed file after us
        os.close(fd)

    def _is_current(self, fd: int) -> bool:
        """Whether `fd` is the file at `path` now (not one removed since it was opened)."""
        try:
            there, mine = os.stat(self.path), os.fstat(fd)
        except OSError:
            return False
        return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


class Leadership:
    """`hold()`: whether this process holds the lock now (taking it if free, checking the connection
    or the file if held); `release()`: give it up."""

    def __init__(self, db: Database, key: int) -> None:
        self._db = db
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self._file: FileLock | None = None
        self._presence: Presence | None = None
        self._without_file = False
        self._tried = False
        self.held = False

    async def hold(self) -> bool:
        db = self._db
        was = self.held
        if isinstance(db, PostgresDatabase):
            held = await self._hold_postgres(db)
        elif isinstance(db, SqliteDatabase):
            held = self._hold_file(db)
        elif isinstance(db, ClickHouseHttpDatabase):
            held = await self._hold_presence(db)
        else:
            held = self.held = True
        self._log_change(was, held)
        return held

    def _where(self) -> str:
        if self._file is not None:
            return f"{self._key:#x} ({self._file.path})"
        return f"{self._key:#x}"

    def _log_change(self, was: bool, held: bool) -> None:
        first, self._tried = not self._tried, True
        if held and not was:
            log.info("leader lock %s: taken by this process (pid %d)", self._where(), os.getpid())
        elif was and not held:
            log.warning("leader lock %s: lost by this process (pid %d)", self._where(), os.getpid())
        elif first and not held:
            log.info("leader lock %s: held by another process; this one (pid %d) waits", self._where(), os.getpid())

    def _hold_file(self, db: SqliteDatabase) -> bool:
        try:
            if self._file is None or not self._file.held:  # the directory again: it may have been removed
                path = lock_path(db.path, self._key)
                if self._file is None or self._file.path != path:
                    self._file = FileLock(path)
            self.held = self._file.acquire()
            self._without_file = False
        except OSError as exc:
            if not self._without_file:
                log.warning(
                    "leader lock %#x: no lock file (%s): this process acts as if it held the lock; "
                    "several processes on %s would each act",
                    self._key,
                    exc,
                    db.path,
                )
            self._without_file = True
            self.held = True
        return self.held

    async def _hold_postgres(self, db: PostgresDatabase) -> bool:
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

    async def _hold_presence(self, db: ClickHouseHttpDatabase) -> bool:
        if self._presence is None:
            self._presence = Presence(db, self._key)
        try:
            self.held = await self._presence.hold()
        except Exception as exc:
            await self.release()
            raise DatabaseUnavailable(f"leader lock: {exc or type(exc).__name__}") from exc
        return self.held

    async def release(self) -> None:
        presence, self._presence = self._presence, None
        if presence is not None:
            await presence.release()
        conn, self._conn = self._conn, None
        if self._file is not None:
            self._file.release()
        self.held = False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
