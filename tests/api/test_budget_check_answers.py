"""The check's kept answers (cost_api/web/routes/budget_check.py): byte for byte what the tracker's
`check()` encodes to, and never older than the figures, the period or the age they show.

Prices (per 1M tokens): claude-3-5-sonnet $3 in, $15 out.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.response.base import ASGIResponse
from litestar.serialization import encode_json

from cost_api.errors import BudgetExceeded
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.problems import from_domain
from cost_api.web.routes import budgets
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


async def test_the_route_s_hook_answers_as_its_handler(log: LogDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check route's `before_request` (`kept_answer`) answers an unscoped key's check; a scoped key's
    goes on to the handler. Both give the same status, headers and bytes for every kind of answer, and
    the headers are those litestar's own response gives the same bytes."""
    now = at(NOW)
    clock = FakeClock(now)
    await log.insert([sonnet(now - timedelta(hours=1), "/ok", prompt=100_000)])  # $0.30 of $5 a day
    await log.insert([sonnet(now - timedelta(hours=1), "/over", prompt=1_000_000)])  # $3.00 of $1 a day
    config = {
        "api_keys": ["every-key"],
        "scoped_keys": [{"key": "scoped-key", "endpoints": ["/ok", "/over", "/free"]}],
        "budgets": [budget("/ok", 5, "day"), budget("/ok", 50, "month"), budget("/over", 1, "day")],
        "budget_max_age": "1m",
        "budget_fail_mode": "closed",
    }
    handled = 0
    checked = budgets.checked

    def counted(endpoint: str | None, token: str | None) -> str:  # the handler's first step
        nonlocal handled
        handled += 1
        return checked(endpoint, token)

    monkeypatch.setattr(budgets, "checked", counted)
    queries = {
        "endpoint=%2Fok": 200,
        "endpoint=%2Fok&token=tok-1&other=x": 200,
        "endpoint=%2Ffree": 200,  # no budget applies
        "endpoint=%2Fover": 422,
        "endpoint=%2Fok&endpoint=%2Fover": 422,  # the last of repeated values, as litestar passes it
        "endpoint=%2Fover&endpoint=%2Fok": 200,
        "": 400,
        "endpoint=": 400,
        "endpoint=%2Fok&token=%20": 400,
        "endpoint=%2Fok%01": 400,  # refused before either path (the app's hook, run by the route's)
    }
    async with served(log, clock, **config) as (client, _):

        async def both(query: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            nonlocal handled
            answers = []
            for key in ("every-key", "scoped-key"):
                handled = 0
                response = await client.get(f"/v1/budgets/check?{query}", headers={"X-API-Key": key})
                answers.append((response.status_code, response.headers.raw, response.content))
                assert handled == (key == "scoped-key" and "%01" not in query), (query, key)
            assert answers[0] == answers[1], query
            return answers[0]

        for query, status in queries.items():
            got, headers, body = await both(query)
            assert got == status, (query, body)
            litestar = ASGIResponse(body=body, status_code=got, media_type=dict(headers)[b"content-type"].decode())
            assert headers == litestar.encode_headers(), query
        clock.set(now + timedelta(seconds=61), wake=False)  # no refresh since: stale, and failing closed
        assert (await both("endpoint=%2Fok"))[0] == 503
        assert (await both("endpoint=%2Fover"))[0] == 422
