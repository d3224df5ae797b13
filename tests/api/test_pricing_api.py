"""GET /v1/pricing, /v1/pricing/resolve and /v1/pricing/unpriced, on both dialects."""

from __future__ import annotations

from pathlib import Path

from ..logdb import LogDB, Row, at
from ..problems import assert_problem

TO = "2026-11-20T12:00:00Z"


async def test_the_table_lists_builtin_and_override_entries(log: LogDB, client_for, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        'version: "negotiated-1"\nmodels:\n'
        "  - {provider: openai, model: gpt-4o-mini, prices: [{input: 0.10, output: 0.40}]}\n"
        "  - {provider: acme, model: tuned-7b, prices: [{input: 1, output: 2}]}\n"
    )
    async with client_for(pricing_overrides=str(overrides)) as client:
        body = (await client.get("/v1/pricing")).json()
    assert body["version"] == "2026-12-04+negotiated-1"
    entries = {(e["provider"], e["model"]): e for e in body["items"]}
    assert entries[("openai", "gpt-4o-mini")]["source"] == "override"
    assert entries[("openai", "gpt-4o-mini")]["prices"] == [
        {
            "since": None,
            "input": 0.1,
            "output": 0.4,
            "cache_read": 0.1,
            "cache_write": 0.1,
            "cache_write_1h": 0.1,
            "above": None,
            "service_tiers": {},
        }
    ]
    assert entries[("acme", "tuned-7b")]["source"] == "override"
    o3 = entries[("openai", "o3")]
    assert o3["source"] == "builtin"
    assert [p["since"] for p in o3["prices"]] == [None, "2025-06-10"]
    gemini = entries[("google", "gemini-2.5-pro")]["prices"][-1]["above"]
    assert gemini["input_tokens"] == 200000
    assert o3["prices"][-1]["service_tiers"]["flex"] == {
        "input": 1,
        "output": 4,
        "cache_read": 0.25,
        "cache_write": 1,
        "cache_write_1h": 1,
    }
    assert o3["prices"][0]["service_tiers"] == {}  # the launch price: no tier rates
    sonnet = entries[("anthropic", "claude-sonnet-4-5")]["prices"][-1]
    assert (sonnet["cache_write"], sonnet["cache_write_1h"], sonnet["above"]["cache_write_1h"]) == (3.75, 6, 12)


async def test_resolve_gives_the_entry_and_the_price_in_force(log: LogDB, client_for) -> None:
    async with client_for() as client:
        before = await client.get(
            "/v1/pricing/resolve", params={"provider": "openai", "model": "o3-2025-04-16", "at": "2025-06-09T23:00:00Z"}
        )
        after = await client.get(
            "/v1/pricing/resolve", params={"provider": "openai", "model": "o3-2025-04-16", "at": "2025-06-10T00:00:00Z"}
        )
        bedrock = await client.get(
            "/v1/pricing/resolve",
            params={"provider": "anthropic", "model": "us.anthropic.claude-3-5-haiku-20241022-v1:0"},
        )
        unknown = await client.get("/v1/pricing/resolve", params={"provider": "openai", "model": "gpt-4.9-preview"})
        missing = await client.get("/v1/pricing/resolve", params={"provider": "openai"})
    assert before.json()["priced_as"] == "openai/o3"
    assert (before.json()["price"]["input"], before.json()["price"]["output"]) == (10, 40)  # from launch
    assert (after.json()["price"]["input"], after.json()["price"]["output"]) == (2, 8)  # the 2025-06-10 cut
    assert after.json()["at"] == "2025-06-10T00:00:00Z"
    assert bedrock.json()["priced_as"] == "anthropic/claude-3-5-haiku"
    assert_problem(unknown, 404, kind="unpriced-model", extension=None)
    assert assert_problem(missing, 400, kind="bad-parameter")["errors"][0]["field"] == "model"


async def test_unpriced_lists_the_logged_models_without_a_price(log: LogDB, client_for) -> None:
    await log.insert(
        [
            Row(at("2026-11-19T10:00:00Z"), "together", "acme/mystery", prompt_tokens=1000, completion_tokens=10),
            Row(at("2026-11-19T11:00:00Z"), "together", "acme/mystery", cache_hit=True, prompt_tokens_avoided=500),
            Row(at("2026-11-19T12:00:00Z"), "openai", "gpt-4o-mini", prompt_tokens=10),
            Row(at("2026-11-19T12:00:00Z"), "openai", "gpt-4o-mini", prompt_tokens=10),
        ]
    )
    async with client_for() as client:
        body = (await client.get("/v1/pricing/unpriced", params={"to": TO})).json()
    assert body["coverage_pct"] == 50.0  # 2 priced of 4 requests, cache hits count
    assert body["items"] == [
        {
            "provider": "together",
            "model": "acme/mystery",
            "requests": 2,
            "prompt_tokens": 1000,
            "completion_tokens": 10,
            "prompt_tokens_avoided": 500,
            "completion_tokens_avoided": 0,
        }
    ]
