"""Budget projections (`projected`, `projected_exceed_at`) and the `budget_forecast` rule, against
figures computed by hand, on SQLite and Postgres.

The log (now = 2026-11-20T12:00Z, tz UTC): endpoint /a spends $0.15 every hour (gpt-4o-mini,
1,000,000 prompt tokens at $0.15 per 1M) from 2026-10-23T12:00Z to 11:00Z: its profile is $0.15 an
hour, every hour (docs/forecast.md).
"""

from __future__ import annotations

from datetime import timedelta

from cost_api.watch.anomalies import budget_episodes
from cost_api.windows import Range

from ..clock import FakeClock
from ..logdb import LogDB, Row, at
from .test_budgets import served

NOW = at("2026-11-20T12:00:00Z")
BUDGETS = [
    {"endpoint": "/a", "limit_usd": 100, "period": "month"},
    {"endpoint": "/a", "limit_usd": 10, "period": "day"},
    {"endpoint": "/a", "limit_usd": 50, "period": "month"},
]


async def test_projected_end_and_exceed_instant(log: LogDB) -> None:
    start = at("2026-10-23T12:00:00Z")
    await log.insert([Row(start + timedelta(hours=h), endpoint="/a", prompt_tokens=1_000_000) for h in range(672)])
    async with served(log, FakeClock(NOW), tz="UTC", budgets=BUDGETS) as (client, tracker):
        body = (await client.get("/v1/budgets")).json()
        episodes = budget_episodes(tracker, Range(NOW - timedelta(hours=3), NOW))
    month, day, spent = body["items"]
    # the month: 468 hours spent ($70.20), 252 ahead ($37.80); the $29.80 left lasts 198⅔ hours
    assert (month["spent"], month["status"], month["projected"]) == (70.2, "ok", 108.0)
    assert month["projected_exceed_at"] == "2026-11-28T18:40:00Z"  # now + 198 h 40 min
    # the day: $1.80 by noon, $3.60 by midnight: under its $10
    assert (day["spent"], day["projected"], day["projected_exceed_at"]) == (1.8, 3.6, None)
    # already over: nothing left to project the crossing of
    assert (spent["status"], spent["projected"], spent["projected_exceed_at"]) == ("exceeded", 108.0, None)
    forecasts = [(e.key, e.started_at, e.last.words) for e in episodes if e.rule == "budget_forecast"]
    assert forecasts == [
        (
            "/a",
            at("2026-11-01T00:00:00Z"),
            "$70.20 of its $100.00 month budget, projected to reach it at 2026-11-28T18:40:00Z "
            "($108.00 by 2026-12-01T00:00:00Z)",
        )
    ]
    assert {e.rule for e in episodes} == {"budget_forecast", "budget_warning", "budget_exceeded"}


async def test_no_history_projects_nothing(log: LogDB) -> None:
    """Less than a day of history: the projection is the spend so far."""
    await log.insert([Row(NOW - timedelta(hours=2), endpoint="/a", prompt_tokens=1_000_000)])
    async with served(log, FakeClock(NOW), tz="UTC", budgets=BUDGETS[:1]) as (client, tracker):
        (item,) = (await client.get("/v1/budgets")).json()["items"]
        episodes = budget_episodes(tracker, Range(NOW - timedelta(hours=3), NOW))
    assert (item["spent"], item["projected"], item["projected_exceed_at"]) == (0.15, 0.15, None)
    assert episodes == []
