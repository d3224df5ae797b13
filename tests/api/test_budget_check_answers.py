"""The check's kept answers (cost_api/web/routes/budget_check.py): byte for byte what the tracker's
`check()` encodes to, and never older than the figures, the period or the age they show.

Prices (per 1M tokens): claude-3-5-sonnet $3 in, $15 out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.serialization import encode_json

from cost_api.errors import BudgetExceeded
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.problems import from_domain
from cost_api.web.routes.budget_check import CheckAnswers

from ..clock import FakeClock
from ..logdb import LogDB, at
from .test_budgets import BERLIN, budget, poll, served, sonnet, tracker_for

NOW = "2026-11-20T12:00:00Z"  # Berlin: 13:00 CET, the day began at 2026-11-19T23:00Z


def uncached(tracker: BudgetTracker, endpoint: str, token: str | None = None) -> tuple[int, bytes]:
    """What the route answered before answers were kept: `check()`'s answer or problem, encoded."""
    try:
        return 200, encode_json(tracker.check(endpoint, token))
    except BudgetExceeded as exc:
        return 422, encode_json(from_domain(exc).body())


async def test_a_kept_answer_follows_the_figures_and_the_age(log: LogDB) -> None:
    now = at(NOW)
    clock = FakeClock(now)
    await log.insert([sonnet(now - timedelta(seconds=2), "/flip", prompt=200_000)])  # $0.60
    config = {"tz": BERLIN, "budget_refresh": "1m", "budgets": [budget("/flip", 1.5, "day")]}
    async with served(log, clock, **config) as (client, tracker):

        async def check() -> tuple[int, bytes, bytes]:
            response = await client.get("/v1/budgets/check", params={"endpoint": "/flip"})
            # as litestar answered before: a Struct as JSON, a problem as problem+json
            media = {200: "application/json", 422: "application/problem+json"}[response.status_code]
            assert response.headers["content-type"] == media
            assert response.headers["content-length"] == str(len(response.content))
            return response.status_code, response.content, uncached(tracker, "/flip")[1]

        first, again = await check(), await check()  # the second from the kept bytes
        # 200k × $3 + 20k × $15 = $0.90: $1.50, exactly the cap, once the next refresh reads it
        await log.insert([sonnet(now - timedelta(seconds=1), "/flip", 200_000, 20_000)])
        await clock.asleep()
        clock.advance(30)  # no refresh yet: the same figures, 30 s older
        older = await check()

        async def blocked() -> bool:
            return (await check())[0] == 422

        clock.advance(30)  # the tick: one refresh
        await poll(blocked)
        refused, refused_again = await check(), await check()
    for status, body, reference in (first, again, older, refused, refused_again):
        assert body == reference, status
    assert first[:2] == again[:2] and first[0] == 200
    assert b'"spent":0.6,' in first[1] and b'"age_seconds":0.0,"stale":false}' in first[1]
    assert b'"spent":0.6,' in older[1] and older[1].endswith(b'"age_seconds":30.0,"stale":false}')
    assert (
        refused[0] == 422 and b'"spent":1.5,' in refused[1] and refused[1].endswith(b'"age_seconds":0.0,"stale":false}')
    )
    assert refused_again[:2] == refused[:2]


async def test_a_kept_answer_goes_stale_with_its_age(log: LogDB) -> None:
    clock = FakeClock(NOW)
    await log.insert([sonnet("2026-11-20T11:00:00Z", "/x", prompt=100_000)])  # $0.30
    config = {"tz": BERLIN, "budget_max_age": "1m", "budgets": [budget("/x", 5, "day")]}
    async with tracker_for(log, clock, **config) as tracker:
        await tracker.refresh()
        answers = CheckAnswers(tracker)
        fresh = answers.answer("/x", None).content
        clock.advance(61)  # no refresh since: past budget_max_age, the fail mode open (the default)
        stale = answers.answer("/x", None).content
        assert stale == uncached(tracker, "/x")[1]
    assert fresh.endswith(b'"age_seconds":0.0,"stale":false}')
    assert stale.endswith(b'"age_seconds":61.0,"stale":true}')
    assert fresh.removesuffix(b'0.0,"stale":false}') == stale.removesuffix(b'61.0,"stale":true}')


async def test_a_new_period_is_never_answered_from_the_last_one(log: LogDB) -> None:
    await log.insert([sonnet("2026-11-20T22:00:00Z", "/x", prompt=2_000_000)])  # Fri 23:00 CET: $6
    clock = FakeClock("2026-11-20T22:50:00Z")
    async with tracker_for(log, clock, tz=BERLIN, budgets=[budget("/x", 5, "day")]) as tracker:
        await tracker.refresh()
        answers = CheckAnswers(tracker)
        friday = answers.answer("/x", None)
        clock.set("2026-11-20T23:00:00Z")  # Saturday 00:00 CET; no refresh yet
        saturday = answers.answer("/x", None)
        assert saturday.content == uncached(tracker, "/x")[1]
        await tracker.refresh()
        refreshed = answers.answer("/x", None)
        assert refreshed.content == uncached(tracker, "/x")[1]
    assert friday.status_code == 422
    assert (saturday.status_code, refreshed.status_code) == (200, 200)
    assert b'"period_start":"2026-11-20T23:00:00Z"' in saturday.content and b'"spent":0.0,' in saturday.content


async def test_answers_kept_are_bounded(log: LogDB) -> None:
    clock = FakeClock(NOW)
    async with tracker_for(log, clock, budgets=[budget("/x", 5, "day")]) as tracker:
        await tracker.refresh()
        answers = CheckAnswers(tracker, most=2)
        bodies: dict[str, Any] = {}
        for endpoint in ("/x", "/y", "/z", "/x"):
            bodies[endpoint] = answers.answer(endpoint, None).content
            assert len(answers._kept) <= 2
            assert bodies[endpoint] == uncached(tracker, endpoint)[1]
    assert bodies["/y"] == b'{"allowed":true,"budgets":[],"age_seconds":0.0,"stale":false}'
