"""One error shape on every error path: an RFC 9457 problem document, never a stack trace.

`{"type", "title", "status", "detail", "errors": [{"field", "message"}]}` as
`application/problem+json`, for 400, 401, 404, 405, 422, 500, 503 and 504 alike.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.app import create_app
from cost_api.web.service import build_service
from cost_api.windows import epoch_ms

from ..clock import FakeClock
from ..conftest import ClientFactory
from ..logdb import LogDB, Row, SqliteLog
from ..pgcluster import free_port
from ..problems import SHAPE, assert_problem


@asynccontextmanager
async def served(url: str, **settings: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(load_settings(environ={}, overrides={"database_url": url, **settings}))
    async with AsyncTestClient(app=app) as client:
        yield client


async def paths(client: AsyncTestClient[Any]) -> set[str]:
    return set((await client.get("/schema/openapi.json")).json()["paths"])


BAD_PARAMETERS = [
    ("/v1/summary", {"window": "fortnight"}, "window"),
    ("/v1/summary", {"window": "0h"}, "window"),
    ("/v1/summary", {"tz": "Mars/Olympus_Mons"}, "tz"),
    ("/v1/summary", {"from": "yesterday-ish"}, "from"),
    ("/v1/summary", {"to": "2026-13-45T99:00:00Z"}, "to"),
    ("/v1/summary", {"from": "2026-11-20T00:00:00Z", "to": "2026-11-19T00:00:00Z"}, "from"),
    ("/v1/summary", {"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ("/v1/summary", {"top": "0"}, "top"),
    ("/v1/summary", {"top": "many"}, "top"),
    ("/v1/summary", {"top_window": "forever"}, "top_window"),
    ("/v1/spend", {"group_by": "colour"}, "group_by"),
    ("/v1/spend", {"limit": "5000"}, "limit"),
    ("/v1/trend", {"interval": "minute"}, "interval"),
]


async def test_400_names_the_parameter(client_for: ClientFactory) -> None:
    async with client_for() as client:
        known = await paths(client)
        for path, params, field in BAD_PARAMETERS:
            assert path in known
            body = assert_problem(await client.get(path, params=params), 400)
            assert body["type"] == "/problems/bad-parameter"
            assert [e["field"] for e in body["errors"]][:1] == [field], (path, params, body)
            assert field in body["detail"]


async def test_401_404_405(client_for: ClientFactory) -> None:
    async with client_for(api_keys=["the-key"]) as client:
        body = assert_problem(await client.get("/v1/summary"), 401)
        assert body["type"] == "/problems/unauthorized"
        assert_problem(await client.get("/v1/summary", headers={"X-API-Key": "not-the-key"}), 401)
        key = {"X-API-Key": "the-key"}
        for path in ("/v2/summary", "/v1/summary/extra", "/nothing", "/v1"):
            assert assert_problem(await client.get(path, headers=key), 404)["type"] == "/problems/not-found"
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = await client.request(method, "/v1/summary", headers=key)
            assert assert_problem(response, 405)["type"] == "/problems/method-not-allowed"
            assert "GET" in response.headers["allow"]


async def test_404_unpriced_model(client_for: ClientFactory) -> None:
    async with client_for() as client:
        assert "/v1/pricing/resolve" in await paths(client)
        response = await client.get("/v1/pricing/resolve", params={"provider": "acme", "model": "unheard-of-1"})
        body = assert_problem(response, 404, extension=set(response.json()) - SHAPE)
        assert "unheard-of-1" in body["detail"]


async def test_422_budget_exceeded(log: LogDB) -> None:
    """The budget tracker on a fixed clock: a row 5 s before it is in its month whatever the real time."""
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    await log.insert([Row(now - timedelta(seconds=5), endpoint="/chat", prompt_tokens=1_000_000)])  # $0.15
    budget = {"endpoint": "/chat", "limit_usd": 0.01, "period": "month"}
    settings = load_settings(environ={}, overrides={"database_url": log.url, "budgets": [budget]})
    service = build_service(settings, FakeClock(now))
    tracker = BudgetTracker(settings, service.aggregator)
    async with AsyncTestClient(app=create_app(settings, service, tracker)) as client:
        response = await client.get("/v1/budgets/check", params={"endpoint": "/chat"})
        body = assert_problem(response, 422, extension=set(response.json()) - SHAPE)
        assert body["type"].endswith("budget-exceeded")
        assert {"endpoint", "limit_usd", "spent", "resets_at"} <= set(body)


async def test_503_database_unavailable(backend: str, tmp_path: Path) -> None:
    url = (
        f"sqlite:///{tmp_path / 'gone.db'}"
        if backend == "sqlite"
        else f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    )
    async with served(url) as client:
        for path in ("/v1/summary", "/readyz"):
            response = await client.get(path)
            body = assert_problem(response, 503)
            assert body["type"] == "/problems/unavailable"
            assert int(response.headers["retry-after"]) > 0


async def test_504_query_timeout(tmp_path: Path) -> None:
    log = SqliteLog(tmp_path / "log.db")
    end = epoch_ms(datetime.now(UTC))
    conn = sqlite3.connect(log.path)
    with conn:  # 200,000 rows over the last 10 minutes: each groups query takes far more than 20 ms
        conn.execute(
            """WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < 199999)
            INSERT INTO request_log (created_at, provider, model, endpoint, prompt_tokens)
            SELECT ? - i * 3, 'openai', 'gpt-4o-mini', '/e' || (i % 7), 1000 FROM g""",
            (end,),
        )
    conn.close()
    # the last hour's spend: an answer over more than a day would wait for the warm-up, whose reads time
    # out too, and could answer 503 warming-up while it still runs
    async with served(log.url, query_timeout="20ms") as client:
        body = assert_problem(await client.get("/v1/spend", params={"window": "1h", "group_by": "provider"}), 504)
        assert body["type"] == "/problems/timeout"


async def test_500_without_a_stack_trace(client_for: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client_for() as client:

        async def broken(name: str, **params: Any) -> Any:
            raise RuntimeError("secret internals: /srv/app/db.py line 42")

        monkeypatch.setattr(client.app.state.service.db, "fetch", broken)
        response = await client.get("/v1/summary")
        body = assert_problem(response, 500)
        assert body["type"] == "/problems/internal-error"
        assert "secret" not in response.text
        assert "RuntimeError" not in response.text


async def test_the_document_says_503_and_504_only_where_admission_can_shed(client_for: ClientFactory) -> None:
    """One declaration (a handler's `opt=LIGHT`) decides both whether a request takes an admission slot
    and whether its operation is documented as answering 503/504."""
    async with client_for() as client:
        paths = (await client.get("/schema/openapi.json")).json()["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    for path, method in (("/v1/summary", "get"), ("/v1/spend", "get"), ("/grafana/query", "post")):
        assert {"503", "504"} <= statuses(path, method), path
    for path, method in (
        ("/v1/alerts", "get"),
        ("/v1/budgets", "get"),
        ("/v1/pricing", "get"),
        ("/grafana/metrics", "post"),
        ("/grafana/tag-keys", "post"),
    ):
        assert not {"503", "504"} & statuses(path, method), path
