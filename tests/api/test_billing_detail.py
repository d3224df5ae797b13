"""The log's optional billing detail, on both dialects: 1-hour cache writes, service tiers, estimated
usage — and a log without those columns, which answers exactly as before.

USD per 1M tokens from pricing.yaml; each comment shows the arithmetic in per-million units, worked
out by hand, never by the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.usage import StreamUsage, Usage, from_response
from cost_api.web.app import create_app

from ..conftest import empty_log
from ..logdb import OPTIONAL, LogDB, Row, SqliteLog, at

NOV = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-20T00:00:00Z"}
WHEN = at("2026-11-10T10:00:00Z")


def _columns(usage: Usage) -> dict[str, Any]:
    """The log columns a gateway writes from `cost_api.usage` (docs/gateway-integration.md)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "service_tier": usage.service_tier,
        "usage_exact": usage.exact,
    }


async def _spend_by_endpoint(client: AsyncTestClient[Any]) -> tuple[dict[str, float], dict[str, Any]]:
    body = (await client.get("/v1/spend", params={**NOV, "group_by": "endpoint"})).json()
    return {i["endpoint"]: i["spend"] for i in body["items"]}, body["pricing"]


# --------------------------------------------------------------------------- 1-hour cache writes


async def test_one_hour_cache_writes_bill_at_twice_input(log: LogDB, client_for) -> None:
    """claude-sonnet-4-5: input 3, output 15, cache read 0.30, 5-minute write 3.75, 1-hour write 6."""
    usage = from_response(
        "anthropic",
        {
            "type": "message",
            "model": "claude-sonnet-4-5-20250929",
            "usage": {
                "input_tokens": 1_000,
                "output_tokens": 500,
                "cache_read_input_tokens": 10_000,
                "cache_creation_input_tokens": 4_000,
                "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 3_000},
            },
        },
    )
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (4_000, 3_000)
    await log.insert([Row(WHEN, "anthropic", "claude-sonnet-4-5-20250929", "/agent", **_columns(usage))])
    async with client_for() as client:
        spend, pricing = await _spend_by_endpoint(client)
        summary = (await client.get("/v1/summary", params=NOV)).json()
        rows = (await client.get("/v1/requests", params=NOV)).json()["items"]
    # 3 × 1000 + 15 × 500 + 0.30 × 10000 + 3.75 × (4000 − 3000) + 6 × 3000
    # = 3000 + 7500 + 3000 + 3750 + 18000 = 35250 → $0.03525
    # (every write at the 5-minute rate, as before: 3000 + 7500 + 3000 + 3.75 × 4000 = 28500 → $0.0285)
    assert spend == {"/agent": 0.03525}
    assert summary["spend"] == 0.03525
    assert (rows[0]["cost"], rows[0]["cache_write_1h_tokens"], rows[0]["usage_exact"]) == (0.03525, 3_000, True)
    assert (pricing["estimated_requests"], pricing["no_tier_rate_requests"]) == (0, 0)


async def test_more_one_hour_writes_than_writes_is_a_bad_row(log: LogDB, client_for) -> None:
    """cache_write_1h_tokens is a part of cache_write_tokens: above it, the 5-minute part would be
    negative, so the row is left out like a negative count and counted in data_quality."""
    await log.insert(
        [
            Row(WHEN, "anthropic", "claude-sonnet-4-5", "/agent", prompt_tokens=10, cache_write_tokens=5,
                cache_write_1h_tokens=6),
            Row(WHEN, "anthropic", "claude-sonnet-4-5", "/agent", prompt_tokens=10, cache_write_1h_tokens=-1),
        ]
    )  # fmt: skip
    async with client_for() as client:
        body = (await client.get("/v1/summary", params=NOV)).json()
    assert (body["spend"], body["requests"]) == (0.0, 0)
    assert body["data_quality"]["reasons"]["negative_tokens"] == 2


# --------------------------------------------------------------------------- service tiers

# o3 since its 2025-06-10 cut: standard input 2, cached 0.50, output 8; batch 1 / (none: 1) / 4;
# flex 1 / 0.25 / 4; priority 3.5 / 0.875 / 14. Each row: 1000 input, 1000 cached, 1000 output.
O3 = {"prompt_tokens": 1_000, "cache_read_tokens": 1_000, "completion_tokens": 1_000}


async def test_openai_service_tiers_bill_at_their_rates(log: LogDB, client_for) -> None:
    flex = from_response(
        "openai",
        {
            "model": "o3-2025-04-16",
            "service_tier": "flex",
            "usage": {
                "prompt_tokens": 2_000,
                "completion_tokens": 1_000,
                "prompt_tokens_details": {"cached_tokens": 1_000},
            },
        },
    )
    assert (flex.prompt_tokens, flex.cache_read_tokens, flex.service_tier) == (1_000, 1_000, "flex")
    await log.insert(
        [
            Row(WHEN, "openai", "o3", "/standard", **O3),
            Row(WHEN, "openai", "o3", "/standard-named", service_tier="standard", **O3),
            Row(WHEN, "openai", "o3", "/default", service_tier="default", **O3),
            Row(WHEN, "openai", "o3", "/batch", service_tier="batch", **O3),
            Row(WHEN, "openai", "o3-2025-04-16", "/flex", **_columns(flex)),
            Row(WHEN, "openai", "o3", "/priority", service_tier="Priority", **O3),
            # gpt-4o-mini batch, 10000 input, 1000 output: 0.075 × 10000 + 0.30 × 1000 = 750 + 300 = 1050
            Row(WHEN, "openai", "gpt-4o-mini", "/mini-batch", service_tier="batch", prompt_tokens=10_000,
                completion_tokens=1_000),
        ]
    )  # fmt: skip
    async with client_for() as client:
        spend, pricing = await _spend_by_endpoint(client)
        trend = (await client.get("/v1/trend", params={**NOV, "interval": "day"})).json()
    assert spend == {
        # 2 × 1000 + 0.50 × 1000 + 8 × 1000 = 2000 + 500 + 8000 = 10500 → $0.0105 (NULL, "standard", "default")
        "/standard": 0.0105,
        "/standard-named": 0.0105,
        "/default": 0.0105,
        # no batch cache rate: cached at the batch input. 1 × 1000 + 1 × 1000 + 4 × 1000 = 6000 → $0.006
        "/batch": 0.006,
        # 1 × 1000 + 0.25 × 1000 + 4 × 1000 = 5250 → $0.00525
        "/flex": 0.00525,
        # 3.5 × 1000 + 0.875 × 1000 + 14 × 1000 = 18375 → $0.018375
        "/priority": 0.018375,
        # → $0.00105
        "/mini-batch": 0.00105,
    }
    # 3 × 0.0105 + 0.006 + 0.00525 + 0.018375 + 0.00105 = 0.0315 + 0.030675 = $0.062175
    assert sum(p["spend"] for p in trend["series"][0]["points"]) == pytest.approx(0.062175, abs=1e-9)
    assert (pricing["no_tier_rate_requests"], pricing["no_tier_rate"]) == (0, [])


async def test_a_tier_without_rates_is_priced_at_standard_and_counted(log: LogDB, client_for) -> None:
    await log.insert(
        [
            # gpt-5-nano has no priority rate: 0.05 × 1000 + 0.40 × 1000 = 50 + 400 = 450 → $0.00045
            Row(WHEN, "openai", "gpt-5-nano", "/nano", service_tier="priority", prompt_tokens=1_000,
                completion_tokens=1_000),
            # a tier the table does not know: o3 at standard, $0.0105
            Row(WHEN, "openai", "o3", "/scale", service_tier="scale", **O3),
            # past gpt-5.4's 272k cliff no tier rate is known: the standard long-context rates,
            # 5 × 300000 + 22.5 × 1000 = 1500000 + 22500 = 1522500 → $1.5225
            Row(WHEN, "openai", "gpt-5.4", "/long", service_tier="batch", prompt_tokens=300_000,
                completion_tokens=1_000),
            # under it the batch rate applies: 1.25 × 1000 + 7.5 × 1000 = 8750 → $0.00875, not counted
            Row(WHEN, "openai", "gpt-5.4", "/short", service_tier="batch", prompt_tokens=1_000,
                completion_tokens=1_000),
            # o3 before its 2025-06-10 cut has no tier rates (outside NOV: counted in its own range)
            Row(at("2025-06-01T10:00:00Z"), "openai", "o3", "/old", service_tier="batch", **O3),
        ]
    )  # fmt: skip
    async with client_for() as client:
        spend, pricing = await _spend_by_endpoint(client)
        live = (await client.get("/v1/summary", params={**NOV, "to": "2026-11-10T11:00:00Z"})).json()["pricing"]
        old = await client.get("/v1/spend", params={"from": "2025-06-01T00:00:00Z", "to": "2025-06-02T00:00:00Z"})
    assert spend == {"/nano": 0.00045, "/scale": 0.0105, "/long": 1.5225, "/short": 0.00875}
    assert pricing["coverage_pct"] == 100.0
    assert pricing["no_tier_rate_requests"] == 3
    assert sorted(pricing["no_tier_rate"], key=lambda t: t["model"]) == [
        {"provider": "openai", "model": "gpt-5-nano", "priced_as": "openai/gpt-5-nano", "service_tier": "priority",
         "requests": 1},
        {"provider": "openai", "model": "gpt-5.4", "priced_as": "openai/gpt-5.4", "service_tier": "batch",
         "requests": 1},
        {"provider": "openai", "model": "o3", "priced_as": "openai/o3", "service_tier": "scale", "requests": 1},
    ]  # fmt: skip
    assert live["no_tier_rate_requests"] == 3
    # 10 × 1000 + 2.5 × 1000 (launch cache rate) + 40 × 1000 = 52500 → $0.0525, at standard, counted
    body = old.json()
    assert (body["spend"], body["pricing"]["no_tier_rate_requests"]) == (0.0525, 1)


# --------------------------------------------------------------------------- estimated usage


async def test_estimated_usage_is_counted_in_every_pricing_block(log: LogDB, client_for) -> None:
    # an Anthropic stream cut before its message_delta: message_start's counts, not exact
    cut = StreamUsage("anthropic")
    cut.feed(
        'data: {"type":"message_start","message":{"model":"claude-3-5-sonnet-20241022",'
        '"usage":{"input_tokens":2000,"output_tokens":1}}}'
    )
    usage = cut.result()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (2_000, 1, False)
    await log.insert(
        [
            # 3 × 2000 + 15 × 1 = 6015 → $0.006015, as logged (its real cost is unknown, likely higher)
            Row(WHEN, "anthropic", "claude-3-5-sonnet-20241022", "/stream", **_columns(usage)),
            # 3 × 1000 + 15 × 100 = 4500 → $0.0045, exact (usage_exact true)
            Row(WHEN, "anthropic", "claude-3-5-sonnet", "/chat", usage_exact=True, prompt_tokens=1_000,
                completion_tokens=100),
            # NULL: exact
            Row(WHEN, "anthropic", "claude-3-5-sonnet", "/chat", prompt_tokens=1_000, completion_tokens=100),
        ]
    )  # fmt: skip
    async with client_for() as client:
        answers = {
            "summary": (await client.get("/v1/summary", params=NOV)).json(),
            "spend": (await client.get("/v1/spend", params=NOV)).json(),
            "trend": (await client.get("/v1/trend", params=NOV)).json(),
            "savings": (await client.get("/v1/savings", params=NOV)).json(),
            "requests": (await client.get("/v1/requests", params=NOV)).json(),
            "anomalies": (
                await client.get("/v1/anomalies", params={"window": "24h", "to": "2026-11-11T00:00:00Z"})
            ).json(),
        }
    for name, body in answers.items():
        assert body["pricing"]["estimated_requests"] == 1, name
    summary = answers["summary"]
    # 0.006015 + 0.0045 + 0.0045 = $0.015015; every request priced, one of them on estimated usage
    assert (summary["spend"], summary["pricing"]["coverage_pct"]) == (0.015015, 100.0)
    stream = [i for i in answers["requests"]["items"] if i["endpoint"] == "/stream"]
    assert (stream[0]["usage_exact"], stream[0]["cost"]) == (False, 0.006015)


# --------------------------------------------------------------------------- a log without the columns


@pytest.fixture
async def second_log(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogDB]:
    """Another empty log on the same backend as `log`."""
    db = await empty_log(backend, request, tmp_path / "second.db")
    yield db
    await db.drop()


def _plain_rows() -> list[Row]:
    """Rows a log of the first shape can hold: the optional columns at their defaults."""
    return [
        # 3 × 1000 + 15 × 500 + 0.30 × 10000 + 3.75 × 4000 = 3000 + 7500 + 3000 + 15000 = 28500 → $0.0285
        Row(WHEN, "anthropic", "claude-sonnet-4-5", "/agent", "tok_a", prompt_tokens=1_000,
            completion_tokens=500, cache_read_tokens=10_000, cache_write_tokens=4_000),
        # 2 × 1000 + 0.50 × 1000 + 8 × 1000 = 10500 → $0.0105
        Row(WHEN, "openai", "o3", "/chat", "tok_b", **O3),
        # a cache hit saving 0.15 × 10000 + 0.60 × 1000 = 1500 + 600 = 2100 → $0.0021
        Row(WHEN, "openai", "gpt-4o-mini", "/chat", cache_hit=True, prompt_tokens_avoided=10_000,
            completion_tokens_avoided=1_000),
        Row(at("2026-11-12T08:30:00Z"), "together", "acme/unpriced", "/misc", prompt_tokens=10),
        Row(at("2026-11-12T08:30:00Z"), "openai", "o3", "/chat", prompt_tokens=-5),  # a bad row
    ]  # fmt: skip


PATHS = [
    ("/v1/summary", NOV),
    ("/v1/spend", {**NOV, "group_by": "model"}),
    ("/v1/spend", {**NOV, "group_by": "token"}),
    ("/v1/trend", {**NOV, "group_by": "provider"}),
    ("/v1/savings", NOV),
    ("/v1/requests", NOV),
    ("/v1/pricing/unpriced", NOV),
]


async def _answers(url: str) -> tuple[dict[str, Any], list[Any]]:
    config = load_settings(environ={}, overrides={"database_url": url})
    async with AsyncTestClient(app=create_app(config)) as client:
        ready = (await client.get("/readyz")).json()
        bodies = [(await client.get(path, params=params)).json() for path, params in PATHS]
    for body in bodies:  # the clock's readings differ between the two runs
        body.pop("as_of", None)
        body.get("data_quality", {}).pop("future_after", None)
    return ready, bodies


async def test_a_log_without_the_optional_columns_answers_as_before(log: LogDB, second_log: LogDB) -> None:
    await second_log.drop_optional_columns()
    await log.insert(_plain_rows())
    await second_log.insert(_plain_rows())
    full_ready, full = await _answers(log.url)
    plain_ready, plain = await _answers(second_log.url)
    assert full_ready["optional_columns"] == {"read": OPTIONAL, "absent": []}
    assert plain_ready["optional_columns"] == {"read": [], "absent": OPTIONAL}
    assert plain == full  # the same rows: the same answers, to the last field
    summary = plain[0]
    # 0.0285 + 0.0105 = $0.039 spent; $0.0021 saved
    assert (summary["spend"], summary["saved_by_cache"], summary["requests"]) == (0.039, 0.0021, 4)
    assert summary["pricing"]["coverage_pct"] == 75.0  # 3 of 4
    assert (summary["pricing"]["estimated_requests"], summary["pricing"]["no_tier_rate_requests"]) == (0, 0)
    assert summary["data_quality"]["reasons"]["negative_tokens"] == 1
    items = {i["endpoint"]: i for i in plain[5]["items"]}
    assert (items["/agent"]["cost"], items["/agent"]["service_tier"], items["/agent"]["usage_exact"]) == (
        0.0285,
        "standard",
        True,
    )


async def test_each_optional_column_is_read_on_its_own(log: LogDB, client_for) -> None:
    """A log with usage_exact only: estimated rows are counted, 1-hour writes and tiers are not read."""
    await log.execute(
        "ALTER TABLE request_log DROP COLUMN cache_write_1h_tokens;ALTER TABLE request_log DROP COLUMN service_tier"
    )
    usage_exact = "0" if log.dialect == "sqlite" else "false"
    created = int(WHEN.timestamp() * 1000) if log.dialect == "sqlite" else f"'{WHEN.isoformat()}'"
    await log.execute(
        "INSERT INTO request_log"
        " (created_at, provider, model, endpoint, prompt_tokens, cache_write_tokens, usage_exact)"
        f" VALUES ({created}, 'anthropic', 'claude-sonnet-4-5', '/agent', 1000, 4000, {usage_exact})"
    )
    async with client_for() as client:
        ready = (await client.get("/readyz")).json()
        spend, pricing = await _spend_by_endpoint(client)
    assert ready["optional_columns"] == {"read": ["usage_exact"], "absent": ["cache_write_1h_tokens", "service_tier"]}
    # 3 × 1000 + 3.75 × 4000 = 3000 + 15000 = 18000 → $0.018
    assert spend == {"/agent": 0.018}
    assert pricing["estimated_requests"] == 1


async def test_a_replaced_sqlite_file_is_read_with_its_own_columns(tmp_path: Path) -> None:
    """A file with the optional columns replaced by one without them (a restore of an older log):
    the columns are looked up again, and the new file answers with its own figures."""
    full = SqliteLog(tmp_path / "log.db")
    await full.insert([Row(WHEN, "openai", "o3", "/chat", service_tier="batch", **O3)])
    older = SqliteLog(tmp_path / "older.db")
    await older.drop_optional_columns()
    await older.insert([Row(WHEN, "openai", "o3", "/chat", **O3)])
    config = load_settings(environ={}, overrides={"database_url": full.url})
    async with AsyncTestClient(app=create_app(config)) as client:
        before = (await client.get("/v1/summary", params=NOV)).json()
        (tmp_path / "older.db").replace(tmp_path / "log.db")
        after = (await client.get("/v1/summary", params=NOV)).json()
        ready = (await client.get("/readyz")).json()
    assert before["spend"] == 0.006  # batch: 1 × 1000 + 1 × 1000 + 4 × 1000 = 6000 → $0.006
    assert after["spend"] == 0.0105  # standard: 2 × 1000 + 0.50 × 1000 + 8 × 1000 = 10500 → $0.0105
    assert ready["optional_columns"] == {"read": [], "absent": OPTIONAL}


async def test_a_column_dropped_under_the_service_is_read_as_absent(log: LogDB, client_for) -> None:
    """A migration drops service_tier while the service runs: the query that names it fails once, the
    columns are looked up again, and the same request answers from the log as it now is."""
    await log.insert([Row(WHEN, "openai", "o3", "/chat", service_tier="batch", **O3)])
    async with client_for() as client:
        before = (await client.get("/v1/requests", params=NOV)).json()["items"]
        await log.execute("ALTER TABLE request_log DROP COLUMN service_tier")
        after = await client.get("/v1/requests", params=NOV)
        ready = (await client.get("/readyz")).json()
    assert [(i["service_tier"], i["cost"]) for i in before] == [("batch", 0.006)]  # 1 + 1 + 4 per 1000
    assert after.status_code == 200
    # standard: 2 × 1000 + 0.50 × 1000 + 8 × 1000 = 10500 → $0.0105
    assert [(i["service_tier"], i["cost"]) for i in after.json()["items"]] == [("standard", 0.0105)]
    assert ready["optional_columns"]["absent"] == ["service_tier"]
