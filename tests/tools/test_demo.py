"""The demo generator: what it writes, where it refuses to write, and the three stories in its log."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from cost_api.resources import sql_dir
from cost_api.tools.demo import run
from cost_api.tools.demo.catalogue import LEAKED_TOKEN, TEAM_NAMES, epoch_ms
from cost_api.tools.demo.generator import DemoError, LogGenerator, Params
from cost_api.tools.demo.run import run_demo

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
NOW_MS = int(NOW.timestamp()) * 1000
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
STORM_FROM = NOW_MS - 20 * MINUTE
LEAKED = "tok_r8c2kq7wm4z9x3vbn5ha"
CONTRACT_COLUMNS = [
    "id", "created_at", "request_id", "provider", "model", "endpoint", "token_id", "status_code", "streamed",
    "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cache_hit",
    "prompt_tokens_avoided", "completion_tokens_avoided", "latency_ms", "cache_key",
    "cache_write_1h_tokens", "service_tier", "usage_exact",  # optional: read when present
]  # fmt: skip


def generate(path: Path, **options: Any) -> int:
    settings: dict[str, Any] = {"days": 3, "requests_per_day": 300, "now": NOW, "progress": False}
    return run_demo(f"sqlite:///{path}", **(settings | options))


def query(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(path: Path, sql: str, *params: object) -> Any:
    return query(path, sql, *params)[0][0]


def count(path: Path, where: str, *params: object) -> int:
    return scalar(path, f"SELECT count(*) FROM request_log WHERE {where}", *params)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("demo") / "small.db"
    return path, generate(path)


@pytest.fixture(scope="module")
def stories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two weeks at 2,000 requests a day in Europe/Berlin: enough to see each story against a baseline."""
    path = tmp_path_factory.mktemp("demo") / "stories.db"
    generate(path, days=14, requests_per_day=2000, tz="Europe/Berlin")
    return path


def test_writes_the_contract_columns_into_a_new_sqlite_database(small: tuple[Path, int]) -> None:
    path, written = small
    assert [row[1] for row in query(path, "PRAGMA table_info(request_log)")] == CONTRACT_COLUMNS
    assert scalar(path, "PRAGMA journal_mode") == "wal"
    assert written == count(path, "1") > 60_000
    first, last = query(path, "SELECT min(created_at), max(created_at) FROM request_log")[0]
    assert first >= NOW_MS - 3 * DAY and last < NOW_MS
    previous = "(SELECT created_at FROM request_log AS r WHERE r.id = request_log.id - 1)"
    assert count(path, f"created_at < {previous}") == 0  # ids follow time
    providers = {p for (p,) in query(path, "SELECT DISTINCT provider FROM request_log")}
    assert providers == {"anthropic", "openai", "google", "cohere", "mistral", "groq", "together", "ollama"}
    assert query(path, "SELECT created_at, seed, days, requests_per_day, tz FROM cost_api_demo") == [
        (NOW_MS, 1, 3, 300, "UTC")
    ]


def test_labels_most_tokens_and_leaves_some_unlabelled_or_anonymous(small: tuple[Path, int]) -> None:
    path, _ = small
    names = {name for (name,) in query(path, "SELECT name FROM api_tokens")}
    assert {"customer-A", "customer-B", "leaked-ci-token"} <= names and len(names) > 200
    assert scalar(path, "SELECT count(*) FROM api_tokens WHERE prefix NOT GLOB 'pg_live_???'") == 0
    assert count(path, "token_id NOT IN (SELECT id FROM api_tokens)") > 0
    assert count(path, "token_id IS NULL") > 0


def test_is_deterministic_for_a_seed_and_now(small: tuple[Path, int], tmp_path: Path) -> None:
    path, written = small
    everything = "SELECT * FROM request_log ORDER BY id"
    assert generate(tmp_path / "again.db") == written
    assert query(tmp_path / "again.db", everything) == query(path, everything)
    for table in ("api_tokens ORDER BY id", "cost_api_demo"):
        assert query(tmp_path / "again.db", f"SELECT * FROM {table}") == query(path, f"SELECT * FROM {table}")
    generate(tmp_path / "other.db", seed=2)
    assert query(tmp_path / "other.db", everything) != query(path, everything)


def test_the_generator_places_the_stories_where_the_catalogue_says() -> None:
    """Facts worked out by hand from the catalogue, for a log of 14 days up to NOW in Europe/Berlin."""
    generator = LogGenerator(Params(NOW_MS, 1, 14, 2000, "Europe/Berlin"))
    assert epoch_ms(NOW) == NOW_MS and epoch_ms(datetime(1970, 1, 2, tzinfo=UTC)) == DAY
    # Monday 2026-11-23 00:00 in Berlin (CET, UTC+1) is 23:00 UTC on the Sunday
    assert generator.monday_ms == epoch_ms(datetime(2026, 11, 22, 23, 0, tzinfo=UTC))
    assert generator.mid_ms == NOW_MS - 7 * DAY  # growth is 1 mid-window
    assert generator.storm == (STORM_FROM, NOW_MS)
    assert generator.leak_from == NOW_MS - 10 * DAY
    # a leaked request costs (4000 × $15 + 800 × $75) / 1M = $0.12 on average: $40 a day is 333⅓ of them
    assert generator.leak_rate_per_ms * DAY == pytest.approx(1000 / 3)
    names = [name for (_, _, name) in generator.tokens]
    assert names[:10] == [f"customer-{c}" for c in "ABCDEFGHIJ"]  # the ten most active are always named
    assert len(generator.tokens) == 301 and generator.tokens[-1] == LEAKED_TOKEN
    assert generator.storm_token == generator.tokens[2][0]  # customer-C's token loops
    with pytest.raises(DemoError, match="unknown time zone 'Mars/Olympus'"):
        LogGenerator(Params(NOW_MS, 1, 14, 2000, "Mars/Olympus"))


@pytest.mark.parametrize(
    "ddl",
    [(sql_dir() / "schema" / "sqlite.sql").read_text(), "CREATE TABLE customers (id INTEGER PRIMARY KEY)"],
    ids=["request_log", "other-tables"],
)
def test_refuses_a_database_it_did_not_create(tmp_path: Path, ddl: str) -> None:
    path = tmp_path / "gateway.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
    tables = query(path, "SELECT name FROM sqlite_master")
    with pytest.raises(DemoError, match="was not created by cost-api demo; refusing to write into it"):
        generate(path)
    assert query(path, "SELECT name FROM sqlite_master") == tables
    assert scalar(path, "PRAGMA journal_mode") == "delete"


def test_leaves_its_own_log_alone_when_run_again(small: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    path, written = small
    assert run_demo(f"sqlite:///{path}", now=NOW) == 0
    assert "already holds a demo log" in capsys.readouterr().err
    assert count(path, "1") == written


def test_starts_an_interrupted_generation_again(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    written = generate(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM cost_api_demo")  # the marker row is written last
        conn.execute("DELETE FROM request_log WHERE id > 1000")
    assert generate(path) == written == count(path, "1")


def test_the_leaked_token_spends_about_40_dollars_a_day_since_10_days_ago(stories: Path) -> None:
    first, models, prompt, completion, hours = query(
        stories,
        "SELECT min(created_at), count(DISTINCT model), sum(prompt_tokens), sum(completion_tokens), "
        "count(DISTINCT created_at / 3600000) FROM request_log WHERE token_id = ?",
        LEAKED,
    )[0]
    assert NOW_MS - 10 * DAY <= first < NOW_MS - 10 * DAY + HOUR
    assert models == 1 and hours > 200  # one expensive model, around the clock
    dollars_per_day = (prompt * 15 + completion * 75) / 1e6 / 10  # claude-opus-4-1 list prices
    assert 36 < dollars_per_day < 44
    assert scalar(stories, "SELECT name FROM api_tokens WHERE id = ?", LEAKED) == "leaked-ci-token"


def test_the_agent_proxy_runs_at_three_times_its_usual_since_monday(stories: Path) -> None:
    since = int(datetime(2026, 11, 23, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()) * 1000
    agent = "endpoint = '/agent-proxy-claude' AND created_at >= ? AND created_at < ?"
    before = count(stories, agent, since - 7 * DAY, NOW_MS - 7 * DAY)
    after = count(stories, agent, since, NOW_MS)
    assert before > 100 and 2.5 < after / before < 3.5
    assert count(stories, agent, since - 7 * DAY, since) < 7 * after / 2.5  # the week before was usual
    models = query(stories, "SELECT DISTINCT model FROM request_log WHERE endpoint = '/agent-proxy-claude'")
    assert models == [("claude-sonnet-4-5-20250929",)]


def test_a_retry_storm_hits_classify_intent_in_the_last_20_minutes(stories: Path) -> None:
    classify = "endpoint = '/classify-intent' AND model = 'gpt-4o-mini-2024-07-18' AND created_at BETWEEN ? AND ?"
    assert 47 < count(stories, classify, STORM_FROM, NOW_MS - 1) / 1200 < 53
    assert count(stories, classify, STORM_FROM - 20 * MINUTE, STORM_FROM - 1) < 60


def test_about_10_percent_are_response_cache_hits_that_bill_nothing(stories: Path) -> None:
    hits = count(stories, "cache_hit = 1 AND created_at < ?", STORM_FROM)
    assert 0.08 < hits / count(stories, "created_at < ?", STORM_FROM) < 0.12
    assert count(stories, "cache_hit = 1 AND prompt_tokens + completion_tokens > 0") == 0
    assert count(stories, "cache_hit = 1 AND cache_read_tokens + cache_write_tokens > 0") == 0
    assert count(stories, "cache_hit = 1 AND (prompt_tokens_avoided = 0 OR cache_key IS NULL)") == 0
    assert count(stories, "cache_hit = 0 AND prompt_tokens_avoided + completion_tokens_avoided > 0") == 0
    repeats = "SELECT max(n) FROM (SELECT count(*) AS n FROM request_log GROUP BY cache_key HAVING cache_key > '')"
    assert scalar(stories, repeats) > 100


def test_the_log_has_the_texture_of_a_real_gateway(stories: Path) -> None:
    rows = count(stories, "created_at < ?", STORM_FROM)

    def share(condition: str) -> float:
        return count(stories, f"created_at < ? AND {condition}", STORM_FROM) / rows

    assert 0.012 < share("status_code IN (429, 500)") < 0.025
    assert 0.006 < share("model = 'acme/llama-3-finetune-v7'") < 0.015  # unpriced
    assert share("provider = 'anthropic' AND cache_read_tokens > 0") > 0.01
    assert share("provider = 'anthropic' AND cache_write_tokens > 0") > 0.001
    assert share("provider IN ('openai', 'google') AND cache_read_tokens > 0") > 0.01
    assert share("provider <> 'anthropic' AND cache_write_tokens > 0") == 0
    assert share("model = 'us.anthropic.claude-3-5-haiku-20241022-v1:0'") > 0
    long = "SELECT DISTINCT model FROM request_log WHERE prompt_tokens > ?"
    assert {m for (m,) in query(stories, long, 200_000)} == {
        "models/gemini-2.5-pro", "claude-sonnet-4-20250514", "gpt-5.4-2026-03-05"
    }  # fmt: skip
    assert {m for (m,) in query(stories, long, 272_000)} >= {"gpt-5.4-2026-03-05"}
    berlin_hour = "(created_at / 3600000 + 1) % 24 = ? AND token_id IS NOT ? AND created_at < ?"
    assert count(stories, berlin_hour, 14, LEAKED, STORM_FROM) > 4 * count(stories, berlin_hour, 3, LEAKED, STORM_FROM)


def test_follow_catches_up_then_appends_until_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "live.db"
    start = datetime.now(UTC) - timedelta(hours=2)
    ticks: list[float] = []
    real_sleep, sigterm = time.sleep, signal.getsignal(signal.SIGTERM)

    def sleep(seconds: float) -> None:
        ticks.append(seconds)
        real_sleep(0.01)
        if len(ticks) == 3:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(run.time, "sleep", sleep)
    written = generate(path, days=1, now=start, follow=True)
    assert len(ticks) == 3 and signal.getsignal(signal.SIGTERM) is sigterm
    assert written == count(path, "1")
    assert count(path, "created_at > ? AND token_id = ?", int(start.timestamp() * 1000), LEAKED) > 10
    assert scalar(path, "SELECT max(created_at) FROM request_log") <= time.time() * 1000

    ticks.clear()
    assert generate(path, follow=True) >= 0  # its own log: follows it again rather than refusing
    assert query(path, "SELECT count(*) FROM cost_api_demo") == [(1,)]


def test_the_traffic_spreads_over_as_many_tokens_as_asked(tmp_path: Path) -> None:
    """The benchmark's many-tokens log: `tokens` regular tokens (plus the leaked one and anonymous)."""
    path = tmp_path / "many.db"
    generate(path, days=1, requests_per_day=20_000, tokens=2_000, teams=40)
    used = scalar(path, "SELECT count(DISTINCT token_id) FROM request_log")
    assert 1_000 < used <= 2_001  # Zipf-popular: most of the 2,000 are seen in 20,000 requests; +1 leaked
    assert 1_700 <= scalar(path, "SELECT count(*) FROM api_tokens") <= 2_001  # ~90% named, and the leaked one
    teams = {json.loads(t)["team"] for (t,) in query(path, "SELECT tags FROM api_tokens WHERE tags IS NOT NULL")}
    assert teams == {*TEAM_NAMES, *(f"team-{i}" for i in range(11, 41))}  # 40 teams: 10 named, team-11 … team-40


def test_tags_give_most_tokens_a_team_and_an_env(small: tuple[Path, int]) -> None:
    path, _ = small
    tags = {i: t for i, t in query(path, "SELECT id, tags FROM api_tokens")}
    parsed = [json.loads(t) for t in tags.values() if t is not None]
    assert {p["team"] for p in parsed} == {"search", "ads", "support", "growth", "platform", "data"}  # 6 teams
    assert {p["env"] for p in parsed} == {"prod", "staging", "ci"}
    assert all(set(p) == {"team", "env"} for p in parsed)
    assert 0 < sum(t is None for t in tags.values()) < 0.15 * len(tags)  # ~5% untagged
    assert json.loads(tags[LEAKED_TOKEN[0]]) == {"team": "platform", "env": "ci"}


async def test_the_demos_teams_on_postgres_are_the_sqlite_demos(pg_cluster: Any, tmp_path: Path) -> None:
    admin = await asyncpg.connect(pg_cluster.dsn)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "demo_teams"')
        await admin.execute('CREATE DATABASE "demo_teams"')
    finally:
        await admin.close()
    options = {"days": 1, "requests_per_day": 200, "now": NOW, "progress": False, "teams": 12}
    await asyncio.to_thread(run_demo, pg_cluster.url("demo_teams"), **options)
    generate(tmp_path / "teams.db", **options)
    conn = await asyncpg.connect(pg_cluster.url("demo_teams"))
    try:
        on_postgres = {r["id"]: r["tags"] for r in await conn.fetch("SELECT id, tags::text AS tags FROM api_tokens")}
    finally:
        await conn.close()
    on_sqlite = dict(query(tmp_path / "teams.db", "SELECT id, tags FROM api_tokens"))
    assert on_postgres.keys() == on_sqlite.keys()
    assert {i: t and json.loads(t) for i, t in on_postgres.items()} == {
        i: t and json.loads(t) for i, t in on_sqlite.items()
    }
    teams = {json.loads(t)["team"] for t in on_sqlite.values() if t}
    assert teams <= {*TEAM_NAMES, "team-11", "team-12"} and {"team-11", "team-12"} & teams
