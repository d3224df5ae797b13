"""Budgets: /v1/budgets and /v1/budgets/check against hand-computed dollars, on SQLite and Postgres.

Prices used (per 1M tokens): claude-3-5-sonnet $3 in / $15 out; gpt-4o-mini $0.15 in.
Europe/Berlin is UTC+1 in winter (CET) and UTC+2 in summer (CEST); in 2026 summer time runs from
03-29 01:00Z to 10-25 01:00Z, so 2026-03-29 is a 23-hour day and 2026-10-25 a 25-hour one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.app import create_app
from cost_api.web.service import build_service

from ..clock import FakeClock
from ..logdb import LogDB, PostgresLog, Row, SqliteLog, at
from ..pgcluster import PgCluster, find_bindir, free_port
from ..problems import assert_problem

BERLIN = "Europe/Berlin"
Switch = Callable[[], Awaitable[None]]


def sonnet(when: str | datetime, endpoint: str, prompt: int = 0, completion: int = 0, **kw: Any) -> Row:
    created = at(when) if isinstance(when, str) else when
    return Row(
        created,
        "anthropic",
        "claude-3-5-sonnet",
        endpoint,
        prompt_tokens=prompt,
        completion_tokens=completion,
        **kw,
    )


def mini(when: str, endpoint: str, prompt: int) -> Row:
    return Row(at(when), "openai", "gpt-4o-mini", endpoint, prompt_tokens=prompt)


def mystery(when: str, endpoint: str) -> Row:
    return Row(at(when), "together", "acme/mystery-model", endpoint, prompt_tokens=1000)


def budget(endpoint: str, limit: float, period: str, **kw: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "limit_usd": limit, "period": period, **kw}


@asynccontextmanager
async def served(
    log: LogDB | str, clock: FakeClock | None = None, **settings: Any
) -> AsyncIterator[tuple[AsyncTestClient[Any], BudgetTracker]]:
    """The app over `log` (or a database URL), on `clock` (else the real one); the first refresh has
    been tried when this yields."""
    url = log if isinstance(log, str) else log.url
    config = load_settings(environ={}, overrides={"database_url": url, **settings})
    service = build_service(config, clock)
    tracker = BudgetTracker(config, service.aggregator)
    async with AsyncTestClient(app=create_app(config, service, tracker)) as client:
        yield client, tracker


@asynccontextmanager
async def tracker_for(log: LogDB, clock: FakeClock, **settings: Any) -> AsyncIterator[BudgetTracker]:
    """A tracker without its background task: the test calls `refresh()` itself."""
    config = load_settings(environ={}, overrides={"database_url": log.url, **settings})
    service = build_service(config, clock)
    try:
        yield BudgetTracker(config, service.aggregator)
    finally:
        await service.close()


async def poll(condition: Callable[[], Any]) -> None:
    """Await `condition()` (a coroutine returning truthy) until it holds: the clock being frozen, only
    the work the test set off can make it hold (the timeout guards against a hang, it bounds nothing)."""
    async with asyncio.timeout(60):
        while not await condition():
            await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- the ledger

NOW = "2026-11-20T12:00:00Z"  # a Friday; Berlin is on CET (UTC+1)
LEDGER_BUDGETS = [
    budget("/summarise-ticket", 10, "month"),
    budget("/agent", 5, "day"),
    budget("/classify", 2, "week"),
    budget("/classify", 0.1875, "day"),  # warning from 80 %: $0.15
]


async def _ledger(log: LogDB) -> None:
    await log.insert(
        [
            # /summarise-ticket, month from 2026-11-01 00:00 CET = 2026-10-31T23:00Z
            sonnet("2026-10-31T22:59:59Z", "/summarise-ticket", prompt=10_000_000),  # October: not counted
            sonnet("2026-10-31T23:00:00Z", "/summarise-ticket", prompt=1_000_000),  # $3.00
            sonnet("2026-11-19T08:00:00Z", "/summarise-ticket", 1_000_000, 100_000),  # $3 + $1.50 = $4.50
            sonnet(  # a cache hit costs nothing, whatever it avoided
                "2026-11-19T09:00:00Z", "/summarise-ticket", cache_hit=True, prompt_tokens_avoided=1_000_000
            ),
            sonnet("2026-11-20T11:59:59Z", "/summarise-ticket", prompt=200_000),  # $0.60
            sonnet(NOW, "/summarise-ticket", prompt=10_000_000),  # at `now`: after the range [start, now)
            # /agent, day from 2026-11-20 00:00 CET = 2026-11-19T23:00Z
            sonnet("2026-11-19T22:59:59Z", "/agent", prompt=10_000_000),  # yesterday: not counted
            sonnet("2026-11-19T23:00:00Z", "/agent", 1_000_000, 200_000),  # $3 + $3 = $6.00
            # /classify, week from Monday 2026-11-16 00:00 CET = 2026-11-15T23:00Z
            mini("2026-11-16T10:00:00Z", "/classify", 1_000_000),  # $0.15 (week)
            mini("2026-11-20T10:00:00Z", "/classify", 1_000_000),  # $0.15 (week and today)
            mystery("2026-11-17T00:00:00Z", "/classify"),  # unpriced, this week
            mystery("2026-11-14T12:00:00Z", "/classify"),  # unpriced, last week: not counted
            # no budget
            sonnet("2026-11-20T10:00:00Z", "/other", prompt=10_000_000),
        ]
    )


async def test_budgets_match_the_hand_computed_ledger(log: LogDB) -> None:
    await _ledger(log)
    async with served(log, FakeClock(NOW), tz=BERLIN, budgets=LEDGER_BUDGETS) as (client, _):
        response = await client.get("/v1/budgets")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["age_seconds"] == 0.0  # the clock is frozen: the figure was read at this very instant
    assert body["stale"] is False
    # the projections: tests/api/test_budget_forecast.py
    assert [{k: v for k, v in i.items() if not k.startswith("projected")} for i in body["items"]] == [
        {
            "endpoint": "/summarise-ticket",
            "token": None,
            "tag": None,
            "seen": True,
            "period": "month",
            "period_start": "2026-10-31T23:00:00Z",
            "resets_at": "2026-11-30T23:00:00Z",
            "limit_usd": 10.0,
            "spent": 8.1,  # 3.00 + 4.50 + 0.60
            "remaining": 1.9,
            "used_pct": 81.0,
            "unpriced_requests": 0,
            "status": "warning",  # ≥ 80 % (the default warn_at_pct)
        },
        {
            "endpoint": "/agent",
            "token": None,
            "tag": None,
            "seen": True,
            "period": "day",
            "period_start": "2026-11-19T23:00:00Z",
            "resets_at": "2026-11-20T23:00:00Z",
            "limit_usd": 5.0,
            "spent": 6.0,
            "remaining": 0.0,  # never below zero; used_pct shows the overrun
            "used_pct": 120.0,
            "unpriced_requests": 0,
            "status": "exceeded",
        },
        {
            "endpoint": "/classify",
            "token": None,
            "tag": None,
            "seen": True,
            "period": "week",
            "period_start": "2026-11-15T23:00:00Z",
            "resets_at": "2026-11-22T23:00:00Z",
            "limit_usd": 2.0,
            "spent": 0.3,  # 0.15 + 0.15
            "remaining": 1.7,
            "used_pct": 15.0,
            "unpriced_requests": 1,  # the mystery model this week; it adds nothing to `spent`
            "status": "ok",
        },
        {
            "endpoint": "/classify",
            "token": None,
            "tag": None,
            "seen": True,
            "period": "day",
            "period_start": "2026-11-19T23:00:00Z",
            "resets_at": "2026-11-20T23:00:00Z",
            "limit_usd": 0.1875,
            "spent": 0.15,
            "remaining": 0.0375,
            "used_pct": 80.0,
            "unpriced_requests": 0,
            "status": "warning",  # exactly at 80 % of $0.1875 = $0.15
        },
    ]


async def test_a_budget_for_an_endpoint_never_logged_says_so_once(log: LogDB, caplog: pytest.LogCaptureFixture) -> None:
    """`seen`: true for an endpoint with rows in its current period, or only long before it; false
    for one the log has never had (a typo caps nothing), which is logged once, however often the
    figures are read."""
    await log.insert(
        [
            sonnet("2026-11-20T10:00:00Z", "/live", prompt=1_000_000),  # this month
            sonnet("2025-06-01T10:00:00Z", "/retired", prompt=1_000_000),  # long ago only
            sonnet("2026-11-20T10:00:00Z", "/summarise-tickets", prompt=1_000_000),  # not the one budgeted
        ]
    )
    budgets = [budget("/live", 10, "month"), budget("/retired", 10, "day"), budget("/summarise-ticket", 10, "month")]
    caplog.set_level(logging.WARNING, logger="cost_api.watch.budgets")
    async with tracker_for(log, FakeClock(NOW), budgets=budgets) as tracker:
        assert tracker.overview()["items"][0]["seen"] is None  # nothing read yet
        for _ in range(3):
            await tracker.refresh()
    assert [r.getMessage() for r in caplog.records if r.name == "cost_api.watch.budgets"] == [
        "budget for endpoint /summarise-ticket: no row of the log has that endpoint (request_log.endpoint); "
        "it caps nothing until one does"
    ]

    async with served(log, FakeClock(NOW), budgets=budgets) as (client, _):
        items = (await client.get("/v1/budgets")).json()["items"]
        check = (await client.get("/v1/budgets/check", params={"endpoint": "/summarise-ticket"})).json()
    assert [(i["endpoint"], i["seen"], i["spent"]) for i in items] == [
        ("/live", True, 3.0),  # 1M × $3
        ("/retired", True, 0.0),
        ("/summarise-ticket", False, 0.0),
    ]
    assert [b["seen"] for b in check["budgets"]] == [False]


async def test_check_answers(log: LogDB) -> None:
    await _ledger(log)
    async with served(log, FakeClock(NOW), tz=BERLIN, budgets=LEDGER_BUDGETS) as (client, _):
        allowed = await client.get("/v1/budgets/check", params={"endpoint": "/summarise-ticket"})
        classify = await client.get("/v1/budgets/check", params={"endpoint": "/classify"})
        blocked = await client.get("/v1/budgets/check", params={"endpoint": "/agent"})
        unbudgeted = await client.get("/v1/budgets/check", params={"endpoint": "/other"})
        missing = await client.get("/v1/budgets/check")
        empty = await client.get("/v1/budgets/check", params={"endpoint": ""})
    assert allowed.status_code == 200, allowed.text
    body = allowed.json()
    assert body["allowed"] is True
    assert body["stale"] is False
    assert body["age_seconds"] == 0.0
    assert [(b["period"], b["spent"], b["status"]) for b in body["budgets"]] == [("month", 8.1, "warning")]
    assert [(b["period"], b["spent"]) for b in classify.json()["budgets"]] == [("week", 0.3), ("day", 0.15)]

    problem = assert_problem(blocked, 422, kind="budget-exceeded", extension=None)
    assert problem["endpoint"] == "/agent"
    assert problem["period"] == "day"
    assert problem["limit_usd"] == 5.0
    assert problem["spent"] == 6.0
    assert problem["resets_at"] == "2026-11-20T23:00:00Z"
    assert problem["detail"] == "/agent has spent $6 of its $5 day budget; it resets at 2026-11-20T23:00:00Z"
    assert [b["status"] for b in problem["budgets"]] == ["exceeded"]
    assert problem["errors"] == []

    assert unbudgeted.status_code == 200
    assert unbudgeted.json() == {"allowed": True, "budgets": [], "age_seconds": 0.0, "stale": False}

    for answer in (missing, empty):
        assert assert_problem(answer, 400, kind="bad-parameter")["errors"][0]["field"] == "endpoint"


async def test_no_budgets_configured(log: LogDB, client_for) -> None:
    await log.insert([sonnet("2026-11-19T10:00:00Z", "/x", prompt=1_000_000)])
    async with client_for() as client:
        overview = (await client.get("/v1/budgets")).json()
        check = await client.get("/v1/budgets/check", params={"endpoint": "/x"})
    assert overview == {"items": [], "age_seconds": None, "stale": False}
    assert check.status_code == 200
    assert check.json() == {"allowed": True, "budgets": [], "age_seconds": None, "stale": False}


# --------------------------------------------------------------------------- several budgets


async def test_two_budgets_on_one_endpoint(log: LogDB) -> None:
    budgets = [
        budget("/agent", 5, "day"),
        budget("/agent", 100, "month"),
        budget("/agent-b", 5, "day"),
        budget("/agent-b", 10, "month"),
    ]
    await log.insert(
        [
            sonnet("2026-11-02T10:00:00Z", "/agent", prompt=10_000_000),  # $30, this month, not today
            sonnet("2026-11-20T08:00:00Z", "/agent", prompt=2_000_000),  # $6 today
            sonnet("2026-11-02T10:00:00Z", "/agent-b", prompt=2_000_000),  # $6 this month
            sonnet("2026-11-20T08:00:00Z", "/agent-b", completion=400_000),  # $6 today
        ]
    )
    async with served(log, FakeClock(NOW), tz=BERLIN, budgets=budgets) as (client, _):
        day_only = await client.get("/v1/budgets/check", params={"endpoint": "/agent"})
        both = await client.get("/v1/budgets/check", params={"endpoint": "/agent-b"})
    # /agent: day $6 of $5 exceeded, month $36 of $100 ok: the day budget blocks, and is named
    assert day_only.status_code == 422
    problem = day_only.json()
    assert (problem["period"], problem["limit_usd"], problem["spent"]) == ("day", 5.0, 6.0)
    assert problem["resets_at"] == "2026-11-20T23:00:00Z"
    assert [(b["period"], b["spent"], b["status"]) for b in problem["budgets"]] == [
        ("day", 6.0, "exceeded"),
        ("month", 36.0, "ok"),
    ]
    # /agent-b: both exceeded (day $6 of $5, month $12 of $10): the month one decides when calls may
    # resume, so it is the one named
    assert both.status_code == 422
    problem = both.json()
    assert (problem["period"], problem["limit_usd"], problem["spent"]) == ("month", 10.0, 12.0)
    assert problem["resets_at"] == "2026-11-30T23:00:00Z"


# --------------------------------------------------------------------------- refresh


async def test_check_flips_to_422_within_one_refresh(log: LogDB) -> None:
    now = at(NOW)
    clock = FakeClock(now)
    await log.insert([sonnet(now - timedelta(seconds=2), "/flip", prompt=200_000)])  # $0.60
    async with served(log, clock, budget_refresh="1m", budgets=[budget("/flip", 1.5, "day")]) as (client, _):

        async def check() -> Any:
            return await client.get("/v1/budgets/check", params={"endpoint": "/flip"})

        first = await check()
        # committed late: stamped before the figure just read, counted all the same at the next refresh;
        # 200k × $3 + 20k × $15 = $0.90, so $1.50: exactly the cap
        await log.insert([sonnet(now - timedelta(seconds=1), "/flip", 200_000, 20_000)])
        await clock.asleep()  # the refresh task waits for its next tick
        clock.advance(59)
        before_the_tick = await check()  # a request reads the figure in memory, never the log

        async def blocked() -> bool:
            return (await check()).status_code == 422

        clock.advance(1)  # the tick: one refresh
        await poll(blocked)
        problem = (await check()).json()
    assert first.status_code == 200
    assert first.json()["budgets"][0]["spent"] == 0.6
    assert before_the_tick.status_code == 200
    assert (before_the_tick.json()["budgets"][0]["spent"], before_the_tick.json()["age_seconds"]) == (0.6, 59.0)
    assert (problem["spent"], problem["limit_usd"], problem["age_seconds"]) == (1.5, 1.5, 0.0)


# --------------------------------------------------------------------------- period rollover


async def _rollover(
    log: LogDB, rows: list[Row], steps: list[tuple[str, bool, dict[str, tuple[str, str, float]]]]
) -> None:
    """Walk the clock through `steps`: (now, refresh first?, {period: (period_start, resets_at, spent)})."""
    await log.insert(rows)
    clock = FakeClock(steps[0][0])
    budgets = [budget("/x", 100, "day"), budget("/x", 100, "week"), budget("/x", 100, "month")]
    async with tracker_for(log, clock, tz=BERLIN, budgets=budgets) as tracker:
        for now, refresh, expected in steps:
            clock.set(now)
            if refresh:
                await tracker.refresh()
            items = tracker.overview()["items"]
            got = {i["period"]: (i["period_start"], i["resets_at"], i["spent"]) for i in items}
            assert got == expected, now


async def test_rollover_on_the_23_hour_day(log: LogDB) -> None:
    rows = [
        sonnet("2026-03-28T22:59:59Z", "/x", prompt=1_000_000),  # Sat 23:59:59 CET: $3
        sonnet("2026-03-28T23:00:00Z", "/x", completion=100_000),  # Sun 00:00 CET: $1.50
        sonnet("2026-03-29T21:30:00Z", "/x", prompt=200_000),  # Sun 23:30 CEST: $0.60
        sonnet("2026-03-29T22:00:00Z", "/x", prompt=100_000),  # Mon 2026-03-30 00:00 CEST: $0.30
    ]
    await _rollover(
        log,
        rows,
        [
            (
                "2026-03-29T21:59:59Z",  # the last second of Sunday 29 March (23 hours long)
                True,
                {
                    "day": ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 2.1),  # 1.50 + 0.60
                    "week": ("2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z", 5.1),  # 3 + 1.50 + 0.60
                    "month": ("2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 5.1),
                },
            ),
            (
                "2026-03-29T22:00:00Z",  # Monday 00:00 CEST, before any refresh: new day and week at $0
                False,
                {
                    "day": ("2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z", 0.0),
                    "week": ("2026-03-29T22:00:00Z", "2026-04-05T22:00:00Z", 0.0),
                    "month": ("2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 5.1),
                },
            ),
            (
                "2026-03-29T22:00:01Z",
                True,
                {
                    "day": ("2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z", 0.3),
                    "week": ("2026-03-29T22:00:00Z", "2026-04-05T22:00:00Z", 0.3),
                    "month": ("2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 5.4),  # 5.10 + 0.30
                },
            ),
        ],
    )


async def test_rollover_on_the_25_hour_day(log: LogDB) -> None:
    rows = [
        sonnet("2026-10-24T21:59:59Z", "/x", prompt=1_000_000),  # Sat 23:59:59 CEST: $3
        sonnet("2026-10-25T00:30:00Z", "/x", completion=100_000),  # Sun 02:30 CEST: $1.50
        sonnet("2026-10-25T01:30:00Z", "/x", prompt=200_000),  # Sun 02:30 CET (again): $0.60
        sonnet("2026-10-25T22:30:00Z", "/x", prompt=100_000),  # Sun 23:30 CET: $0.30
        mini("2026-10-25T23:00:00Z", "/x", 1_000_000),  # Mon 2026-10-26 00:00 CET: $0.15
    ]
    await _rollover(
        log,
        rows,
        [
            (
                "2026-10-25T22:59:59Z",  # the last second of Sunday 25 October (25 hours long)
                True,
                {
                    "day": ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 2.4),  # 1.50 + 0.60 + 0.30
                    "week": ("2026-10-18T22:00:00Z", "2026-10-25T23:00:00Z", 5.4),  # + 3
                    "month": ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 5.4),
                },
            ),
            (
                "2026-10-25T23:00:00Z",
                False,
                {
                    "day": ("2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z", 0.0),
                    "week": ("2026-10-25T23:00:00Z", "2026-11-01T23:00:00Z", 0.0),
                    "month": ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 5.4),
                },
            ),
            (
                "2026-10-25T23:00:01Z",
                True,
                {
                    "day": ("2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z", 0.15),
                    "week": ("2026-10-25T23:00:00Z", "2026-11-01T23:00:00Z", 0.15),
                    "month": ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 5.55),
                },
            ),
        ],
    )


async def test_rollover_on_the_first_of_the_month(log: LogDB) -> None:
    rows = [
        sonnet("2026-10-31T22:00:00Z", "/x", prompt=1_000_000),  # Sat 31 Oct 23:00 CET: $3
        sonnet("2026-10-31T23:00:00Z", "/x", completion=100_000),  # Sun 1 Nov 00:00 CET: $1.50
    ]
    await _rollover(
        log,
        rows,
        [
            (
                "2026-10-31T22:59:59Z",
                True,
                {
                    "day": ("2026-10-30T23:00:00Z", "2026-10-31T23:00:00Z", 3.0),
                    "week": ("2026-10-25T23:00:00Z", "2026-11-01T23:00:00Z", 3.0),
                    "month": ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z", 3.0),
                },
            ),
            (
                "2026-10-31T23:00:01Z",
                True,
                {
                    "day": ("2026-10-31T23:00:00Z", "2026-11-01T23:00:00Z", 1.5),
                    "week": ("2026-10-25T23:00:00Z", "2026-11-01T23:00:00Z", 4.5),  # the week goes on
                    "month": ("2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z", 1.5),
                },
            ),
        ],
    )


async def test_a_request_after_a_boundary_triggers_a_refresh(log: LogDB) -> None:
    await log.insert(
        [
            sonnet("2026-11-20T22:00:00Z", "/x", prompt=2_000_000),  # Fri 23:00 CET: $6
            sonnet("2026-11-20T23:00:30Z", "/x", prompt=100_000),  # Sat 00:00:30 CET: $0.30
        ]
    )
    clock = FakeClock("2026-11-20T22:50:00Z")
    config = {"tz": BERLIN, "budget_refresh": "1h", "budgets": [budget("/x", 5, "day")]}
    async with served(log, clock, **config) as (client, _):

        async def check() -> Any:
            return await client.get("/v1/budgets/check", params={"endpoint": "/x"})

        before = await check()
        await clock.asleep()  # the refresh task sleeps until the boundary (23:00Z)
        clock.set("2026-11-20T23:01:00Z", wake=False)  # the request comes before that timer fires
        after = await check()  # the figure of 22:50, for a day that had not begun then: $0

        async def refreshed() -> bool:
            return (await check()).json()["age_seconds"] == 0.0

        await poll(refreshed)  # the clock stays at 23:01: woken by the request, not by a timer
        latest = (await check()).json()
    assert before.status_code == 422
    assert before.json()["spent"] == 6.0
    assert after.status_code == 200
    body = after.json()
    assert body["age_seconds"] == 660.0  # 22:50 → 23:01
    assert (body["budgets"][0]["period_start"], body["budgets"][0]["spent"]) == ("2026-11-20T23:00:00Z", 0.0)
    assert latest["budgets"][0]["spent"] == 0.3


async def test_the_tracker_refreshes_at_the_boundary_by_itself(log: LogDB) -> None:
    await log.insert([sonnet("2026-11-20T22:30:00Z", "/x", prompt=2_000_000)])  # Fri 23:30 CET: $6
    clock = FakeClock("2026-11-20T22:59:55Z")  # 5 s before local midnight
    config = {"tz": BERLIN, "budget_refresh": "1h", "budgets": [budget("/x", 5, "day")]}
    async with served(log, clock, **config) as (client, tracker):
        before = await client.get("/v1/budgets/check", params={"endpoint": "/x"})
        await clock.asleep()
        sleeps_until = clock.sleepers  # the next read: at the boundary, not an hour (budget_refresh) later

        async def rolled() -> bool:
            snap = tracker.snapshot
            return snap is not None and snap.starts["day"] == at("2026-11-20T23:00:00Z")

        clock.advance(5)
        await poll(rolled)
        after = await client.get("/v1/budgets/check", params={"endpoint": "/x"})
    assert before.status_code == 422
    assert sleeps_until == [at("2026-11-20T23:00:00Z").timestamp()]
    assert after.status_code == 200
    assert after.json()["budgets"][0]["spent"] == 0.0
    assert after.json()["age_seconds"] == 0.0  # read at 23:00:00 itself


# --------------------------------------------------------------------------- database stopped


class Records(logging.Handler):
    """Keeps the tracker's log records (the app's logging set-up replaces pytest's root handler)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]


@pytest.fixture
async def stoppable(backend: str, tmp_path: Path) -> AsyncIterator[tuple[LogDB, Switch, Switch]]:
    """A log whose database the test may stop and start again: (log, stop, start). On Postgres a
    cluster of its own (never the session's shared one); on SQLite the file is moved away and back."""
    if backend == "sqlite":
        log = SqliteLog(tmp_path / "log.db")
        away = tmp_path / "moved-away.db"

        async def move_away() -> None:
            log.path.rename(away)

        async def move_back() -> None:
            away.rename(log.path)

        yield log, move_away, move_back
        return
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found, and CI is set: the Postgres half must run")
        pytest.skip("PostgreSQL binaries not found")
    cluster = PgCluster(bindir)
    cluster.start()
    try:
        pg = await PostgresLog.create(cluster)

        async def stop() -> None:
            # the test cluster runs without fsync and stops like a crash: write everything out first,
            # or recovery may lose the schema just created
            await pg.execute("CHECKPOINT")
            cluster.stop()

        async def start() -> None:
            cluster.launch()

        yield pg, stop, start
    finally:
        cluster.destroy()


async def test_database_stopped_follows_the_fail_mode(stoppable: Any) -> None:
    log, stop, start = stoppable
    now = at(NOW)
    clock = FakeClock(now)  # both apps' clock: each tick is the test's move

    async def tick() -> None:
        """One refresh tick of both trackers: they sleep on the clock, it moves, they try and sleep again."""
        await clock.asleep(2)
        clock.advance(1)
        await clock.asleep(2)

    await log.insert(
        [
            sonnet(now - timedelta(minutes=1), "/s", prompt=1_000_000),  # $3 of $10
            sonnet(now - timedelta(minutes=1), "/t", prompt=1_000_000),  # $3 of $1: exceeded
        ]
    )
    config = {
        "budget_refresh": "1s",
        "budget_max_age": "5s",
        "budgets": [budget("/s", 10, "day"), budget("/t", 1, "day")],
    }
    records = Records()
    logging.getLogger("cost_api.watch.budgets").addHandler(records)
    async with (
        served(log, clock, budget_fail_mode="open", **config) as (fail_open, _),
        served(log, clock, budget_fail_mode="closed", **config) as (fail_closed, _),
    ):

        async def check(client: AsyncTestClient[Any], endpoint: str = "/s") -> Any:
            return await client.get("/v1/budgets/check", params={"endpoint": endpoint})

        for client in (fail_open, fail_closed):
            fresh = await check(client)
            assert fresh.status_code == 200
            assert fresh.json()["stale"] is False
            assert fresh.json()["budgets"][0]["spent"] == 3.0

        await stop()
        for _ in range(6):  # six failed ticks: older than budget_max_age, still one log line per tracker
            await tick()
        opened = await check(fail_open)
        closed = await check(fail_closed)
        closed_exceeded = await check(fail_closed, "/t")
        closed_unbudgeted = await check(fail_closed, "/nobody")
        closed_overview = await fail_closed.get("/v1/budgets")
        failures = records.matching("budget refresh failed")

        await start()

        async def fresh_again() -> bool:
            answers = [await check(fail_closed), await check(fail_open)]
            return all(a.status_code == 200 and a.json()["stale"] is False for a in answers)

        for _ in range(100):  # the database takes a few ticks to come back: one refresh each
            await tick()
            if await fresh_again():
                break
        assert await fresh_again()
        recovered = records.matching("works again")
    logging.getLogger("cost_api.watch.budgets").removeHandler(records)

    assert opened.status_code == 200
    body = opened.json()
    assert body["allowed"] is True
    assert body["stale"] is True
    assert body["age_seconds"] == 6.0
    assert body["budgets"][0]["spent"] == 3.0  # the last figure read

    assert assert_problem(closed, 503, extension=None)["stale"] is True
    assert closed.headers["retry-after"] == "1"
    assert closed.json()["type"].endswith("unavailable")

    # spend within a period only grows: a stale figure that is over the cap still blocks
    assert closed_exceeded.status_code == 422
    assert closed_exceeded.json()["stale"] is True
    # an endpoint without a budget has no figure to go stale
    assert closed_unbudgeted.status_code == 200
    assert closed_unbudgeted.json()["stale"] is False
    # the list always answers, saying how old its figures are
    assert closed_overview.status_code == 200
    assert closed_overview.json()["stale"] is True

    assert len(failures) == 2  # once per outage, per tracker (one per app)
    assert len(recovered) == 2


async def test_no_figure_since_start_up(backend: str, tmp_path: Path) -> None:
    """Started while the database is unreachable: no figure at all, `unknown`, and the fail mode."""
    url = (
        f"sqlite:///{tmp_path / 'not-there.db'}"
        if backend == "sqlite"
        else f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    )
    config = {"budget_refresh": "100ms", "budgets": [budget("/s", 10, "day")]}
    async with (
        served(url, budget_fail_mode="open", **config) as (fail_open, _),
        served(url, budget_fail_mode="closed", **config) as (fail_closed, _),
    ):
        overview = (await fail_open.get("/v1/budgets")).json()
        opened = await fail_open.get("/v1/budgets/check", params={"endpoint": "/s"})
        closed = await fail_closed.get("/v1/budgets/check", params={"endpoint": "/s"})
    assert overview["age_seconds"] is None
    assert overview["stale"] is True
    [item] = overview["items"]
    assert item["status"] == "unknown"
    assert [item[k] for k in ("spent", "remaining", "used_pct", "unpriced_requests")] == [None] * 4
    assert opened.status_code == 200
    assert opened.json()["allowed"] is True
    assert opened.json()["stale"] is True
    assert closed.status_code == 503
    assert closed.json()["age_seconds"] is None
