"""GET /v1/spend against a ledger of hand-computed dollars, on SQLite and Postgres; the 400s."""

from __future__ import annotations

from typing import Any

import pytest

from ..logdb import LogDB, Row, at
from ..problems import assert_problem

TO = "2026-11-20T12:00:00Z"  # window 30d: [2026-10-21T12:00, 11-20T12:00); previous from 09-21T12:00
CUSTOMER_A = "tok_customer_a_0123456789"  # labelled: pg_live_xy7… customer-A
UNLABELLED = "sk_unlabelled_abcdef"  # no api_tokens row: shown as its first 11 characters, sk_unlabell…


async def ledger(log: LogDB) -> None:
    """Rates (USD per 1M): claude-3-5-sonnet 3 in / 15 out / 0.30 cache read / 3.75 cache write;
    gpt-4o-mini 0.15 in / 0.60 out / 0.075 cache read; groq llama-3.3-70b-versatile 0.59 / 0.79."""
    await log.add_tokens([(CUSTOMER_A, "pg_live_xy7", "customer-A")])
    sonnet, sonnet_dated = "claude-3-5-sonnet", "claude-3-5-sonnet-20241022"
    mini, mini_dated = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"
    await log.insert(
        [
            # 1. 3 × 14320 + 15 × 642 = 52,590 → $0.05259
            Row(at("2026-11-19T10:00:00Z"), "anthropic", sonnet_dated, "/summarise-ticket", CUSTOMER_A,
                prompt_tokens=14320, completion_tokens=642),
            # 2. the same call from the response cache: $0, saves $0.05259
            Row(at("2026-11-19T11:00:00Z"), "anthropic", sonnet_dated, "/summarise-ticket", CUSTOMER_A,
                cache_hit=True, prompt_tokens_avoided=14320, completion_tokens_avoided=642),
            # 3. 1000 × 3 + 10000 × 0.30 + 2000 × 3.75 + 100 × 15 = 3000 + 3000 + 7500 + 1500 → $0.015
            Row(at("2026-11-15T00:00:00Z"), "anthropic", sonnet, "/summarise-ticket", UNLABELLED,
                prompt_tokens=1000, cache_read_tokens=10000, cache_write_tokens=2000, completion_tokens=100),
            # 4. 10000 × 0.15 + 2000 × 0.075 + 1000 × 0.6 = 1500 + 150 + 600 → $0.00225
            Row(at("2026-11-10T08:30:00Z"), "openai", mini_dated, "/classify-intent",
                prompt_tokens=10000, cache_read_tokens=2000, completion_tokens=1000),
            # 5. 2000 × 0.15 = 300 → $0.0003 (a 500: still billed)
            Row(at("2026-11-10T09:00:00Z"), "openai", mini, "/classify-intent", status_code=500,
                prompt_tokens=2000),
            # 6. 100000 × 0.59 + 10000 × 0.79 = 59000 + 7900 → $0.0669
            Row(at("2026-11-01T00:00:00Z"), "groq", "llama-3.3-70b-versatile", "/classify-intent", UNLABELLED,
                prompt_tokens=100000, completion_tokens=10000),
            # 7. unpriced: a request, never $0 in silence
            Row(at("2026-11-18T00:00:00Z"), "together", "acme/mystery-model", "/misc", prompt_tokens=1000),
            # previous period: 8. 100000 × 3 → $0.30; 9. 100000 × 0.15 → $0.015
            Row(at("2026-10-01T00:00:00Z"), "anthropic", sonnet, "/summarise-ticket", CUSTOMER_A,
                prompt_tokens=100000),
            Row(at("2026-10-02T00:00:00Z"), "openai", mini, "/classify-intent", prompt_tokens=100000),
            # 10. at `to`: outside both (half-open ranges)
            Row(at(TO), "anthropic", sonnet, "/summarise-ticket", prompt_tokens=999999),
        ]
    )  # fmt: skip


# current total: 0.05259 + 0.015 + 0.00225 + 0.0003 + 0.0669 = $0.13704


def zeros(**fields: Any) -> dict[str, Any]:
    """An item with every count zero, then `fields`."""
    base = dict.fromkeys(
        ("requests", "cache_hits", "unpriced_requests", "prompt_tokens", "completion_tokens",
         "cache_read_tokens", "cache_write_tokens"),
        0,
    )  # fmt: skip
    return {**base, "saved_by_cache": 0.0, "previous_spend": 0.0, "change_pct": None, **fields}


async def get(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/spend", params={"to": TO, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_by_provider(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        body = await get(client, group_by="provider")
    assert body["range"] == {"from": "2026-10-21T12:00:00Z", "to": TO}
    assert body["group_by"] == "provider"
    assert body["spend"] == 0.13704
    assert body["previous"] == {
        "range": {"from": "2026-09-21T12:00:00Z", "to": "2026-10-21T12:00:00Z"},
        "spend": 0.315,
    }
    assert body["items"] == [
        # 0.05259 + 0.015 = 0.06759; 0.06759 / 0.13704 = 49.3%; vs 0.30: −0.23241 / 0.3 = −77.5%
        {"provider": "anthropic", **zeros(
            spend=0.06759, share_pct=49.3, requests=3, cache_hits=1, prompt_tokens=15320,
            completion_tokens=742, cache_read_tokens=10000, cache_write_tokens=2000,
            saved_by_cache=0.05259, previous_spend=0.3, change_pct=-77.5,
        )},
        # 0.0669 / 0.13704 = 48.8%; nothing before
        {"provider": "groq", **zeros(
            spend=0.0669, share_pct=48.8, requests=1, prompt_tokens=100000, completion_tokens=10000,
        )},
        # 0.00225 + 0.0003 = 0.00255 → 1.9%; vs 0.015: −0.01245 / 0.015 = −83.0%
        {"provider": "openai", **zeros(
            spend=0.00255, share_pct=1.9, requests=2, prompt_tokens=12000, completion_tokens=1000,
            cache_read_tokens=2000, previous_spend=0.015, change_pct=-83.0,
        )},
        {"provider": "together", **zeros(
            spend=0.0, share_pct=0.0, requests=1, unpriced_requests=1, prompt_tokens=1000,
        )},
    ]  # fmt: skip
    assert body["others"] is None
    assert body["pricing"]["coverage_pct"] == 85.7  # 6 of 7 requests priced
    assert [u["model"] for u in body["pricing"]["unpriced"]] == ["acme/mystery-model"]
    assert body["latest_request_at"] == TO
    assert body["as_of"].endswith("Z")


async def test_by_endpoint_token_and_model(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        endpoints = (await get(client, group_by="endpoint"))["items"]
        tokens = (await get(client, group_by="token"))["items"]
        models = (await get(client, group_by="model"))["items"]
    # /classify-intent 0.00225 + 0.0003 + 0.0669 = 0.06945 → 50.7%; vs 0.015: 0.05445 / 0.015 = +363.0%
    assert [(e["endpoint"], e["spend"], e["share_pct"], e["requests"], e["change_pct"]) for e in endpoints] == [
        ("/classify-intent", 0.06945, 50.7, 3, 363.0),
        ("/summarise-ticket", 0.06759, 49.3, 3, -77.5),
        ("/misc", 0.0, 0.0, 1, None),
    ]
    # customer-A: 0.05259, vs 0.30: −82.5%; sk_unlabell…: 0.015 + 0.0669 = 0.0819; anonymous: 0.00255
    assert [(t["token"], t["name"], t["spend"], t["previous_spend"], t["change_pct"]) for t in tokens] == [
        ("sk_unlabell…", None, 0.0819, 0.0, None),
        ("pg_live_xy7…", "customer-A", 0.05259, 0.3, -82.5),
        ("anonymous", None, 0.00255, 0.015, -83.0),
    ]
    assert tokens[2]["unpriced_requests"] == 1
    # the model as logged; the previous period's keys are the logged names too
    assert [(m["provider"], m["model"], m["priced_as"], m["spend"], m["change_pct"]) for m in models] == [
        ("groq", "llama-3.3-70b-versatile", "groq/llama-3.3-70b-versatile", 0.0669, None),
        ("anthropic", "claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet", 0.05259, None),
        ("anthropic", "claude-3-5-sonnet", "anthropic/claude-3-5-sonnet", 0.015, -95.0),  # vs 0.30
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini", 0.00225, None),
        ("openai", "gpt-4o-mini", "openai/gpt-4o-mini", 0.0003, -98.0),  # vs 0.015
        ("together", "acme/mystery-model", None, 0.0, None),
    ]


async def test_limit_sums_the_rest_into_others(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        body = await get(client, group_by="provider", limit=2)
    assert [i["provider"] for i in body["items"]] == ["anthropic", "groq"]
    # openai 0.00255 (2 requests) + together 0 (1 request)
    assert body["others"] == {"count": 2, "spend": 0.00255, "requests": 3, "saved_by_cache": 0.0}
    assert body["items"][0]["share_pct"] == 49.3  # shares stay of the whole range


async def test_filters_repeatable_and_token_by_id_or_prefix(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for() as client:
        two = await get(client, provider=["openai", "groq"])
        by_id = await get(client, token=UNLABELLED, group_by="endpoint")
        by_prefix = await get(client, token="sk_unlabell…", group_by="endpoint")
        by_label = await get(client, token="pg_live_xy7", group_by="model")
        endpoint = await get(client, endpoint="/summarise-ticket", group_by="token")
    assert two["spend"] == 0.06945  # 0.00255 + 0.0669
    assert [i["provider"] for i in two["items"]] == ["groq", "openai"]
    for body in (by_id, by_prefix):
        assert body["spend"] == 0.0819
        assert [(i["endpoint"], i["spend"]) for i in body["items"]] == [
            ("/classify-intent", 0.0669),
            ("/summarise-ticket", 0.015),
        ]
    assert by_label["spend"] == 0.05259
    assert by_label["previous"]["spend"] == 0.3
    assert [i["token"] for i in endpoint["items"]] == ["pg_live_xy7…", "sk_unlabell…"]


async def test_empty_log(log: LogDB, client_for) -> None:
    async with client_for() as client:
        body = (await client.get("/v1/spend", params={"group_by": "token"})).json()
    assert body["items"] == []
    assert body["others"] is None
    assert body["spend"] == 0.0
    assert body["latest_request_at"] is None
    assert body["pricing"]["coverage_pct"] == 100.0


BAD = [
    ("/v1/spend", {"group_by": "cache_key"}, "group_by"),
    ("/v1/spend", {"group_by": "nope"}, "group_by"),
    ("/v1/spend", {"limit": "0"}, "limit"),
    ("/v1/spend", {"limit": "1001"}, "limit"),
    ("/v1/spend", {"limit": "many"}, "limit"),
    ("/v1/spend", {"window": "5x"}, "window"),
    ("/v1/spend", {"window": "401d"}, "window"),
    ("/v1/spend", {"from": "2026-11-20T12:00:00Z", "to": "2026-11-20T12:00:00Z"}, "from"),
    ("/v1/spend", {"from": "2025-10-15T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, "from"),
    ("/v1/spend", {"to": "yesterday"}, "to"),
    ("/v1/spend", {"tz": "Mars/Olympus_Mons"}, "tz"),
    ("/v1/spend", {"format": "xlsx"}, "format"),
    ("/v1/savings", {"group_by": "nope"}, "group_by"),
    ("/v1/savings", {"limit": "0"}, "limit"),
    ("/v1/live", {"window": "1y"}, "window"),
    ("/v1/requests", {"limit": "1001"}, "limit"),
    ("/v1/requests", {"cursor": "not-a-cursor"}, "cursor"),
    ("/v1/requests", {"cursor": "WzEsMiwzXQ"}, "cursor"),  # base64url of [1,2,3]: not a position
    ("/v1/requests", {"tz": "Europe/Nowhere"}, "tz"),
]


@pytest.mark.parametrize(("path", "params", "field"), BAD)
async def test_bad_parameters_are_problem_documents(log: LogDB, client_for, path, params, field) -> None:
    async with client_for() as client:
        response = await client.get(path, params=params)
    body = assert_problem(response, 400, kind="bad-parameter")
    assert [e["field"] for e in body["errors"]] == [field]
    assert body["errors"][0]["message"]
    assert field in body["detail"]


async def test_unknown_group_by_lists_the_accepted_values(log: LogDB, client_for) -> None:
    async with client_for() as client:
        spend = (await client.get("/v1/spend", params={"group_by": "nope"})).json()
        savings = (await client.get("/v1/savings", params={"group_by": "nope"})).json()
    assert spend["errors"][0]["message"] == "expected one of provider, endpoint, token, model, tag:<key>; got 'nope'"
    assert "cache_key" in savings["errors"][0]["message"]
