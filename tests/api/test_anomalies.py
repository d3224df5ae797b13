"""GET /v1/anomalies: the rules replayed over a hand-built log (exact ratios, starts and ends), over a
quiet log (nothing), and over the demo's log (its three stories, when they began), on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import Settings, load_settings
from cost_api.lenses.anomalies import anomalies_answer
from cost_api.tools.demo.catalogue import LEAKED_TOKEN
from cost_api.tools.demo.run import run_demo
from cost_api.watch.alerts import AlertEngine
from cost_api.watch.anomalies import episode_id, episodes, replay
from cost_api.watch.budgets import BudgetTracker
from cost_api.watch.webhook import verify
from cost_api.web.app import create_app
from cost_api.web.service import Service, build_service
from cost_api.windows import Range, iso, parse_window

from ..clock import FakeClock
from ..conftest import BACKENDS
from ..logdb import LogDB, PostgresLog, Row
from ..reads import recorded_reads

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday, in the past: its hours are closed
HOUR = timedelta(hours=1)
EPISODE_FIELDS = [
    "kind",
    "id",
    "rule",
    "dimension",
    "key",
    "started_at",
    "ended_at",
    "peak_ratio",
    "spend",
    "extra",
    "baseline_days",
]
_names = itertools.count(1)
HAND = {"dimensions": ["endpoint"], "min_requests": 1}  # the hand-built logs' spikes are a few calls each


def sonnet(when: datetime, endpoint: str, dollars: float, **kw: Any) -> Row:
    """A call costing `dollars`: claude-3-5-sonnet input is $3 per 1M tokens."""
    return Row(when, "anthropic", "claude-3-5-sonnet", endpoint, prompt_tokens=round(dollars * 1e6 / 3), **kw)


async def spiky_log(log: LogDB, now: datetime = NOW) -> None:
    """Nine days of $3 an hour at /steady and at /ended and /open; then /ended runs at $9/h for the
    two hours from now-5h, /open for the last two hours; /fresh spends $1.50 in the last hour (3 calls), its first;
    /loop calls 100 times a minute over now-30m…now-25m, against 1/min at those minutes on the 7 days before."""
    rows: list[Row] = []
    hour = now - timedelta(days=9)
    while hour < now:
        for endpoint, spike in (("/steady", ()), ("/ended", (5, 4)), ("/open", (2, 1))):
            calls = 3 if round((now - hour) / HOUR) in spike else 1
            rows += [sonnet(hour + timedelta(minutes=10 + i), endpoint, 3.0) for i in range(calls)]
        hour += HOUR
    rows += [sonnet(now - timedelta(minutes=50 - 10 * i), "/fresh", d) for i, d in enumerate((0.3, 0.6, 0.6))]
    storm = now - timedelta(minutes=30)
    for day in range(8):
        per_minute = 100 if day == 0 else 1
        for minute in range(5):
            start = storm - timedelta(days=day, minutes=-minute)
            rows += [Row(start + timedelta(milliseconds=500 * i), endpoint="/loop") for i in range(per_minute)]
    await log.insert(rows)


Tracker = Callable[[Settings, Service], BudgetTracker]


@asynccontextmanager
async def serve(
    url: str, tracker: Tracker | None = None, clock: FakeClock | None = None, **settings: Any
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app over the log at `url` (its budget tracker made by `tracker`), on `clock` if given."""
    config = load_settings(environ={}, overrides={"database_url": url, **settings})
    service = build_service(config, clock)
    budgets = tracker(config, service) if tracker else None
    async with AsyncTestClient(app=create_app(config, service, budgets)) as client:
        await rollups_ready(service)
        yield client


async def rollups_ready(service: Service) -> None:
    """Wait until the app's closed hours are in memory (so that its shutdown interrupts no first read)."""
    async with asyncio.timeout(30):
        while not service.aggregator.rollups.ready:
            await asyncio.sleep(0.02)


async def anomalies(client: AsyncTestClient[Any], **params: str) -> dict[str, Any]:
    response = await client.get("/v1/anomalies", params={"to": iso(NOW), "view": "episodes", **params})
    assert response.status_code == 200, response.text
    return response.json()


def found(body: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(e["rule"], e["key"], e["started_at"], e["ended_at"], e["peak_ratio"], e["spend"]) for e in body["items"]}


# --------------------------------------------------------------------------- a hand-built log


async def test_the_rules_on_a_hand_built_log(log: LogDB) -> None:
    await spiky_log(log)
    async with serve(log.url, alerts=HAND) as client:
        body = await anomalies(client, window="1d")
    assert body["range"] == {"from": iso(NOW - timedelta(days=1)), "to": iso(NOW)}
    assert all(list(e) == EPISODE_FIELDS for e in body["items"])
    h = lambda n: iso(NOW - n * HOUR)  # noqa: E731
    assert found(body) == {
        # $9 against the same clock hour's $3 on each of the 7 days before: 3.0 ≥ 2.5; two hours, $18
        ("burn_rate", "/ended", h(5), h(3), 3.0, 18.0),
        ("burn_rate", "/open", h(2), None, 3.0, 18.0),  # still open at `to`
        # nothing in the 7 days before: new, and a burn against a zero baseline (no ratio)
        ("new_spender", "/fresh", h(1), None, None, 1.5),
        ("burn_rate", "/fresh", h(1), None, None, 1.5),
        # 100 requests a minute over 5 minutes against 1 a minute; costs nothing
        ("request_storm", "/loop", h(1), None, 100.0, 0.0),
    }
    # extra: Σ (spend − B1) over the holding hours: /ended and /open 2 × ($9 − $3); /fresh against nothing
    extra = {(e["rule"], e["key"]): e["extra"] for e in body["items"]}
    assert extra == {
        ("burn_rate", "/ended"): 12.0,
        ("burn_rate", "/open"): 12.0,
        ("new_spender", "/fresh"): 1.5,
        ("burn_rate", "/fresh"): 1.5,
        ("request_storm", "/loop"): 0.0,
    }
    storm = next(e for e in body["items"] if e["rule"] == "request_storm")
    assert storm["id"] == episode_id("request_storm", "endpoint", "/loop", NOW - HOUR)
    assert [e["started_at"] for e in body["items"]] == sorted((e["started_at"] for e in body["items"]), reverse=True)


async def test_incidents_group_and_rank_the_episodes(log: LogDB) -> None:
    await spiky_log(log)
    async with serve(log.url, alerts={**HAND, "min_impact": 0}) as client:
        body = await anomalies(client, window="1d", view="incidents")
        default = await client.get("/v1/anomalies", params={"to": iso(NOW), "window": "1d"})
        bad = await client.get("/v1/anomalies", params={"view": "all"})
    assert body["view"] == "incidents"
    h = lambda n: iso(NOW - n * HOUR)  # noqa: E731
    # two endpoints share no request: each its own incident; /fresh's two rules are one. The impact is
    # the largest extra (the rules see the same dollars), per hour over its hours (open: up to `to`)
    assert [
        (i["key"], i["started_at"], i["ended_at"], i["impact"], i["impact_per_hour"], len(i["episodes"]))
        for i in body["items"]
    ] == [
        ("/open", h(2), None, 12.0, 6.0, 1),  # $12 ties /ended's: the newer first
        ("/ended", h(5), h(3), 12.0, 6.0, 1),
        ("/fresh", h(1), None, 1.5, 1.5, 2),
        ("/loop", h(1), None, 0.0, 0.0, 1),
    ]
    assert all(i["related"] == [] for i in body["items"])
    assert default.json()["items"] == body["items"]  # incidents are the default view
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "view"
    async with serve(log.url, alerts=HAND) as client:
        body = await anomalies(client, window="1d", view="incidents")
    # min_impact $5 by default: /fresh's $1.50 is left out; the storm costs nothing but is kept
    assert [i["key"] for i in body["items"]] == ["/open", "/ended", "/loop"]


async def test_the_24_hour_window_carries_a_spike_for_a_day(log: LogDB) -> None:
    rows = [sonnet(NOW - n * HOUR, "/spike", 3.0) for n in range(1, 10 * 24) if n != 30]
    await log.insert([*rows, sonnet(NOW - 30 * HOUR, "/spike", 201.0)])
    config = load_settings(environ={}, overrides={"database_url": log.url, "alerts": HAND})
    service = build_service(config)
    try:
        items = await episodes(service, Range(NOW - 2 * 24 * HOUR, NOW), now=NOW)
    finally:
        await service.close()
    # the hour itself: $201 against $3 (67×); then (23 × 3 + 201) / 24 = $11.25/h against $3/h (3.75×)
    # for as long as the last 24 hours hold the spike
    assert [(e["rule"], e["started_at"], e["ended_at"], e["peak_ratio"], e["spend"]) for e in items] == [
        ("burn_rate", iso(NOW - 30 * HOUR), iso(NOW - 6 * HOUR), 67.0, 270.0)
    ]


async def test_an_unfinished_hour_starts_episodes_but_does_not_end_them(log: LogDB) -> None:
    await spiky_log(log)
    config = load_settings(environ={}, overrides={"database_url": log.url, "alerts": HAND})
    service = build_service(config)
    try:
        # 6 minutes into an hour without rows: /open's trailing hour holds 9/10 of its last $9 hour, 2.7×
        # its baseline; the others no longer hold, but an unfinished hour cannot end them
        later = NOW + timedelta(minutes=6)
        items = await episodes(service, Range(NOW - HOUR, later), now=later)
        assert {(e["rule"], e["key"], e["ended_at"]) for e in items} == {
            ("burn_rate", "/open", None),
            ("new_spender", "/fresh", None),
            ("burn_rate", "/fresh", None),
            ("request_storm", "/loop", None),
        }
        # once that hour is over, every episode that stopped holding ends where it did
        later = NOW + 2 * HOUR
        items = await episodes(service, Range(NOW - HOUR, later), now=later)
        assert {(e["rule"], e["key"], e["ended_at"]) for e in items} == {
            ("burn_rate", "/open", iso(NOW)),
            ("new_spender", "/fresh", iso(NOW)),
            ("burn_rate", "/fresh", iso(NOW)),
            ("request_storm", "/loop", iso(NOW)),
        }
        assert await episodes(service, Range(NOW + HOUR, later), now=later) == []  # ended before the range
    finally:
        await service.close()


async def test_a_daily_rhythm_alone_is_no_anomaly(log: LogDB) -> None:
    rhythm = [0.2, 0.2, 0.2, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.6, 0.5, 0.4,
              0.3, 0.3, 0.2]  # fmt: skip
    rows = []
    hour = NOW - timedelta(days=10)
    while hour < NOW:
        for endpoint, token, peak in (("/a", "tok_aaaaaaaaaaaaaaaa", 10), ("/b", "tok_bbbbbbbbbbbbbbbb", 16)):
            calls = round(peak * rhythm[hour.hour])
            rows += [sonnet(hour + timedelta(minutes=3 * i), endpoint, 0.5, token_id=token) for i in range(calls)]
        hour += HOUR
    await log.insert(rows)
    async with serve(log.url) as client:
        body = await anomalies(client, window="14d")
    assert body["items"] == []


async def test_a_lookback_without_groups_is_no_anomaly(log: LogDB) -> None:
    """Nine days of spend that ended a month before the window: the replayed hours (the window, the week
    before it and their baselines) hold no group, for every dimension (model's key is two columns)."""
    ended = NOW - timedelta(days=30)
    await log.insert([sonnet(ended - n * HOUR, "/old", 3.0) for n in range(1, 9 * 24)])
    async with serve(log.url) as client:
        body = await anomalies(client, window="1d")
    assert body["items"] == []
    assert body["range"] == {"from": iso(NOW - timedelta(days=1)), "to": iso(NOW)}


async def test_budget_episodes_come_from_the_tracker_once_per_period(log: LogDB) -> None:
    await log.insert([sonnet(NOW - timedelta(minutes=30), "/agent", 45.0), sonnet(NOW - HOUR, "/chat", 9.0)])
    budgets = [
        {"endpoint": "/agent", "limit_usd": 30, "period": "day"},
        {"endpoint": "/agent", "limit_usd": 50, "period": "month"},
        {"endpoint": "/chat", "limit_usd": 100, "period": "week"},
    ]

    def tracker(config: Settings, service: Service) -> BudgetTracker:
        return BudgetTracker(config, service.aggregator)

    async with serve(log.url, tracker, FakeClock(NOW), budgets=budgets, alerts={"dimensions": []}) as client:
        body = await anomalies(client, window="1d")
    day, month = iso(datetime(2026, 11, 18, tzinfo=UTC)), iso(datetime(2026, 11, 1, tzinfo=UTC))
    assert found(body) == {
        ("budget_warning", "/agent", day, None, 1.5, 45.0),  # $45 of $30: exceeded, so warned too
        ("budget_exceeded", "/agent", day, None, 1.5, 45.0),
        ("budget_warning", "/agent", month, None, 0.9, 45.0),  # 90% of $50 ≥ warn_at_pct 80
    }


async def test_filters_are_refused(log: LogDB) -> None:
    async with serve(log.url) as client:
        response = await client.get("/v1/anomalies", params={"endpoint": "/chat"})
        assert response.status_code == 400
        assert response.json()["errors"] == [
            {"field": "endpoint", "message": "filters do not apply to anomalies: each rule watches every value"}
        ]
        response = await client.get("/v1/anomalies", params={"window": "3x"})
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "window"


# --------------------------------------------------------------------------- the demo's stories

DEMO_ALERTS = {"min_spend_per_hour": 0.5}  # the demo's volume is small: its stories spend little


@pytest.fixture(scope="module", params=BACKENDS)
async def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    """21 days of the demo log (15,000 requests a day) up to NOW."""
    async with generated(request, tmp_path_factory, DEMO_ALERTS, days=21, requests_per_day=15_000) as service:
        yield service


@asynccontextmanager
async def generated(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    alerts: dict[str, Any],
    backend: str | None = None,
    **demo: Any,
) -> AsyncIterator[Service]:
    """A log `run_demo(…, **demo)` generates up to NOW in a new database of `backend` (by default the
    fixture's parameter), served (with `alerts`) with its closed hours already in memory."""
    if (backend or request.param) == "sqlite":
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}", None
    else:
        empty = await empty_postgres(request.getfixturevalue("pg_cluster"))
        url, drop = empty.url, empty.drop
    await asyncio.to_thread(partial(run_demo, url, now=NOW, progress=False, **demo))
    service = build_service(load_settings(environ={}, overrides={"database_url": url, "alerts": alerts}))
    await service.aggregator.warm()
    try:
        yield service
    finally:
        await service.close()
        if drop is not None:
            await drop()


async def empty_postgres(cluster: Any) -> PostgresLog:
    """A new database without the schema: the demo writes only into databases it creates."""
    name = f"anomalies{next(_names)}"
    admin = await asyncpg.connect(cluster.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return PostgresLog(cluster.dsn, cluster.url(name), name)


def began(items: list[dict[str, Any]], rule: str, dimension: str, key: str) -> list[datetime]:
    return [
        datetime.fromisoformat(e["started_at"])
        for e in items
        if (e["rule"], e["dimension"], e["key"]) == (rule, dimension, key)
    ]


def near(starts: list[datetime], when: datetime) -> bool:
    return any(abs(start - when) <= HOUR for start in starts)


async def test_the_demo_stories_are_episodes_from_when_they_began(
    demo: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `GET /v1/anomalies?window=14d` answers (called here in the test's loop, on the warm service)."""
    reads = recorded_reads(monkeypatch, demo.db)
    window = parse_window(window="14d", from_=None, to=iso(NOW), tz=UTC_ZONE, default="14d", now=NOW)
    body = msgspec.to_builtins(await anomalies_answer(demo, window, view="episodes"))
    assert list(body) == ["range", "view", "items", "pricing", "data_quality", "as_of", "latest_request_at"]
    items = body["items"]
    leaked = f"{LEAKED_TOKEN[1]}…"  # tokens are keyed as displayed, never by id
    assert near(began(items, "new_spender", "token", leaked), NOW - timedelta(days=10))
    monday = datetime(2026, 11, 16, tzinfo=UTC)
    assert near(began(items, "burn_rate", "endpoint", "/agent-proxy-claude"), monday)
    storm = [e for e in items if (e["rule"], e["key"]) == ("request_storm", "/classify-intent")]
    assert [(e["started_at"], e["ended_at"]) for e in storm] == [(iso(NOW - HOUR), None)]  # began at now-20m
    assert all(not e["key"].startswith("tok_r8c2") for e in items)
    # closed hours came from memory: the log was read for the edges of whole hours and the storm's minutes
    assert {name for name, _ in reads} <= {"log_bounds", "freshness", "token_labels", "groups", "requests_per_minute"}
    for name, p in reads:
        if name == "groups":
            assert p["end"] - p["start"] < HOUR and p["end2"] - p["start2"] < HOUR
        if name == "requests_per_minute":
            assert p["end"] - p["start"] <= timedelta(days=1)


async def test_the_live_engine_sends_each_open_demo_incident_once(demo: Service) -> None:
    from .test_alerts import SECRET, Receiver  # that module builds on this one's logs

    receiver = Receiver()
    alerts = {**DEMO_ALERTS, "webhook_url": receiver.url, "webhook_secret": SECRET}
    settings = load_settings(environ={}, overrides={"database_url": demo.settings.database_url, "alerts": alerts})
    service = build_service(settings, FakeClock(NOW))  # the demo's log, served at NOW
    await service.aggregator.warm()
    engine = AlertEngine(settings, service)
    try:
        found = await replay(service, Range(NOW - 3 * HOUR, NOW))
        open_now = {e.id for e in found if e.open}
        assert len(open_now) >= 4  # at least the storm, on each dimension
        await engine.tick()
        await engine.drain()
        assert await engine.tick() == []
        await engine.drain()
    finally:
        await engine.stop()
        await service.close()
        receiver.close()
    events = receiver.events()
    assert {e["event"] for e in events} == {"fired"} and len({e["id"] for e in events}) == len(events)
    assert all(verify(SECRET, headers["X-Cost-Signature"], body) for headers, body, _ in receiver.posts)
    # fewer events than open episodes: the storm's keys (its endpoint, token, provider, model) are one incident
    assert len(events) < len(open_now)
    storm = [e for e in events if "endpoint:/classify-intent" in [f"{e['dimension']}:{e['key']}", *e["related"]]]
    assert len(storm) == 1 and storm[0]["rule"] == "request_storm"


async def test_a_tag_is_a_dimension_of_the_rules(log: LogDB) -> None:
    await spiky_log(log)
    await log.execute("UPDATE request_log SET token_id = 'tok_ended_team_a' WHERE endpoint = '/ended'")
    rules = [{"token": "tok_ended_team_a", "tags": {"team": "a"}}]
    async with serve(log.url, alerts={**HAND, "dimensions": ["tag:team"]}, token_tags=rules) as client:
        body = await anomalies(client, window="1d")
        incidents = await anomalies(client, window="1d", view="incidents")
    h = lambda n: iso(NOW - n * HOUR)  # noqa: E731
    # team a is /ended's token: $9 against $3 at the same clock hour, two hours. The rest is (untagged):
    # /steady and /open's $6/h rising to $12, and $13.50 with /fresh: 2.0× and 2.25×, under 2.5×
    assert found(body) == {("burn_rate", "a", h(5), h(3), 3.0, 18.0)}
    assert [(e["dimension"], e["extra"]) for e in body["items"]] == [("tag:team", 12.0)]
    assert [(i["dimension"], i["key"], i["impact"]) for i in incidents["items"]] == [("tag:team", "a", 12.0)]
