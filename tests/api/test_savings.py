"""GET /v1/savings: the response cache's savings per key and per local day, by hand."""

from __future__ import annotations

from typing import Any

from ..logdb import LogDB, Row, at

RANGE = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-04T00:00:00Z"}  # 3 days: saved_per_day = ÷ 3
KEY_A = "abcdef0123456789xyz"  # shown as abcdef012345
KEY_D = "ffff000011112222"
KEY_G = "9999aaaabbbbcccc"


async def ledger(log: LogDB) -> None:
    """claude-3-5-sonnet 3 in / 15 out; gpt-4o-mini 0.15 in / 0.60 out (USD per 1M tokens)."""
    sonnet, mini = ("anthropic", "claude-3-5-sonnet"), ("openai", "gpt-4o-mini")
    await log.insert(
        [
            # a. hit: 10000 × 3 + 1000 × 15 = 45,000 → saves $0.045
            Row(at("2026-11-01T10:00:00Z"), *sonnet, "/summarise-ticket", cache_hit=True,
                prompt_tokens_avoided=10000, completion_tokens_avoided=1000, cache_key=KEY_A),
            # b. hit: 20000 × 3 + 2000 × 15 = 90,000 → saves $0.09 (23:30 UTC = 00:30 on 11-03 in Berlin)
            Row(at("2026-11-02T23:30:00Z"), *sonnet, "/summarise-ticket", cache_hit=True,
                prompt_tokens_avoided=20000, completion_tokens_avoided=2000, cache_key=KEY_A),
            # c. the miss that filled the cache: 10000 × 3 + 1000 × 15 → costs $0.045
            Row(at("2026-11-02T12:00:00Z"), *sonnet, "/summarise-ticket",
                prompt_tokens=10000, completion_tokens=1000, cache_key=KEY_A),
            # d. hit: 100000 × 0.15 + 10000 × 0.6 = 15000 + 6000 → saves $0.021
            Row(at("2026-11-03T05:00:00Z"), *mini, "/classify-intent", cache_hit=True,
                prompt_tokens_avoided=100000, completion_tokens_avoided=10000, cache_key=KEY_D),
            # e. miss: 100000 × 0.15 → costs $0.015, not cacheable
            Row(at("2026-11-03T06:00:00Z"), *mini, "/classify-intent", prompt_tokens=100000),
            # f. miss: 1000 × 0.15 → costs $0.00015
            Row(at("2026-11-01T00:00:00Z"), *mini, "/misc", prompt_tokens=1000),
            # g. a hit on an unpriced model: a cache hit that saves nothing we can price
            Row(at("2026-11-03T07:00:00Z"), "together", "acme/mystery-model", "/misc", cache_hit=True,
                prompt_tokens_avoided=5000, cache_key=KEY_G),
            # outside the range
            Row(at("2026-11-04T00:00:00Z"), *sonnet, "/summarise-ticket", cache_hit=True,
                prompt_tokens_avoided=999999, cache_key=KEY_A),
        ]
    )  # fmt: skip


async def get(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/savings", params={**RANGE, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_by_endpoint(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        body = await get(client)
    assert body["range"] == RANGE
    assert body["group_by"] == "endpoint"
    assert body["saved_by_cache"] == 0.156  # 0.045 + 0.09 + 0.021
    assert body["spend"] == 0.06015  # 0.045 + 0.015 + 0.00015
    assert body["saved_pct"] == 259.4  # 0.156 / 0.06015
    assert body["cache_hits"] == 4
    assert body["requests"] == 7
    assert body["hit_rate_pct"] == 57.1  # 4 / 7
    assert body["items"] == [
        {"endpoint": "/summarise-ticket", "saved_by_cache": 0.135, "saved_per_day": 0.045,
         "cache_hits": 2, "requests": 3, "hit_rate_pct": 66.7, "spend": 0.045},
        {"endpoint": "/classify-intent", "saved_by_cache": 0.021, "saved_per_day": 0.007,
         "cache_hits": 1, "requests": 2, "hit_rate_pct": 50.0, "spend": 0.015},
        # saved nothing: last, though it had a hit
        {"endpoint": "/misc", "saved_by_cache": 0.0, "saved_per_day": 0.0,
         "cache_hits": 1, "requests": 2, "hit_rate_pct": 50.0, "spend": 0.00015},
    ]  # fmt: skip
    assert body["others"] is None
    assert body["daily"] == [
        {"t": "2026-11-01T00:00:00Z", "date": "2026-11-01", "saved_by_cache": 0.045, "cache_hits": 1},
        {"t": "2026-11-02T00:00:00Z", "date": "2026-11-02", "saved_by_cache": 0.09, "cache_hits": 1},
        {"t": "2026-11-03T00:00:00Z", "date": "2026-11-03", "saved_by_cache": 0.021, "cache_hits": 2},
    ]
    assert body["pricing"]["coverage_pct"] == 85.7  # 6 of 7


async def test_daily_follows_the_zone(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        body = await get(client, tz="Europe/Berlin")
    # UTC+1 in November: the local days overlapping [11-01 01:00, 11-04 01:00) local are 11-01…11-04
    assert body["daily"] == [
        {"t": "2026-10-31T23:00:00Z", "date": "2026-11-01", "saved_by_cache": 0.045, "cache_hits": 1},
        {"t": "2026-11-01T23:00:00Z", "date": "2026-11-02", "saved_by_cache": 0.0, "cache_hits": 0},
        # b (00:30 local) + d + g: 0.09 + 0.021
        {"t": "2026-11-02T23:00:00Z", "date": "2026-11-03", "saved_by_cache": 0.111, "cache_hits": 3},
        {"t": "2026-11-03T23:00:00Z", "date": "2026-11-04", "saved_by_cache": 0.0, "cache_hits": 0},
    ]
    assert body["saved_by_cache"] == 0.156


async def test_whole_utc_days_are_asked_as_day_groups(log: LogDB, client_for, monkeypatch) -> None:
    """As /v1/trend does: where every local day is a UTC day, the lens asks whole days as one group each
    (`coarse`), not their 24 hours of cells folded per answer; in Berlin its days are not UTC days."""
    await ledger(log)
    asked: list[bool] = []
    async with client_for() as client:
        agg = client.app.state.service.aggregator
        groups = agg.groups

        async def recorded(*args: Any, **kwargs: Any) -> Any:
            asked.append(kwargs.get("coarse", False))
            return await groups(*args, **kwargs)

        monkeypatch.setattr(agg, "groups", recorded)
        assert (await get(client))["saved_by_cache"] == 0.156
        assert (await get(client, tz="Europe/Berlin"))["saved_by_cache"] == 0.156
    assert asked == [True, False]


async def test_by_cache_key_model_provider_and_token(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        keys = (await get(client, group_by="cache_key"))["items"]
        models = (await get(client, group_by="model"))["items"]
        providers = await get(client, group_by="provider", limit=1)
        tokens = (await get(client, group_by="token"))["items"]
    assert keys == [
        # "this prompt saves $0.045/day"
        {"cache_key": "abcdef012345", "saved_by_cache": 0.135, "saved_per_day": 0.045,
         "cache_hits": 2, "requests": 3, "hit_rate_pct": 66.7, "spend": 0.045},
        {"cache_key": "ffff00001111", "saved_by_cache": 0.021, "saved_per_day": 0.007,
         "cache_hits": 1, "requests": 1, "hit_rate_pct": 100.0, "spend": 0.0},
        {"cache_key": "9999aaaabbbb", "saved_by_cache": 0.0, "saved_per_day": 0.0,
         "cache_hits": 1, "requests": 1, "hit_rate_pct": 100.0, "spend": 0.0},
        # not cacheable: e and f, 0.015 + 0.00015
        {"cache_key": None, "saved_by_cache": 0.0, "saved_per_day": 0.0,
         "cache_hits": 0, "requests": 2, "hit_rate_pct": 0.0, "spend": 0.01515},
    ]  # fmt: skip
    assert [(m["provider"], m["model"], m["priced_as"], m["saved_by_cache"]) for m in models] == [
        ("anthropic", "claude-3-5-sonnet", "anthropic/claude-3-5-sonnet", 0.135),
        ("openai", "gpt-4o-mini", "openai/gpt-4o-mini", 0.021),
        ("together", "acme/mystery-model", None, 0.0),
    ]
    assert [p["provider"] for p in providers["items"]] == ["anthropic"]
    # openai (0.021, 1 hit, 3 requests, 0.01515 spent) + together (0, 1 hit, 1 request)
    assert providers["others"] == {
        "count": 2,
        "saved_by_cache": 0.021,
        "cache_hits": 2,
        "requests": 4,
        "spend": 0.01515,
    }
    assert tokens == [
        {"token": "anonymous", "name": None, "saved_by_cache": 0.156, "saved_per_day": 0.052,
         "cache_hits": 4, "requests": 7, "hit_rate_pct": 57.1, "spend": 0.06015},
    ]  # fmt: skip


async def test_filters(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        body = await get(client, endpoint=["/classify-intent", "/misc"])
    assert body["saved_by_cache"] == 0.021
    assert body["requests"] == 4
    assert [i["endpoint"] for i in body["items"]] == ["/classify-intent", "/misc"]
