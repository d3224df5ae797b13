"""GET /v1/summary against a ledger of hand-computed dollars, on SQLite and Postgres."""

from __future__ import annotations

from ..logdb import LogDB, Row, at

TO = "2026-11-20T12:00:00Z"  # window 30d: [2026-10-21T12:00, 2026-11-20T12:00); top 7d from 11-13T12:00
CUSTOMER_A = "tok_customer_a_0123456789"


async def _ledger(log: LogDB) -> None:
    await log.add_tokens([(CUSTOMER_A, "pg_live_xy7", "customer-A")])
    await log.insert(
        [
            # the request-log spec's worked example: 3 × 14320/1e6 + 15 × 642/1e6 = $0.05259
            Row(
                at("2026-11-19T10:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet-20241022",
                "/summarise-ticket",
                CUSTOMER_A,
                prompt_tokens=14320,
                completion_tokens=642,
            ),
            # the same call answered by the response cache: costs $0, saves $0.05259
            Row(
                at("2026-11-19T11:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet-20241022",
                "/summarise-ticket",
                CUSTOMER_A,
                cache_hit=True,
                prompt_tokens_avoided=14320,
                completion_tokens_avoided=642,
            ),
            # gpt-4o-mini 0.15 in / 0.075 cached / 0.60 out:
            # 10000×0.15 + 2000×0.075 + 1000×0.6 = 2250 → $0.00225
            Row(
                at("2026-11-10T08:30:00Z"),
                "openai",
                "gpt-4o-mini-2024-07-18",
                "/classify-intent",
                prompt_tokens=10000,
                cache_read_tokens=2000,
                completion_tokens=1000,
            ),
            # unpriced: counted in requests and coverage, never as $0 spend in silence
            Row(at("2026-11-18T00:00:00Z"), "together", "acme/mystery-model", "/misc", prompt_tokens=1000),
            # claude-3-5-sonnet 10000 in × 3 = $0.03, in the 7 days before the top window
            Row(
                at("2026-11-12T09:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet",
                "/summarise-ticket",
                prompt_tokens=10000,
            ),
            # the previous 30 days: 100000 × 3 = $0.30
            Row(
                at("2026-10-01T00:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet",
                "/summarise-ticket",
                prompt_tokens=100000,
            ),
            # outside both windows: must not count anywhere
            Row(
                at("2026-11-20T12:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet",
                "/summarise-ticket",
                prompt_tokens=999999,
            ),
        ]
    )


async def test_summary_matches_the_hand_computed_ledger(log: LogDB, client_for) -> None:
    await _ledger(log)
    async with client_for() as client:
        response = await client.get("/v1/summary", params={"to": TO})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["range"] == {"from": "2026-10-21T12:00:00Z", "to": TO}
    assert body["currency"] == "USD"
    assert body["spend"] == 0.08484  # 0.05259 + 0.00225 + 0.03
    assert body["saved_by_cache"] == 0.05259
    assert body["saved_pct"] == 62.0  # 0.05259 / 0.08484
    assert body["previous"] == {
        "range": {"from": "2026-09-21T12:00:00Z", "to": "2026-10-21T12:00:00Z"},
        "spend": 0.3,
    }
    assert body["change"] == -0.21516
    assert body["change_pct"] == -71.7
    assert body["requests"] == 5
    assert body["cache_hits"] == 1
    assert body["by_provider"] == [
        {"provider": "anthropic", "spend": 0.08259, "share_pct": 97.3},
        {"provider": "openai", "spend": 0.00225, "share_pct": 2.7},
        {"provider": "together", "spend": 0.0, "share_pct": 0.0},
    ]
    assert body["top_endpoints"]["range"] == {"from": "2026-11-13T12:00:00Z", "to": TO}
    assert body["top_endpoints"]["items"] == [
        {"endpoint": "/summarise-ticket", "spend": 0.05259, "change_pct": 75.3},  # vs $0.03
        {"endpoint": "/misc", "spend": 0.0, "change_pct": None},
    ]
    assert body["top_tokens"]["items"] == [
        {"token": "pg_live_xy7…", "name": "customer-A", "spend": 0.05259, "change_pct": None},
        {"token": "anonymous", "name": None, "spend": 0.0, "change_pct": -100.0},  # had $0.03
    ]
    assert body["pricing"]["coverage_pct"] == 80.0
    assert body["pricing"]["unpriced"] == [
        {
            "provider": "together",
            "model": "acme/mystery-model",
            "requests": 1,
            "prompt_tokens": 1000,
            "completion_tokens": 0,
            "prompt_tokens_avoided": 0,
            "completion_tokens_avoided": 0,
        }
    ]
    assert body["latest_request_at"] == "2026-11-20T12:00:00Z"


async def test_summary_filters(log: LogDB, client_for) -> None:
    await _ledger(log)
    async with client_for() as client:
        by_provider = (await client.get("/v1/summary", params={"to": TO, "provider": "openai"})).json()
        by_token = (await client.get("/v1/summary", params={"to": TO, "token": "pg_live_xy7…"})).json()
        two = (
            await client.get(
                "/v1/summary", params=[("to", TO), ("endpoint", "/misc"), ("endpoint", "/classify-intent")]
            )
        ).json()
    assert by_provider["spend"] == 0.00225
    assert by_provider["requests"] == 1
    assert by_token["spend"] == 0.05259
    assert by_token["requests"] == 2
    assert two["requests"] == 2
    assert two["pricing"]["coverage_pct"] == 50.0


async def test_empty_log(log: LogDB, client_for) -> None:
    async with client_for() as client:
        body = (await client.get("/v1/summary")).json()
    assert body["spend"] == 0.0
    assert body["saved_pct"] is None
    assert body["change_pct"] is None
    assert body["pricing"]["coverage_pct"] == 100.0
    assert body["latest_request_at"] is None
