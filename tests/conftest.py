"""Every API test runs on SQLite, on a real Postgres that this test run starts itself, and on ClickHouse
(chDB, the engine in this process): in `make test` the ClickHouse third runs the modules of
`CHDB_SUBSET`, in `make test-all` (`--all-dialects`) every one."""

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

from .chserver import clickhouse_http
from .clock import FakeClock
from .logdb import ChdbLog, LogDB, PostgresLog, SqliteLog
from .pgcluster import PgCluster, find_bindir

# chdb: ClickHouse in-process; clickhouse: the same engine over HTTP (clickhouse-connect → tests/chserver.py)
BACKENDS = ["sqlite", "postgres", "chdb", "clickhouse"]
# The test modules whose ClickHouse runs (chdb and clickhouse) are in `make test` too: the exactness
# test, the API's answers.
CHDB_SUBSET = frozenset(
    {"test_exactness", "test_queries", "test_summary", "test_spend", "test_requests", "test_readonly"}
)

# Tests that do not run on chdb, and why (docs/scale-out.md#not-done-yet): none is about an answer.
CHDB_SKIPPED = {
    "test_a_view_without_provider_or_model": "renames the log with Postgres/SQLite DDL (ALTER TABLE … RENAME TO)",
    "test_a_log_the_queries_cannot_read_stops_the_start_up": "retypes columns with Postgres DDL",
    "test_log_table_or_column_gone_then_back": "drops and restores the log with Postgres/SQLite DDL",
    "test_serves_from_another_directory": "a second process cannot open the chDB directory the test holds",
    # chDB's own way: tests/test_clickhouse.py
    "test_every_query_gets_only_what_is_left_of_the_requests_time": "looks inside the SQLite/Postgres pools",
    "test_a_client_that_leaves_stops_its_queries": "looks inside the SQLite/Postgres pools",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--all-dialects", action="store_true", help="run every test on chdb too (make test-all)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    every = config.getoption("--all-dialects")
    kept, left = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        on_chdb = spec is not None and spec.params.get("backend") in ("chdb", "clickhouse")
        name = getattr(item, "originalname", item.name)
        if on_chdb and name in CHDB_SKIPPED:
            item.add_marker(pytest.mark.skip(reason=f"not on chdb: {CHDB_SKIPPED[name]}"))
        if every:
            continue
        (left if on_chdb and item.module.__name__.rsplit(".", 1)[-1] not in CHDB_SUBSET else kept).append(item)
    if every:
        return
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's chDB directory: one engine per process, one database in it per test."""
    import chdb

    directory = tmp_path_factory.mktemp("chdb")
    keeper = chdb.connect(str(directory))  # the engine lives while the session does
    yield directory
    keeper.close()


@pytest.fixture(scope="session")
def chdb_http(chdb_dir: Path) -> Any:
    """The port of tests/chserver.py serving `chdb_dir` over ClickHouse's HTTP interface."""
    with clickhouse_http(chdb_dir) as port:
        yield port


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


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run's rollup snapshots and SQLite leader locks go to a directory of its own, not ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


async def empty_log(backend: str, request: pytest.FixtureRequest, path: Path) -> LogDB:
    """An empty request log (schema only) on `backend`: a SQLite file at `path`, or a new Postgres
    database on the session's cluster."""
    if backend == "sqlite":
        return SqliteLog(path)
    if backend == "chdb":
        return ChdbLog(request.getfixturevalue("chdb_dir"))
    if backend == "clickhouse":
        return ChdbLog(request.getfixturevalue("chdb_dir"), request.getfixturevalue("chdb_http"))
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
