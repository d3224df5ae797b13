"""Every API test runs twice: on SQLite and on a real Postgres that this test run starts itself."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.web.app import create_app
from cost_api.web.service import build_service

from .clock import FakeClock
from .logdb import LogDB, PostgresLog, SqliteLog
from .pgcluster import PgCluster, find_bindir

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found, and CI is set: the Postgres half must run")
        pytest.skip("PostgreSQL binaries not found (install postgresql to run the Postgres half)")
    cluster = PgCluster(bindir)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


async def empty_log(backend: str, request: pytest.FixtureRequest, path: Path) -> LogDB:
    """An empty request log (schema only) on `backend`: a SQLite file at `path`, or a new Postgres
    database on the session's cluster."""
    if backend == "sqlite":
        return SqliteLog(path)
    return await PostgresLog.create(request.getfixturevalue("pg_cluster"))


@pytest.fixture
async def log(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogDB]:
    """An empty request log (schema only) on the parametrised backend."""
    db = await empty_log(backend, request, tmp_path / "log.db")
    yield db
    await db.drop()


ClientFactory = Callable[..., Any]


@pytest.fixture
def client_for(log: LogDB) -> ClientFactory:
    """`async with client_for(tz="Europe/Berlin") as client:` — the app over `log`, with settings;
    `client_for(clock=FakeClock(...))`: on that clock instead of the real one."""

    @asynccontextmanager
    async def factory(clock: FakeClock | None = None, **settings: Any) -> AsyncIterator[AsyncTestClient[Any]]:
        config = load_settings(environ={}, overrides={"database_url": log.url, **settings})
        app = create_app(config, build_service(config, clock))
        async with AsyncTestClient(app=app) as client:
            yield client

    return factory
