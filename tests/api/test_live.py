"""GET /v1/live: the last hour, the burn rate of the last 5 minutes, freshness; never cached."""

from __future__ import annotations

from datetime import timedelta

from ..clock import FakeClock
from ..logdb import LogDB, Row, at

TO = "2026-11-20T12:00:00Z"  # the hour [11:00, 12:00); the last 5 minutes [11:55, 12:00)


async def test_the_last_hour_by_hand(log: LogDB, client_for) -> None:
    sonnet = ("anthropic", "claude-3-5-sonnet")  # 3 in / 15 out per 1M
    await log.insert(
        [
            # 10000 × 3 → $0.03, inside the last 5 minutes
            Row(at("2026-11-20T11:58:00Z"), *sonnet, prompt_tokens=10000),
            # 20000 × 3 + 1000 × 15 = 75,000 → $0.075; a 500
            Row(at("2026-11-20T11:30:00Z"), *sonnet, status_code=500, prompt_tokens=20000,
                completion_tokens=1000),
            # a cache hit: saves 10000 × 3 → $0.03, costs nothing
            Row(at("2026-11-20T11:56:00Z"), *sonnet, cache_hit=True, prompt_tokens_avoided=10000),
            # the first instant of the hour counts: 100000 × 0.15 → $0.015; a 429
            Row(at("2026-11-20T11:00:00Z"), "openai", "gpt-4o-mini", status_code=429, prompt_tokens=100000),
            # outside: before the hour, and at `to`
            Row(at("2026-11-20T10:59:59Z"), *sonnet, prompt_tokens=999999),
            Row(at(TO), *sonnet, prompt_tokens=999999),
        ]
    )  # fmt: skip
    async with client_for(clock=FakeClock(at(TO) + timedelta(seconds=30.96))) as client:
        response = await client.get("/v1/live", params={"to": TO})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["range"] == {"from": "2026-11-20T11:00:00Z", "to": TO}
    assert body["spend"] == 0.12  # 0.03 + 0.075 + 0.015
    assert body["saved_by_cache"] == 0.03
    assert body["requests"] == 4
    assert body["cache_hits"] == 1
    assert body["errors"] == 2
    assert body["spend_rate_per_hour"] == 0.36  # $0.03 in the last 5 minutes × 12
    assert body["latest_request_at"] == TO  # the newest row of the log, in the range or not
    # as_of is shown floored to the second, the lag rounded to 0.1 s
    assert (body["as_of"], body["lag_seconds"]) == ("2026-11-20T12:00:30Z", 31.0)
    assert body["pricing"]["coverage_pct"] == 100.0


async def test_a_committed_row_counts_in_the_next_answer(log: LogDB, client_for) -> None:
    now = at(TO)
    async with client_for(clock=FakeClock(now)) as client:
        empty = (await client.get("/v1/live")).json()
        assert empty["requests"] == 0
        assert empty["latest_request_at"] is None
        assert empty["lag_seconds"] is None
        assert empty["spend_rate_per_hour"] == 0.0
        # 10000 × 3 → $0.03, a minute ago: in the hour and in the last 5 minutes
        await log.insert([Row(now - timedelta(minutes=1), "anthropic", "claude-3-5-sonnet", prompt_tokens=10000)])
        first = (await client.get("/v1/live")).json()
        await log.insert([Row(now - timedelta(minutes=30), "anthropic", "claude-3-5-sonnet", status_code=503)])
        second = (await client.get("/v1/live")).json()
    assert (first["requests"], first["spend"], first["spend_rate_per_hour"]) == (1, 0.03, 0.36)
    assert first["lag_seconds"] == 60.0
    assert (second["requests"], second["errors"], second["spend"]) == (2, 1, 0.03)


async def test_filters(log: LogDB, client_for) -> None:
    await log.insert(
        [
            Row(at("2026-11-20T11:58:00Z"), "anthropic", "claude-3-5-sonnet", "/a", prompt_tokens=10000),
            Row(at("2026-11-20T11:59:00Z"), "openai", "gpt-4o-mini", "/b", prompt_tokens=100000),
        ]
    )
    async with client_for() as client:
        body = (await client.get("/v1/live", params={"to": TO, "endpoint": "/b"})).json()
    assert (body["requests"], body["spend"], body["spend_rate_per_hour"]) == (1, 0.015, 0.18)
