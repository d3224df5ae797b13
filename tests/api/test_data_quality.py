"""Bad rows never poison a figure: a negative token count, a row without provider or model, a row dated
in the future are left out of every figure and counted per reason in `data_quality`; freshness (the
newest row, the lag) looks at rows up to now + FUTURE_SKEW only. On SQLite and Postgres, with the
service's clock fixed at NOW, through the rollups (closed hours), a window's cut edge hour and the open
hours, and through the plain SQL path of a service whose rollups never warmed.

Rates (USD per 1M tokens): claude-3-5-sonnet 3 in / 15 out; gpt-4o-mini 0.15 in.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from cost_api.aggregation.aggregator import FUTURE_SKEW, Aggregator, Filters
from cost_api.cli import main
from cost_api.config import load_settings
from cost_api.lenses import live, savings, spend, summary, trend
from cost_api.lenses import requests as audit
from cost_api.web.app import create_app
from cost_api.web.service import Service, build_service
from cost_api.windows import parse_window

from ..clock import FakeClock
from ..logdb import LogDB, Row, at
from .test_anomalies import rollups_ready

NOW = at("2026-11-20T12:34:56Z")  # the service's clock: hours before 12:00 are closed (15 min of grace)
TO = "2026-11-20T12:34:56Z"
SONNET = ("anthropic", "claude-3-5-sonnet")
MINI = ("openai", "gpt-4o-mini")
UTC_ZONE = zoneinfo.ZoneInfo("UTC")

Get = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def service_at(log: LogDB, now: datetime) -> Service:
    """The service over `log` with its clock fixed at `now`."""
    return build_service(load_settings(environ={}, overrides={"database_url": log.url}), FakeClock(now))


@asynccontextmanager
async def http_at(log: LogDB, now: datetime) -> AsyncIterator[tuple[Get, Aggregator]]:
    """`get(path, params)` over HTTP, the app's clock fixed at `now`, once its closed hours are in
    memory (the app warms them in its own loop); and its aggregator."""
    service = service_at(log, now)
    app = create_app(service.settings, service)
    async with AsyncTestClient(app=app) as client:
        await rollups_ready(service)

        async def get(path: str, params: dict[str, Any]) -> dict[str, Any]:
            response = await client.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        yield get, service.aggregator


LENSES = {
    "/v1/summary": lambda agg, w, p: summary.summary_answer(
        agg, w, top_window=timedelta(days=7), top=3, filters=Filters()
    ),
    "/v1/spend": lambda agg, w, p: spend.spend_answer(
        agg, w, group_by=p.get("group_by", "provider"), limit=50, filters=Filters()
    ),
    "/v1/trend": lambda agg, w, p: trend.trend(
        agg, w, interval=p.get("interval", "day"), group_by=p.get("group_by"), top=8, filters=Filters()
    ),
    "/v1/savings": lambda agg, w, p: savings.savings_answer(agg, w, group_by="endpoint", limit=50, filters=Filters()),
    "/v1/live": lambda agg, w, p: live.live_answer(agg, w, filters=Filters()),
    "/v1/requests": lambda agg, w, p: audit.requests_answer(agg, w, limit=100, cursor=None, filters=Filters()),
}  # fmt: skip


@asynccontextmanager
async def cold_at(log: LogDB, now: datetime) -> AsyncIterator[tuple[Get, Aggregator]]:
    """The same answers from the lenses of a service whose rollups never warm: SQL over the raw rows."""
    service = service_at(log, now)

    async def get(path: str, params: dict[str, Any]) -> dict[str, Any]:
        window = parse_window(
            window=params.get("window"),
            from_=params.get("from"),
            to=params.get("to"),
            tz=UTC_ZONE,
            default="24h",
            now=service.clock.now(),
        )
        plain: dict[str, Any] = msgspec.to_builtins(await LENSES[path](service.aggregator, window, params))
        return plain

    try:
        yield get, service.aggregator
    finally:
        await service.close()


async def bad_log(log: LogDB) -> None:
    await log.insert(
        [
            # before the 24-hour window [11-19T12:34:56, NOW): 999,999 × 3 → $2.999997, the previous period
            Row(at("2026-11-19T12:20:00Z"), *SONNET, prompt_tokens=999_999),
            # B1: negative, in the window's cut edge hour (read as single rows)
            Row(at("2026-11-19T12:40:00Z"), *SONNET, prompt_tokens=-1000),
            # G1: 1000 × 3 → $0.003, in the same edge hour
            Row(at("2026-11-19T12:50:00Z"), *SONNET, prompt_tokens=1000),
            # G2: 10000 × 3 + 1000 × 15 = 45,000 → $0.045 (closed hours: the rollups)
            Row(at("2026-11-19T20:00:00Z"), *SONNET, prompt_tokens=10_000, completion_tokens=1000),
            # G3: a cache hit, costs $0 and saves 10000 × 3 → $0.03
            Row(at("2026-11-20T08:00:00Z"), *SONNET, cache_hit=True, prompt_tokens_avoided=10_000),
            # B2: −4,500,000 × 3 would be −$13.50 (the figure)
            Row(at("2026-11-20T09:30:00Z"), *SONNET, prompt_tokens=-4_500_000),
            # B5: a cache hit with a negative count would save −$0.03
            Row(at("2026-11-20T10:00:00Z"), *SONNET, cache_hit=True, prompt_tokens_avoided=-10_000),
            # B3: no model, in the live hour [11:34:56, 12:34:56); a 500
            Row(at("2026-11-20T11:50:00Z"), "openai", "", status_code=500, prompt_tokens=1000),
            # G4: 20000 × 3 → $0.06, in the open hour
            Row(at("2026-11-20T12:10:00Z"), *SONNET, prompt_tokens=20_000),
            # B4: −900,000 × 15 would be −$13.50 in the last 5 minutes: −$162/hour
            Row(at("2026-11-20T12:31:00Z"), *SONNET, completion_tokens=-900_000),
            # G5: 100000 × 0.15 → $0.015, in the last 5 minutes: $0.18/hour
            Row(at("2026-11-20T12:32:00Z"), *MINI, prompt_tokens=100_000),
            # F1: 30 days ahead; 1,000,000 × 3 would be $3
            Row(NOW + timedelta(days=30), *SONNET, prompt_tokens=1_000_000),
        ]
    )  # fmt: skip


def quality(negative: int, missing: int, future: int, now: datetime = NOW) -> dict[str, Any]:
    reasons = {"negative_tokens": negative, "missing_provider_or_model": missing, "future_created_at": future}
    return {
        "excluded_requests": negative + missing + future,
        "reasons": reasons,
        "future_after": (now + FUTURE_SKEW).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# in the 24-hour window: G1–G5 counted; B1, B2, B4, B5 negative, B3 without a model; F1 in the future
WINDOW_QUALITY = quality(negative=4, missing=1, future=1)


async def check_lenses(get: Get) -> None:
    day = {"window": "24h", "to": TO}
    head = await get("/v1/summary", day)
    # 0.003 + 0.045 + 0 + 0.06 + 0.015 = 0.123
    assert (head["spend"], head["saved_by_cache"], head["requests"], head["cache_hits"]) == (0.123, 0.03, 5, 1)
    assert head["previous"]["spend"] == 2.999997
    assert head["change"] == -2.876997
    # anthropic 0.003 + 0.045 + 0.06 = 0.108; openai 0.015 (B3, openai without a model, is in no figure)
    assert [(p["provider"], p["spend"]) for p in head["by_provider"]] == [("anthropic", 0.108), ("openai", 0.015)]
    assert head["data_quality"] == WINDOW_QUALITY
    assert head["pricing"]["coverage_pct"] == 100.0 and head["pricing"]["unpriced"] == []
    assert head["as_of"] == TO
    assert head["latest_request_at"] == "2026-11-20T12:32:00Z"  # G5: F1 is past NOW + 5 minutes

    by_provider = await get("/v1/spend", day)
    assert by_provider["spend"] == 0.123
    anthropic, openai = by_provider["items"]
    assert (anthropic["provider"], anthropic["spend"], anthropic["requests"], anthropic["cache_hits"]) == (
        "anthropic",
        0.108,
        4,
        1,
    )
    # tokens of G1, G2, G4 only: 1000 + 10000 + 20000; 1000
    assert (anthropic["prompt_tokens"], anthropic["completion_tokens"], anthropic["saved_by_cache"]) == (
        31_000,
        1000,
        0.03,
    )
    assert (openai["provider"], openai["spend"], openai["requests"], openai["prompt_tokens"]) == (
        "openai",
        0.015,
        1,
        100_000,
    )
    assert by_provider["data_quality"] == WINDOW_QUALITY
    by_model = await get("/v1/spend", {**day, "group_by": "model"})
    assert [(i["provider"], i["model"], i["spend"]) for i in by_model["items"]] == [
        ("anthropic", "claude-3-5-sonnet", 0.108),
        ("openai", "gpt-4o-mini", 0.015),
    ]

    daily = await get("/v1/trend", day)
    (total,) = daily["series"]
    # 11-19: G1 + G2 = 0.048; 11-20: G3 + G4 + G5 = 0.075, saved 0.03
    assert [(p["date"], p["spend"], p["saved_by_cache"], p["requests"]) for p in total["points"]] == [
        ("2026-11-19", 0.048, 0.0, 2),
        ("2026-11-20", 0.075, 0.03, 3),
    ]
    assert daily["data_quality"] == WINDOW_QUALITY
    hourly = await get("/v1/trend", {**day, "interval": "hour", "group_by": "provider"})
    assert {s["key"]: round(sum(p["spend"] for p in s["points"]), 6) for s in hourly["series"]} == {
        "anthropic": 0.108,
        "openai": 0.015,
    }
    assert min(p["spend"] for s in hourly["series"] for p in s["points"]) == 0.0  # no hour went negative
    assert hourly["data_quality"] == WINDOW_QUALITY

    saved = await get("/v1/savings", day)
    assert (saved["saved_by_cache"], saved["cache_hits"], saved["requests"], saved["spend"]) == (0.03, 1, 5, 0.123)
    assert saved["hit_rate_pct"] == 20.0
    assert saved["data_quality"] == WINDOW_QUALITY

    hour = await get("/v1/live", {"window": "1h", "to": TO})
    # G4 + G5 = 0.075; B3 and B4 in no figure (B3's 500 neither)
    assert (hour["spend"], hour["requests"], hour["errors"]) == (0.075, 2, 0)
    assert hour["spend_rate_per_hour"] == 0.18  # G5's $0.015 × 12, B4 left out
    assert hour["data_quality"] == quality(negative=1, missing=1, future=1)
    assert hour["latest_request_at"] == "2026-11-20T12:32:00Z"
    assert hour["lag_seconds"] == 176.0  # 12:34:56 − 12:32:00, not −2,591,824 from F1


async def test_bad_rows_are_left_out_and_counted_through_the_rollups(log: LogDB) -> None:
    await bad_log(log)
    async with http_at(log, NOW) as (get, agg):
        assert agg.rollups.horizon == at("2026-11-20T12:00:00Z").timestamp() // 3600
        await check_lenses(get)


async def test_bad_rows_are_left_out_and_counted_by_sql_over_raw_rows(log: LogDB) -> None:
    await bad_log(log)
    async with cold_at(log, NOW) as (get, agg):
        await check_lenses(get)
        assert not agg.rollups.ready


async def test_the_audit_rows_say_which_are_left_out(log: LogDB) -> None:
    await bad_log(log)
    async with http_at(log, NOW) as (get, _):
        body = await get("/v1/requests", {"window": "24h", "to": TO})
        # and with `to` past NOW: F1 lies in the range, and is left out as dated in the future
        ahead = await get("/v1/requests", {"from": "2026-11-20T12:00:00Z", "to": "2026-12-31T00:00:00Z"})
    rows = [(i["created_at"][11:16], i["cost"], i["saved"], i["excluded"]) for i in body["items"]]
    assert rows == [
        ("12:32", 0.015, 0.0, None),
        ("12:31", None, None, "negative_tokens"),
        ("12:10", 0.06, 0.0, None),
        ("11:50", None, None, "missing_provider_or_model"),
        ("10:00", None, None, "negative_tokens"),
        ("09:30", None, None, "negative_tokens"),
        ("08:00", 0.0, 0.03, None),
        ("20:00", 0.045, 0.0, None),
        ("12:50", 0.003, 0.0, None),
        ("12:40", None, None, "negative_tokens"),
    ]
    assert all(i["priced_as"] is None for i in body["items"] if i["excluded"])
    # the audit adds up to the totals
    assert round(sum(i["cost"] for i in body["items"] if i["cost"] is not None), 6) == 0.123
    assert body["data_quality"] == WINDOW_QUALITY
    assert [(i["created_at"], i["cost"], i["excluded"]) for i in ahead["items"][:1]] == [
        ((NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), None, "future_created_at")
    ]


async def test_a_range_ending_after_now_leaves_the_future_rows_out(log: LogDB) -> None:
    await bad_log(log)
    params = {"from": "2026-11-20T00:00:00Z", "to": "2026-12-31T00:00:00Z"}
    async with http_at(log, NOW) as (get, _):
        body = await get("/v1/spend", params)
    # G3 + G4 + G5 = 0 + 0.06 + 0.015; F1's $3 is not in it
    assert body["spend"] == 0.075
    assert [(i["provider"], i["requests"]) for i in body["items"]] == [("anthropic", 2), ("openai", 1)]
    assert body["data_quality"] == quality(negative=3, missing=1, future=1)  # B2, B4, B5; B3; F1


async def test_a_row_within_the_clock_skew_is_fresh_and_counts(log: LogDB) -> None:
    await log.insert(
        [
            Row(NOW - timedelta(minutes=10), *SONNET, prompt_tokens=10_000),  # 10000 × 3 → $0.03
            Row(NOW + timedelta(minutes=2), *SONNET, prompt_tokens=10_000),  # the gateway's clock runs ahead
            Row(NOW + timedelta(minutes=6), *SONNET, prompt_tokens=10_000),  # past the 5 minutes of skew
        ]
    )
    async with http_at(log, NOW) as (get, _):
        hour = await get("/v1/live", {"window": "1h", "to": TO})
        # a range that ends after NOW + 5 minutes holds the first two rows only: 2 × $0.03
        ahead = await get("/v1/live", {"window": "1h", "to": "2026-11-20T13:00:00Z"})
    assert hour["latest_request_at"] == "2026-11-20T12:36:56Z"
    assert hour["lag_seconds"] == 0.0  # never negative
    assert (hour["spend"], hour["requests"]) == (0.03, 1)
    assert hour["data_quality"] == quality(negative=0, missing=0, future=1)
    assert (ahead["spend"], ahead["requests"]) == (0.06, 2)


async def test_a_view_without_provider_or_model(log: LogDB) -> None:
    """`request_log` as a VIEW (the contract says NOT NULL; a mapped log may still give NULL)."""
    await log.insert(
        [
            Row(at("2026-11-20T10:00:00Z"), *SONNET, prompt_tokens=10_000),  # 10000 × 3 → $0.03
            Row(at("2026-11-20T10:01:00Z"), "<null>", "claude-3-5-sonnet", prompt_tokens=10_000),
            Row(at("2026-11-20T10:02:00Z"), "anthropic", "<null>", prompt_tokens=10_000),
            Row(at("2026-11-20T10:03:00Z"), "anthropic", "   ", prompt_tokens=10_000),  # blank
        ]
    )
    await log.execute(
        """ALTER TABLE request_log RENAME TO raw_log;
        CREATE VIEW request_log AS
        SELECT id, created_at, request_id, NULLIF(provider, '<null>') AS provider, NULLIF(model, '<null>') AS model,
               endpoint, token_id, status_code, streamed, prompt_tokens, completion_tokens, cache_read_tokens,
               cache_write_tokens, cache_hit, prompt_tokens_avoided, completion_tokens_avoided, latency_ms,
               cache_key
        FROM raw_log;"""
    )
    day = {"window": "24h", "to": TO}
    async with http_at(log, NOW) as (get, _):
        by_provider = await get("/v1/spend", day)
        by_model = await get("/v1/spend", {**day, "group_by": "model"})
        series = await get("/v1/trend", {**day, "group_by": "provider"})
        rows = await get("/v1/requests", day)
    assert [(i["provider"], i["spend"], i["requests"]) for i in by_provider["items"]] == [("anthropic", 0.03, 1)]
    assert [(i["model"], i["requests"]) for i in by_model["items"]] == [("claude-3-5-sonnet", 1)]
    assert by_model["pricing"]["unpriced"] == [] and by_model["pricing"]["coverage_pct"] == 100.0
    assert [s["key"] for s in series["series"]] == ["anthropic"]
    assert by_provider["data_quality"] == quality(negative=0, missing=3, future=0)
    assert [(i["provider"], i["model"], i["excluded"]) for i in rows["items"]] == [
        ("anthropic", "   ", "missing_provider_or_model"),
        ("anthropic", None, "missing_provider_or_model"),
        (None, "claude-3-5-sonnet", "missing_provider_or_model"),
        ("anthropic", "claude-3-5-sonnet", None),
    ]


async def test_bad_rows_arriving_in_the_open_hours_count_in_the_next_answer(log: LogDB) -> None:
    await log.insert([Row(at("2026-11-20T12:05:00Z"), *SONNET, prompt_tokens=10_000)])  # $0.03
    hour = {"window": "1h", "to": TO}
    async with http_at(log, NOW) as (get, _):
        before = await get("/v1/live", hour)
        await log.insert(
            [
                Row(at("2026-11-20T12:20:00Z"), *SONNET, prompt_tokens=-10_000_000),
                Row(at("2026-11-20T12:21:00Z"), "anthropic", "", prompt_tokens=10_000),
                Row(at("2026-11-20T12:22:00Z"), *SONNET, prompt_tokens=20_000),  # $0.06
            ]
        )
        after = await get("/v1/live", hour)
        head = await get("/v1/summary", {"window": "24h", "to": TO})
    assert (before["spend"], before["requests"], before["data_quality"]["excluded_requests"]) == (0.03, 1, 0)
    assert (after["spend"], after["requests"]) == (0.09, 2)
    assert after["data_quality"] == quality(negative=1, missing=1, future=0)
    assert (head["spend"], head["requests"], head["data_quality"]) == (0.09, 2, quality(1, 1, 0))


async def test_smoke_prints_what_is_left_out(log: LogDB, capsys: pytest.CaptureFixture[str]) -> None:
    """`cost-api smoke` reads the real clock: the rows are dated from it."""
    now = datetime.now(UTC)
    await log.insert(
        [
            Row(now - timedelta(hours=2), *SONNET, prompt_tokens=10_000),
            Row(now - timedelta(hours=3), *SONNET, prompt_tokens=-10_000),
            Row(now - timedelta(hours=4), "", "", prompt_tokens=10_000),
            Row(now + timedelta(days=30), *SONNET, prompt_tokens=10_000),
        ]
    )
    code = await asyncio.to_thread(main, ["smoke", "--db", log.url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[-1] == (
        "data quality, last 24h (future rows: whole log): 3 rows left out of every figure: "
        "negative_tokens 1, missing_provider_or_model 1, future_created_at 1"
    )
