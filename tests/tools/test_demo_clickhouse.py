"""`cost-api demo --db chdb:///…` and `--db clickhouse://…` (here: tests/chserver.py): the same log as on
SQLite (same seed, same `now`), row for row, and the API's answers on it the same."""

from __future__ import annotations

import itertools
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.store.clickhouse import chdb_connect
from cost_api.tools.demo.run import run_demo
from cost_api.web.app import create_app

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OPTIONS = {"days": 3, "requests_per_day": 300, "now": NOW, "progress": False}
_names = itertools.count(1)
# the same figures in both dialects' SQL
TOTALS = (
    "SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(cache_read_tokens), sum(cache_hit),"
    " count(DISTINCT token_id), min(id), max(id) FROM request_log"
)


@pytest.mark.parametrize("transport", ["chdb", "http"])
async def test_the_clickhouse_demo_is_the_sqlite_demo(
    transport: str, chdb_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = f"demo{next(_names)}"
    sqlite_url = f"sqlite:///{tmp_path / 'demo.db'}"
    chdb_url = f"chdb:///{chdb_dir}?database={database}"
    if transport == "http":
        chdb_url = f"clickhouse://default:@127.0.0.1:{request.getfixturevalue('chdb_http')}/{database}"
    written = run_demo(chdb_url, **OPTIONS)
    assert written == run_demo(sqlite_url, **OPTIONS) > 500
    assert run_demo(chdb_url, **OPTIONS) == 0  # its own log, left alone
    conn = chdb_connect(f"{chdb_dir}?database={database}")
    try:
        on_chdb = json.loads(bytes(conn.query(TOTALS, "JSONCompact").bytes()))["data"][0]
    finally:
        conn.close()
    with sqlite3.connect(tmp_path / "demo.db") as lite:
        on_sqlite = lite.execute(TOTALS).fetchone()
    assert [int(v) for v in on_chdb] == list(on_sqlite)
    assert on_sqlite[0] == written

    answers, by_team = [], []
    for url in (chdb_url, sqlite_url):
        app = create_app(load_settings(environ={}, overrides={"database_url": url}))
        async with AsyncTestClient(app=app) as client:
            params = {"from": "2026-11-22T12:00:00Z", "to": "2026-11-25T12:00:00Z"}
            answer = (await client.get("/v1/summary", params=params)).json()
            answer.pop("as_of"), answer["data_quality"].pop("future_after")  # the wall clock's
            teams = (await client.get("/v1/spend", params={**params, "group_by": "tag:team"})).json()
            assert len(teams["items"]) == 7  # the demo's 6 teams and (untagged): api_tokens.tags written too
            answers.append(answer)
            by_team.append(teams["items"])
    assert answers[0] == answers[1]
    assert by_team[0] == by_team[1]
    assert answers[0]["requests"] == written
