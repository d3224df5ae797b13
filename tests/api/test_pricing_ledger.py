"""The pricing issue's cases through the API, on both dialects: each row priced by hand here.

USD per 1M tokens from pricing.yaml; each comment shows the arithmetic in per-million units.
"""

from __future__ import annotations

from pathlib import Path

from cost_api.usage import Usage, from_response

from ..logdb import LogDB, Row, at

# 2024-09-01 .. 2025-07-01: the gpt-4o alias in September 2024 and o3 around its 2025-06-10 cut
OLD = {"from": "2024-09-01T00:00:00Z", "to": "2025-07-01T00:00:00Z", "group_by": "model"}
# 2026-11: everything else
NEW = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-20T00:00:00Z", "group_by": "model"}


async def _rows(log: LogDB) -> None:
    await log.insert(
        [
            # gpt-4o alias in September 2024: 5 × 1000 + 15 × 1000 = 20000 → $0.02
            Row(at("2024-09-15T12:00:00Z"), "openai", "gpt-4o", prompt_tokens=1000, completion_tokens=1000),
            # its dated snapshot then: 2.50 × 1000 + 10 × 1000 = 12500 → $0.0125
            Row(at("2024-09-15T12:00:00Z"), "openai", "gpt-4o-2024-08-06", prompt_tokens=1000, completion_tokens=1000),
            # o3 the day before the cut: 10 × 1000 + 40 × 1000 = 50000 → $0.05
            Row(at("2025-06-09T23:00:00Z"), "openai", "o3", prompt_tokens=1000, completion_tokens=1000),
            # its dated snapshot after the cut: 2 × 1000 + 8 × 1000 = 10000 → $0.01
            Row(at("2025-06-10T01:00:00Z"), "openai", "o3-2025-04-16", prompt_tokens=1000, completion_tokens=1000),
            # Anthropic with cache reads and writes:
            # 3 × 1000 + 0.30 × 10000 + 3.75 × 2000 + 15 × 500 = 3000 + 3000 + 7500 + 7500 = 21000 → $0.021
            Row(
                at("2026-11-10T10:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet-20241022",
                prompt_tokens=1000,
                cache_read_tokens=10000,
                cache_write_tokens=2000,
                completion_tokens=500,
            ),
            # OpenAI with cached tokens: 0.15 × 10000 + 0.075 × 2000 + 0.60 × 1000 = 2250 → $0.00225
            Row(
                at("2026-11-10T10:00:00Z"),
                "openai",
                "gpt-4o-mini-2024-07-18",
                prompt_tokens=10000,
                cache_read_tokens=2000,
                completion_tokens=1000,
            ),
            # Gemini 2.5 Pro over 200k input (150000 + 60000 cached): the whole request at the upper rates:
            # 2.50 × 150000 + 0.25 × 60000 + 15 × 2000 = 375000 + 15000 + 30000 = 420000 → $0.42
            Row(
                at("2026-11-11T10:00:00Z"),
                "google",
                "models/gemini-2.5-pro",
                prompt_tokens=150000,
                cache_read_tokens=60000,
                completion_tokens=2000,
            ),
            # and under: 1.25 × 100000 + 10 × 1000 = 135000 → $0.135 (same model row: $0.555 in all)
            Row(
                at("2026-11-11T11:00:00Z"),
                "google",
                "models/gemini-2.5-pro",
                prompt_tokens=100000,
                completion_tokens=1000,
            ),
            # a Bedrock id: claude-3-5-haiku 0.80 × 1000 + 4 × 1000 = 4800 → $0.0048
            Row(
                at("2026-11-12T10:00:00Z"),
                "anthropic",
                "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                prompt_tokens=1000,
                completion_tokens=1000,
            ),
            # an unknown id: unpriced, never $0 in silence
            Row(at("2026-11-12T10:00:00Z"), "openai", "gpt-4.9-preview", prompt_tokens=1000, completion_tokens=1000),
        ]
    )


def _by_model(body: dict) -> dict[str, tuple[float, str | None, int]]:
    return {i["model"]: (i["spend"], i["priced_as"], i["unpriced_requests"]) for i in body["items"]}


async def test_every_pricing_case_on_both_dialects(log: LogDB, client_for) -> None:
    await _rows(log)
    async with client_for() as client:
        old = (await client.get("/v1/spend", params=OLD)).json()
        new = (await client.get("/v1/spend", params=NEW)).json()
    assert _by_model(old) == {
        "gpt-4o": (0.02, "openai/gpt-4o", 0),
        "gpt-4o-2024-08-06": (0.0125, "openai/gpt-4o-2024-08-06", 0),
        "o3": (0.05, "openai/o3", 0),
        "o3-2025-04-16": (0.01, "openai/o3", 0),
    }
    assert _by_model(new) == {
        "claude-3-5-sonnet-20241022": (0.021, "anthropic/claude-3-5-sonnet", 0),
        "gpt-4o-mini-2024-07-18": (0.00225, "openai/gpt-4o-mini", 0),
        "models/gemini-2.5-pro": (0.555, "google/gemini-2.5-pro", 0),
        "us.anthropic.claude-3-5-haiku-20241022-v1:0": (0.0048, "anthropic/claude-3-5-haiku", 0),
        "gpt-4.9-preview": (0.0, None, 1),
    }
    assert new["pricing"]["unpriced"][0]["model"] == "gpt-4.9-preview"
    assert new["pricing"]["coverage_pct"] == 83.3  # 5 of 6 requests priced


async def test_an_override_replaces_a_builtin_price(log: LogDB, client_for, tmp_path: Path) -> None:
    await _rows(log)
    overrides = tmp_path / "negotiated.yaml"
    overrides.write_text(
        'version: "n1"\nmodels:\n  - {provider: openai, model: gpt-4o-mini, prices: [{input: 0.10, output: 0.40}]}\n'
    )
    async with client_for(pricing_overrides=str(overrides)) as client:
        body = (await client.get("/v1/spend", params=NEW)).json()
    # no cache_read rate in the override: cached tokens at input. 0.10 × 10000 + 0.10 × 2000 + 0.40 × 1000
    # = 1000 + 200 + 400 = 1600 → $0.0016
    assert _by_model(body)["gpt-4o-mini-2024-07-18"] == (0.0016, "openai/gpt-4o-mini", 0)
    assert body["pricing"]["version"] == "2026-12-04+n1"


async def test_openai_cache_writes_bill_at_the_write_rate(log: LogDB, client_for) -> None:
    """Usage read by cost_api.usage, logged, priced through the API. gpt-5.6 in November 2026:
    input 4, output 20, cache_read 0.40, cache_write 5."""
    chat = from_response(
        "openai",
        {
            "model": "gpt-5.6",
            "usage": {
                "prompt_tokens": 10_000,
                "completion_tokens": 500,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 8_000},
            },
        },
    )
    responses = from_response(
        "openai",
        {
            "model": "gpt-5.6",
            "usage": {
                "input_tokens": 6_000,
                "input_tokens_details": {"cached_tokens": 1_500, "cache_write_tokens": 2_500},
                "output_tokens": 700,
            },
        },
    )
    when = at("2026-11-10T10:00:00Z")
    await log.insert(
        [
            Row(when, "openai", "gpt-5.6", "/chat", **_columns(chat)),
            Row(when, "openai", "gpt-5.6", "/responses", **_columns(responses)),
        ]
    )
    async with client_for() as client:
        body = (await client.get("/v1/spend", params={**NEW, "group_by": "endpoint"})).json()
    spend = {i["endpoint"]: i["spend"] for i in body["items"]}
    # chat: 10000 − 0 read − 8000 written = 2000 at input.
    # 4 × 2000 + 5 × 8000 + 20 × 500 = 8000 + 40000 + 10000 = 58000 → $0.058
    # (with the writes billed as input, as before: 4 × 10000 + 20 × 500 = 50000 → $0.05, 13.8% low)
    # responses: 6000 − 1500 read − 2500 written = 2000 at input.
    # 4 × 2000 + 0.40 × 1500 + 5 × 2500 + 20 × 700 = 8000 + 600 + 12500 + 14000 = 35100 → $0.0351
    # (before: 4 × 4500 + 0.40 × 1500 + 20 × 700 = 18000 + 600 + 14000 = 32600 → $0.0326, 7.1% low)
    assert spend == {"/chat": 0.058, "/responses": 0.0351}


def _columns(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


# --------------------------------------------------------------------------- issue 17's corrections
# Each correction with a row on each side of its change date, each row on its own endpoint.


async def _by_endpoint(client, start: str, end: str) -> dict[str, float]:
    params = {"from": start, "to": end, "group_by": "endpoint"}
    body = (await client.get("/v1/spend", params=params)).json()
    assert body["pricing"]["coverage_pct"] == 100.0
    return {i["endpoint"]: i["spend"] for i in body["items"]}


def _row(when: str, model: str, endpoint: str, provider: str, **tokens: int) -> Row:
    return Row(at(when), provider, model, endpoint, **tokens)


async def test_claude_sonnet_5_stays_2_10_after_2026_09_01(log: LogDB, client_for) -> None:
    tokens = {"prompt_tokens": 1000, "completion_tokens": 1000, "cache_read_tokens": 1000}
    await log.insert(
        [
            _row("2026-08-31T23:00:00Z", "claude-sonnet-5", "/before", "anthropic", **tokens),
            _row("2026-09-01T01:00:00Z", "claude-sonnet-5", "/after", "anthropic", **tokens),
        ]
    )
    async with client_for() as client:
        spend = await _by_endpoint(client, "2026-08-31T00:00:00Z", "2026-09-02T00:00:00Z")
    # 2 × 1000 + 10 × 1000 + 0.20 × 1000 = 12200 → $0.0122 on both days
    # (the cancelled rise billed /after at 3 × 1000 + 15 × 1000 + 0.30 × 1000 = 18300 → $0.0183, 50% high)
    assert spend == {"/before": 0.0122, "/after": 0.0122}


async def test_gpt_5_6_launch_price_until_the_2026_08_21_cut(log: LogDB, client_for) -> None:
    small = {"prompt_tokens": 1000, "completion_tokens": 1000, "cache_read_tokens": 1000, "cache_write_tokens": 1000}
    # 250000 + 30000 read = 280000 input > 272000: the whole request at the long-context rates
    long = {"prompt_tokens": 250_000, "completion_tokens": 2000, "cache_read_tokens": 30_000}
    await log.insert(
        [
            _row("2026-08-20T12:00:00Z", "gpt-5.6", "/before", "openai", **small),
            _row("2026-08-20T13:00:00Z", "gpt-5.6", "/before-long", "openai", **long),
            _row("2026-08-20T14:00:00Z", "gpt-5.6-sol", "/before-sol", "openai", **small),
            _row("2026-08-21T01:00:00Z", "gpt-5.6", "/after", "openai", **small),
            _row("2026-08-21T02:00:00Z", "gpt-5.6", "/after-long", "openai", **long),
            _row("2026-08-21T03:00:00Z", "gpt-5.6-sol-2026-06-18", "/after-sol", "openai", **small),
        ]
    )
    async with client_for() as client:
        spend = await _by_endpoint(client, "2026-08-20T00:00:00Z", "2026-08-22T00:00:00Z")
    assert spend == {
        # launch: 5 × 1000 + 30 × 1000 + 0.50 × 1000 + 6.25 × 1000 = 41750 → $0.04175
        # (at the later price it was billed 29400 → $0.0294, 29.6% low)
        "/before": 0.04175,
        # 10 × 250000 + 45 × 2000 + 1 × 30000 = 2500000 + 90000 + 30000 = 2620000 → $2.62
        "/before-long": 2.62,
        # gpt-5.6-sol is the same model (it was unpriced): $0.04175
        "/before-sol": 0.04175,
        # from the cut: 4 × 1000 + 20 × 1000 + 0.40 × 1000 + 5 × 1000 = 29400 → $0.0294
        "/after": 0.0294,
        # 8 × 250000 + 30 × 2000 + 0.80 × 30000 = 2000000 + 60000 + 24000 = 2084000 → $2.084
        "/after-long": 2.084,
        # a dated id: the date is stripped, gpt-5.6-sol is an alias → $0.0294
        "/after-sol": 0.0294,
    }


async def test_mistral_small_latest_moves_to_small_4_on_2026_03_16(log: LogDB, client_for) -> None:
    tokens = {"prompt_tokens": 10_000, "completion_tokens": 10_000, "cache_read_tokens": 10_000}
    await log.insert(
        [
            _row("2026-03-15T23:00:00Z", "mistral-small-latest", "/before", "mistral", **tokens),
            _row("2026-03-16T01:00:00Z", "mistral-small-latest", "/after", "mistral", **tokens),
            _row("2026-03-15T23:00:00Z", "mistral-small-2603", "/2603", "mistral", **tokens),
        ]
    )
    async with client_for() as client:
        spend = await _by_endpoint(client, "2026-03-15T00:00:00Z", "2026-03-17T00:00:00Z")
    assert spend == {
        # Small 3.x, no cache rate (cached tokens at input):
        # 0.10 × 10000 + 0.30 × 10000 + 0.10 × 10000 = 5000 → $0.005
        # (at Small 4's price it was billed 7650 → $0.00765, 53% high)
        "/before": 0.005,
        # Small 4: 0.15 × 10000 + 0.60 × 10000 + 0.015 × 10000 = 1500 + 6000 + 150 = 7650 → $0.00765
        "/after": 0.00765,
        # mistral-small-2603 is Small 4 whenever it is logged: $0.00765
        "/2603": 0.00765,
    }


async def test_mistral_large_histories(log: LogDB, client_for) -> None:
    tokens = {"prompt_tokens": 1000, "completion_tokens": 1000, "cache_read_tokens": 1000}
    await log.insert(
        [
            _row("2024-09-16T23:00:00Z", "mistral-large-latest", "/latest-before-cut", "mistral", **tokens),
            _row("2024-09-17T01:00:00Z", "mistral-large-latest", "/latest-after-cut", "mistral", **tokens),
            _row("2024-09-16T23:00:00Z", "mistral-large-2407", "/2407-before-cut", "mistral", **tokens),
            _row("2024-09-17T01:00:00Z", "mistral-large-2407", "/2407-after-cut", "mistral", **tokens),
            _row("2025-12-01T23:00:00Z", "mistral-large-latest", "/latest-before-large-3", "mistral", **tokens),
            _row("2025-12-02T01:00:00Z", "mistral-large-latest", "/latest-large-3", "mistral", **tokens),
            _row("2025-12-02T01:00:00Z", "mistral-large-2512", "/2512", "mistral", **tokens),
        ]
    )
    async with client_for() as client:
        cut = await _by_endpoint(client, "2024-09-16T00:00:00Z", "2024-09-18T00:00:00Z")
        large_3 = await _by_endpoint(client, "2025-12-01T00:00:00Z", "2025-12-03T00:00:00Z")
    # no cache rate before Large 3: cached tokens at input
    assert cut == {
        # Large 2 at launch: 3 × 1000 + 9 × 1000 + 3 × 1000 = 15000 → $0.015 (the alias and the dated id)
        "/latest-before-cut": 0.015,
        "/2407-before-cut": 0.015,
        # after Mistral's cut: 2 × 1000 + 6 × 1000 + 2 × 1000 = 10000 → $0.01
        # (mistral-large-2407 was billed 3/9 throughout: 50% high after the cut)
        "/latest-after-cut": 0.01,
        "/2407-after-cut": 0.01,
    }
    assert large_3 == {
        # mistral-large-2411's price until the alias moved: $0.01
        # (it was billed at Large 3's 0.50/1.50 throughout: 79.5% low)
        "/latest-before-large-3": 0.01,
        # Large 3: 0.50 × 1000 + 1.50 × 1000 + 0.05 × 1000 = 2050 → $0.00205
        "/latest-large-3": 0.00205,
        "/2512": 0.00205,
    }
