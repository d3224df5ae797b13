"""The Grafana JSON datasource under /grafana: request bodies as Grafana and the plugin (0.3–0.6)
send them, answers checked against hand-computed dollars and against /v1, on SQLite and Postgres."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cost_api.config import load_settings
from cost_api.watch import anomalies
from cost_api.watch.anomalies import Episode, Reading
from cost_api.watch.incidents import incidents
from cost_api.web import grafana
from cost_api.web.service import build_service
from cost_api.windows import Range

from ..clock import FakeClock
from ..conftest import ClientFactory
from ..logdb import LogDB, Row, at

# The range: the 7 days [11-13, 11-20) UTC; the previous period [11-06, 11-13).
FROM, TO = "2026-11-13T00:00:00.000Z", "2026-11-20T00:00:00.000Z"
DAY, HOUR = 86_400_000, 3_600_000
DAY0 = 1_794_528_000_000  # 2026-11-13T00:00:00Z in epoch ms
CUSTOMER_A = "tok_customer_a_0123456789"
SONNET = ("anthropic", "claude-3-5-sonnet-20241022")  # $3 in / $15 out per 1M
MINI = ("openai", "gpt-4o-mini-2024-07-18")  # $0.15 in / $0.075 cache read / $0.60 out
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "dashboard.json"
PROBLEM = {"type", "title", "status", "detail", "errors"}


async def _ledger(log: LogDB) -> None:
    await log.add_tokens([(CUSTOMER_A, "pg_live_xy7", "customer-A")])
    await log.insert(
        [
            # 14320 × 3 + 642 × 15 = 52,590 → $0.05259; tokens 14,962
            Row(at("2026-11-19T10:05:00Z"), *SONNET, "/summarise-ticket", CUSTOMER_A,
                prompt_tokens=14320, completion_tokens=642),
            # the same call from the response cache: $0, saves $0.05259, no tokens billed
            Row(at("2026-11-19T11:00:00Z"), *SONNET, "/summarise-ticket", CUSTOMER_A, cache_hit=True,
                prompt_tokens_avoided=14320, completion_tokens_avoided=642),
            # 10000 × 0.15 + 2000 × 0.075 + 1000 × 0.6 = 2,250 → $0.00225; tokens 13,000
            Row(at("2026-11-14T08:30:00Z"), *MINI, "/classify-intent", prompt_tokens=10000,
                cache_read_tokens=2000, completion_tokens=1000),
            # 20000 × 0.15 = 3,000 → $0.003; tokens 20,000
            Row(at("2026-11-14T09:10:00Z"), *MINI, "/classify-intent", prompt_tokens=20000),
            # unpriced: a request with 1,000 tokens and no dollars
            Row(at("2026-11-18T00:00:00Z"), "together", "acme/mystery-model", "/misc", prompt_tokens=1000),
            # the previous period: 10000 × 3 → $0.03
            Row(at("2026-11-10T12:00:00Z"), *SONNET, "/summarise-ticket", CUSTOMER_A, prompt_tokens=10000),
            # at `to`: outside
            Row(at("2026-11-20T00:00:00Z"), *SONNET, "/summarise-ticket", prompt_tokens=999999),
        ]
    )  # fmt: skip


def body(*targets: dict[str, Any], interval_ms: int = DAY, max_points: int = 1000, **extra: Any) -> dict[str, Any]:
    """A /query body as Grafana 10/11 with the plugin 0.6 sends it."""
    return {
        "app": "dashboard",
        "requestId": "SQR101",
        "timezone": "utc",
        "panelId": 5,
        "dashboardUID": "cost-api-overview",
        "range": {"from": FROM, "to": TO, "raw": {"from": "now-7d", "to": "now"}},
        "rangeRaw": {"from": "now-7d", "to": "now"},
        "timeInfo": "",
        "interval": "1d",
        "intervalMs": interval_ms,
        "maxDataPoints": max_points,
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "simpod-json-datasource", "uid": "cost-api"},
                "editorMode": "builder",
                "hide": False,
                **t,
            }
            for i, t in enumerate(targets)
        ],
        "scopedVars": {
            "__interval": {"text": "1d", "value": "1d"},
            "__interval_ms": {"text": str(interval_ms), "value": interval_ms},
        },
        "startTime": 1_795_000_000_000,
        "filters": [],
        **extra,
    }


async def query(client: Any, payload: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post("/grafana/query", json=payload)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer, list)
    return answer


def points(series: dict[str, Any]) -> dict[int, float]:
    return {t: v for v, t in series["datapoints"] if v}


def day(n: int) -> int:
    return DAY0 + n * DAY


# --------------------------------------------------------------------------- protocol basics


async def test_save_and_test_and_every_post_answers_200(log: LogDB, client_for: ClientFactory) -> None:
    async with client_for() as client:
        for path in ("/grafana", "/grafana/"):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
        for path, payload in (
            ("/grafana/metrics", {}),
            ("/grafana/search", {"target": ""}),
            ("/grafana/metric-payload-options", {"metric": "spend", "payload": {}, "name": "provider"}),
            ("/grafana/query", {"targets": []}),
            ("/grafana/variable", {"payload": {"target": "providers"}}),
            ("/grafana/variable", {}),  # a variable being created: no query yet
            ("/grafana/tag-keys", {}),
            ("/grafana/tag-values", {"key": "provider"}),
            ("/grafana/annotations", {"annotation": {"query": "anomalies"}}),
        ):
            response = await client.post(path, json=payload)
            assert response.status_code == 200, (path, response.text)
            assert isinstance(response.json(), list), path
        # Grafana sends no body at all to some of them
        for path in ("/grafana/metrics", "/grafana/tag-keys", "/grafana/query"):
            response = await client.post(path, content=b"", headers={"Content-Type": "application/json"})
            assert response.status_code == 200, (path, response.text)


async def test_metrics_list_every_target_with_its_payloads(log: LogDB, client_for: ClientFactory) -> None:
    async with client_for() as client:
        metrics = (await client.post("/grafana/metrics", json={"metric": "spend", "payload": {}})).json()
        old = (await client.post("/grafana/search", json={"type": "timeserie", "target": ""})).json()
    assert [m["value"] for m in metrics] == [
        "spend", "saved_by_cache", "requests", "tokens",
        "by_provider", "top_endpoints", "top_tokens", "top_models",
        "summary", "live", "anomalies",
    ]  # fmt: skip
    assert old == metrics  # /search is the same list (with `text` for plugins before 0.4)
    spend = metrics[0]
    assert spend["label"] == "Spend (USD)" and spend["text"] == "spend"
    payloads = {p["name"]: p for p in spend["payloads"]}
    assert set(payloads) == {"group_by", "top", "interval", "provider", "model", "endpoint", "token"}
    assert [o["value"] for o in payloads["group_by"]["options"]] == ["", "provider", "endpoint", "token", "model"]
    assert payloads["provider"]["type"] == "multi-select" and "options" not in payloads["provider"]
    assert {p["name"] for p in metrics[4]["payloads"]} == {"limit", "provider", "model", "endpoint", "token"}


# --------------------------------------------------------------------------- time series


async def test_daily_series_by_hand(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    async with client_for() as client:
        answer = await query(
            client,
            body(
                {"target": "spend", "payload": {}},
                {"target": "saved_by_cache", "payload": {}},
                {"target": "requests", "payload": {}},
                {"target": "tokens", "payload": {}},
            ),
        )
    assert [(a["refId"], a["target"]) for a in answer] == [
        ("A", "spend"), ("B", "saved_by_cache"), ("C", "requests"), ("D", "tokens"),
    ]  # fmt: skip
    for series in answer:  # seven UTC days, zero-filled, value first, epoch ms
        assert [t for _, t in series["datapoints"]] == [day(n) for n in range(7)]
    spend, saved, requests, tokens = (a["datapoints"] for a in answer)
    assert spend == [[0.0, day(0)], [0.00525, day(1)], [0.0, day(2)], [0.0, day(3)], [0.0, day(4)],
                     [0.0, day(5)], [0.05259, day(6)]]  # fmt: skip
    assert saved[6] == [0.05259, day(6)] and sum(v for v, _ in saved) == 0.05259
    assert [v for v, _ in requests] == [0, 2, 0, 0, 0, 1, 2]
    assert [v for v, _ in tokens] == [0, 33000, 0, 0, 0, 1000, 14962]


async def test_group_by_gives_a_series_per_key(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    async with client_for() as client:
        by_provider = await query(client, body({"target": "spend", "payload": {"group_by": "provider"}}))
        by_token = await query(client, body({"target": "spend", "payload": {"group_by": "token"}}))
        by_model = await query(client, body({"target": "requests", "payload": {"group_by": "model", "top": "1"}}))
        by_endpoint = await query(client, body({"target": "spend", "payload": {"group_by": "endpoint"}}))
    assert [(s["target"], points(s)) for s in by_provider] == [
        ("anthropic", {day(6): 0.05259}),
        ("openai", {day(1): 0.00525}),
        ("together", {}),
    ]
    assert [(s["target"], points(s)) for s in by_token] == [
        ("customer-A (pg_live_xy7…)", {day(6): 0.05259}),
        ("anonymous", {day(1): 0.00525}),
    ]
    # top=1: the largest by spend, the rest summed as `other`
    assert [(s["target"], points(s)) for s in by_model] == [
        ("anthropic/claude-3-5-sonnet-20241022", {day(6): 2}),
        ("other", {day(1): 2, day(5): 1}),
    ]
    assert [s["target"] for s in by_endpoint] == ["/summarise-ticket", "/classify-intent", "/misc"]


async def test_bucket_size_follows_interval_and_max_data_points(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    async with client_for() as client:
        hourly = (await query(client, body({"target": "spend"}, interval_ms=HOUR, max_points=2000)))[0]
        # 20 s asked, but 7 days in at most 100 points: 1.68 h rounds up to 3 h
        coarse = (await query(client, body({"target": "spend"}, interval_ms=20_000, max_points=100)))[0]
        forced = (await query(client, body({"target": "spend", "payload": {"interval": "6h"}}, interval_ms=HOUR)))[0]
        # a short range: 5-minute buckets, aligned to the step, the first one before `from`
        short = body({"target": "spend"}, interval_ms=300_000)
        short["range"] = {"from": "2026-11-19T10:02:00.000Z", "to": "2026-11-19T11:00:00.000Z"}
        five = (await query(client, short))[0]
    assert len(hourly["datapoints"]) == 168
    assert points(hourly) == {day(1) + 8 * HOUR: 0.00225, day(1) + 9 * HOUR: 0.003, day(6) + 10 * HOUR: 0.05259}
    assert len(coarse["datapoints"]) == 56
    assert points(coarse) == {day(1) + 6 * HOUR: 0.00225, day(1) + 9 * HOUR: 0.003, day(6) + 9 * HOUR: 0.05259}
    assert len(forced["datapoints"]) == 28
    assert [t for _, t in five["datapoints"]][:2] == [day(6) + 10 * HOUR, day(6) + 10 * HOUR + 300_000]
    assert len(five["datapoints"]) == 12
    assert points(five) == {day(6) + 10 * HOUR + 300_000: 0.05259}


async def test_day_buckets_follow_the_dashboard_zone(log: LogDB, client_for: ClientFactory) -> None:
    await log.insert([Row(at("2026-11-13T23:30:00Z"), *SONNET, prompt_tokens=10000)])  # 00:30 in Berlin
    async with client_for() as client:
        utc = (await query(client, body({"target": "spend"})))[0]
        berlin = (await query(client, body({"target": "spend"}, timezone="Europe/Berlin")))[0]
        browser = (await query(client, body({"target": "spend"}, timezone="browser")))[0]
    assert points(utc) == {day(0): 0.03}
    assert points(berlin) == {day(1) - HOUR: 0.03}  # Berlin's 11-14 starts at 23:00 UTC
    assert berlin["datapoints"][0][1] == day(0) - HOUR  # the local day holding `from`
    assert browser == utc  # the browser's zone is not sent: the configured tz (UTC)


# --------------------------------------------------------------------------- filters


async def test_payload_and_adhoc_filters(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)

    async def total(client: Any, payload: dict[str, Any] | None = None, **extra: Any) -> float:
        answer = await query(client, body({"target": "spend", "payload": payload or {}}, **extra))
        return round(sum(v for v, _ in answer[0]["datapoints"]), 6)

    async with client_for() as client:
        assert await total(client) == 0.05784
        assert await total(client, {"provider": "openai"}) == 0.00525
        assert await total(client, {"provider": ["openai", "anthropic"]}) == 0.05784
        # what Grafana's `regex` formatting makes of a variable in builder mode
        assert await total(client, {"endpoint": "\\/summarise\\-ticket"}) == 0.05259
        assert await total(client, {"provider": "(openai|together)"}) == 0.00525
        assert await total(client, {"provider": ".*"}) == 0.05784  # All, with allValue .*
        assert await total(client, {"provider": "$nosuchvariable"}) == 0.05784  # left by Grafana: no filter
        assert await total(client, {"provider": "$provider"}, scopedVars={"provider": {"value": ["openai"]}}) == 0.00525
        assert await total(client, {"token": "pg_live_xy7…"}) == 0.05259
        assert await total(client, {"token": ["anonymous"]}) == 0.00525
        assert await total(client, {"model": "gpt-4o-mini-2024-07-18"}) == 0.00525
        # ad-hoc filters: Grafana's `filters` (plugin 0.6.4+) and older plugins' `adhocFilters`
        eq = [{"key": "provider", "operator": "=", "value": "openai"}]
        assert await total(client, filters=eq) == 0.00525
        assert await total(client, filters=[], adhocFilters=eq) == 0.00525
        assert await total(client, filters=[{"key": "provider", "operator": "!=", "value": "anthropic"}]) == 0.00525
        assert await total(client, filters=[{"key": "model", "operator": "=~", "value": "gpt-.*"}]) == 0.00525
        assert await total(client, filters=[{"key": "token", "operator": "=~", "value": "customer-.*"}]) == 0.05259
        assert await total(client, filters=[{"key": "endpoint", "operator": "!~", "value": "/summ.*"}]) == 0.00525
        # every filter holds: payload and ad-hoc together, two ad-hoc filters on one key
        both = [{"key": "provider", "operator": "=", "value": "anthropic"}]
        assert await total(client, {"provider": "openai"}, filters=both) == 0.0
        assert await total(client, filters=[*eq, *both]) == 0.0
        assert await total(client, filters=[{"key": "model", "operator": "=~", "value": "nothing.*"}]) == 0.0


async def test_a_filter_that_keeps_no_value_answers_empty(log: LogDB, client_for: ClientFactory) -> None:
    """A regular expression or a negation that keeps none of the logged values: every target's empty
    answer on both dialects. 5-minute buckets are read from SQL whatever the rollups hold, so the
    filter reaches the database if anything of it is sent there."""
    await _ledger(log)
    hour = {"from": "2026-11-19T10:00:00.000Z", "to": "2026-11-19T11:00:00.000Z"}
    nothing = [{"key": "model", "operator": "=~", "value": "nothing.*"}]
    targets = (
        {"target": "spend", "payload": {"interval": "5m"}},
        {"target": "requests", "payload": {"interval": "5m", "group_by": "provider"}},
        {"target": "top_endpoints"},
        {"target": "summary"},
        {"target": "live"},
    )
    async with client_for() as client:
        series, endpoints, headline, live = await query(client, body(*targets, range=hour, filters=nothing))
        chained = await client.post(
            "/grafana/variable", json={"payload": {"target": "models", "provider": "(nobody)"}, "range": hour}
        )
    assert series["target"] == "spend"  # the grouped series has no key, hence no series
    assert series["datapoints"] == [[0.0, day(6) + 10 * HOUR + i * 300_000] for i in range(12)]
    assert endpoints["rows"] == []
    assert headline["rows"] == [[0.0, 0.0, None, 0.0, 0.0, None, 0, 0]]
    assert live["rows"][0][:6] == [0.0, 0.0, 0, 0, 0, 0.0]
    assert chained.status_code == 200 and chained.json() == []


# --------------------------------------------------------------------------- tables


async def test_tables_by_hand(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    async with client_for() as client:
        by_provider, endpoints, tokens, models, headline = await query(
            client,
            body(
                {"target": "by_provider"},
                {"target": "top_endpoints", "payload": {"limit": "2"}},
                {"target": "top_tokens"},
                {"target": "top_models", "payload": {"provider": "openai"}},
                {"target": "summary"},
            ),
        )
    numbers = ["Spend", "Share %", "Requests", "Saved by cache", "Previous spend", "Change %"]
    assert by_provider["type"] == "table" and by_provider["refId"] == "A"
    assert by_provider["columns"] == [{"text": "Provider", "type": "string"}] + [
        {"text": n, "type": "number"} for n in numbers
    ]
    assert by_provider["rows"] == [
        ["anthropic", 0.05259, 90.9, 2, 0.05259, 0.03, 75.3],  # 0.05259 / 0.05784; vs $0.03
        ["openai", 0.00525, 9.1, 2, 0.0, 0.0, None],
        ["together", 0.0, 0.0, 1, 0.0, 0.0, None],
    ]
    assert endpoints["rows"] == [
        ["/summarise-ticket", 0.05259, 90.9, 2, 0.05259, 0.03, 75.3],
        ["/classify-intent", 0.00525, 9.1, 2, 0.0, 0.0, None],
    ]
    assert [c["text"] for c in tokens["columns"][:2]] == ["Token", "Name"]
    assert tokens["rows"] == [
        ["pg_live_xy7…", "customer-A", 0.05259, 90.9, 2, 0.05259, 0.03, 75.3],
        ["anonymous", None, 0.00525, 9.1, 3, 0.0, 0.0, None],
    ]
    assert models["rows"] == [
        ["openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini", 0.00525, 100.0, 2, 0.0, 0.0, None]
    ]
    assert [c["text"] for c in headline["columns"]] == [
        "Spend", "Saved by cache", "Saved %", "Previous spend", "Change", "Change %", "Requests", "Cache hits",
    ]  # fmt: skip
    # 0.05259 / 0.05784 saved; 0.05784 − 0.03 = 0.02784, ÷ 0.03 = 92.8 %
    assert headline["rows"] == [[0.05784, 0.05259, 90.9, 0.03, 0.02784, 92.8, 5, 1]]


async def test_live_table_is_the_hour_ending_at_the_range_end(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    hour = body({"target": "live"})
    hour["range"] = {"from": "2026-11-19T10:00:00.000Z", "to": "2026-11-19T11:00:01.000Z"}
    async with client_for() as client:
        (live,) = await query(client, hour)
    assert [c["text"] for c in live["columns"]] == [
        "Spend", "Saved by cache", "Requests", "Cache hits", "Errors", "Spend rate per hour", "Lag seconds",
    ]  # fmt: skip
    spend, saved, requests, hits, errors, rate, lag = live["rows"][0]
    # [10:00:01, 11:00:01): the 10:05 call and the 11:00 cache hit (which is in the last 5 minutes)
    assert (spend, saved, requests, hits, errors, rate) == (0.05259, 0.05259, 2, 1, 0, 0.0)
    assert isinstance(lag, float)


async def test_answers_equal_the_v1_answers_for_the_same_range(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    frm, to = str(DAY0), str(DAY0 + 7 * DAY)  # what Infinity's ${__from}/${__to} send
    async with client_for() as client:
        trend = (await client.get("/v1/trend", params={"from": frm, "to": to, "group_by": "provider"})).json()
        spend = (await client.get("/v1/spend", params={"from": frm, "to": to, "group_by": "endpoint"})).json()
        summary = (await client.get("/v1/summary", params={"from": frm, "to": to})).json()
        live = (await client.get("/v1/live", params={"to": to})).json()
        endpoints, headline, hour = await query(
            client,
            body({"target": "top_endpoints", "payload": {"limit": "50"}}, {"target": "summary"}, {"target": "live"}),
        )
        series = await query(client, body({"target": "spend", "payload": {"group_by": "provider", "interval": "1d"}}))
    v1 = [(s["key"], [[p["spend"], p["t"]] for p in s["points"]]) for s in trend["series"]]
    assert [s["target"] for s in series] == ["anthropic", "openai", "together"]
    assert [
        (
            s["target"],
            [[v, datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")] for v, t in s["datapoints"]],
        )
        for s in series
    ] == v1
    assert endpoints["rows"] == [
        [i["endpoint"], i["spend"], i["share_pct"], i["requests"], i["saved_by_cache"], i["previous_spend"],
         i["change_pct"]]
        for i in spend["items"]
    ]  # fmt: skip
    assert headline["rows"][0][:6] == [
        summary["spend"], summary["saved_by_cache"], summary["saved_pct"], summary["previous"]["spend"],
        summary["change"], summary["change_pct"],
    ]  # fmt: skip
    assert hour["rows"][0][:6] == [live[k] for k in ("spend", "saved_by_cache", "requests", "cache_hits", "errors",
                                                    "spend_rate_per_hour")]  # fmt: skip


# --------------------------------------------------------------------------- variables and ad-hoc filters


async def test_variables_and_tag_values(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    rng = {"from": "2026-11-13T00:00:00.000Z", "to": "2026-11-20T00:00:00.000Z", "raw": {"from": "now-7d"}}
    async with client_for() as client:

        async def variable(payload: Any, **extra: Any) -> list[dict[str, str]]:
            response = await client.post("/grafana/variable", json={"payload": payload, "range": rng, **extra})
            assert response.status_code == 200, response.text
            return response.json()

        assert await variable({"target": "providers"}) == [
            {"__text": v, "__value": v} for v in ("anthropic", "openai", "together")
        ]
        assert await variable({"target": "tokens"}) == [
            {"__text": "anonymous", "__value": "anonymous"},
            {"__text": "customer-A (pg_live_xy7…)", "__value": "pg_live_xy7…"},
        ]
        assert [v["__value"] for v in await variable("endpoints")] == ["/classify-intent", "/misc", "/summarise-ticket"]
        # a chained variable: the user's JSON with a filter on another variable's value
        assert await variable({"target": "models", "provider": "openai"}) == [
            {"__text": "gpt-4o-mini-2024-07-18", "__value": "gpt-4o-mini-2024-07-18"}
        ]
        assert await variable({"target": "model", "provider": "(anthropic)"}) == [
            {"__text": "claude-3-5-sonnet-20241022", "__value": "claude-3-5-sonnet-20241022"}
        ]
        # plugins before 0.4 ask /search with the variable's query as `target`
        old = await client.post("/grafana/search", json={"type": None, "target": "providers", "range": rng})
        assert old.json() == [{"text": v, "value": v} for v in ("anthropic", "openai", "together")]

        keys = (await client.post("/grafana/tag-keys", json={})).json()
        assert keys == [{"type": "string", "text": k} for k in ("provider", "model", "endpoint", "token")]
        tags = await client.post("/grafana/tag-values", json={"key": "token", "timeRange": rng})
        assert tags.json() == [{"text": "anonymous"}, {"text": "pg_live_xy7…"}]
        unknown = await client.post("/grafana/tag-values", json={"key": "team"})
        assert unknown.status_code == 200 and unknown.json() == []
        options = await client.post(
            "/grafana/metric-payload-options",
            json={"metric": "spend", "payload": {"group_by": "provider"}, "name": "endpoint", "range": rng},
        )
        assert options.json() == [{"label": v, "value": v} for v in ("/classify-intent", "/misc", "/summarise-ticket")]


async def test_without_a_range_values_of_the_last_30_days(log: LogDB, client_for: ClientFactory) -> None:
    now = at("2026-11-20T12:00:00Z")
    await log.insert(
        [
            Row(now - timedelta(days=1), "groq", "llama-3.1-8b-instant", "/recent"),
            Row(now - timedelta(days=29), "mistral", "mistral-small", "/older"),
            Row(now - timedelta(days=31), "cohere", "command-r", "/too-old"),
        ]
    )
    async with client_for(clock=FakeClock(now)) as client:
        providers = (await client.post("/grafana/variable", json={"payload": {"target": "providers"}})).json()
        tags = (await client.post("/grafana/tag-values", json={"key": "endpoint"})).json()
        options = (
            await client.post("/grafana/metric-payload-options", json={"metric": "spend", "name": "provider"})
        ).json()
    assert [p["__value"] for p in providers] == ["groq", "mistral"]
    assert tags == [{"text": "/older"}, {"text": "/recent"}]
    assert [o["value"] for o in options] == ["groq", "mistral"]


# --------------------------------------------------------------------------- lenient bodies, clear errors


async def test_the_shapes_older_plugins_send(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    legacy = {
        "panelId": 1,
        "range": {"from": FROM, "to": TO, "raw": {"from": "now-7d", "to": "now"}},
        "rangeRaw": {"from": "now-7d", "to": "now"},
        "interval": "1d",
        "intervalMs": DAY,
        "maxDataPoints": 700,
        "targets": [
            {"target": "spend", "refId": "A", "type": "timeserie", "payload": '{"group_by": "provider"}'},
            {"target": "spend", "refId": "B", "payload": ""},  # an empty payload (0.3)
            {"target": "requests", "refId": "C"},  # none at all
            {"target": "tokens", "refId": "D", "hide": True},  # hidden: no answer
            {"refId": "E"},  # a placeholder without a metric
            {"target": "spend", "refId": "F", "payload": "not json"},
        ],
        "adhocFilters": [{"key": "provider", "operator": "=", "value": "anthropic", "condition": ""}],
        "scopedVars": {},
        "somethingGrafanaAddsLater": {"x": 1},
    }
    async with client_for() as client:
        answer = await query(client, legacy)
    assert [(a["refId"], a["target"]) for a in answer] == [
        ("A", "anthropic"), ("B", "spend"), ("C", "requests"), ("F", "spend"),
    ]  # fmt: skip
    assert points(answer[0]) == {day(6): 0.05259}
    assert points(answer[2]) == {day(6): 2}


async def test_fields_grafana_sends_in_several_shapes(log: LogDB, client_for: ClientFactory) -> None:
    """`range.from`/`to` as ISO text or epoch ms; a payload as an object, JSON text or a variable's
    name; a variable's query in `payload` or `target` (an object too); items of `targets` that are
    not objects skipped; keys cost-api does not read ignored whatever their type."""
    await _ledger(log)
    epoch = {"from": DAY0, "to": day(7), "raw": 5}
    async with client_for() as client:
        iso = await query(client, body({"target": "spend", "payload": {"group_by": "provider"}}))
        numbers = await query(client, body({"target": "spend", "payload": {"group_by": "provider"}}, range=epoch))
        text = await query(client, body({"target": "spend", "payload": '{"group_by": "provider", "top": "1"}'}))
        assert numbers == iso
        assert [(a["target"], points(a)) for a in text] == [("anthropic", {day(6): 0.05259}), ("other", {
            day(1): 0.00525})]  # fmt: skip
        odd = body({"target": "requests"}, panelId="5", requestId={"x": [1]}, startTime="soon")
        odd["targets"] = ["spend", 7, None, [1, 2], *odd["targets"]]
        assert [(a["refId"], points(a)) for a in await query(client, odd)] == [("A", {day(1): 2, day(5): 1, day(6): 2})]

        providers = [{"text": v, "value": v} for v in ("anthropic", "openai", "together")]
        for search in (
            {"target": "providers"},
            {"target": {"target": "providers"}},
            {"target": '{"target": "provider"}'},
        ):
            answer = await client.post("/grafana/search", json={**search, "range": epoch})
            assert answer.json() == providers, search
        chained = [{"__text": "gpt-4o-mini-2024-07-18", "__value": "gpt-4o-mini-2024-07-18"}]
        for payload in ({"target": "models", "provider": "openai"}, '{"target": "models", "provider": "openai"}'):
            answer = await client.post("/grafana/variable", json={"payload": payload, "range": epoch})
            assert answer.json() == chained, payload


async def test_unusable_bodies_are_400_problem_documents(log: LogDB, client_for: ClientFactory) -> None:
    def spend(payload: dict[str, Any] | None = None, **extra: Any) -> bytes:
        return json.dumps(body({"target": "spend", "payload": payload or {}}, **extra)).encode()

    def adhoc(key: str, operator: str) -> bytes:
        return spend(filters=[{"key": key, "operator": operator, "value": "x"}])

    async with client_for() as client:
        cases = [
            ("/grafana/query", b"{not json", "body"),
            ("/grafana/query", b"[1, 2]", "body"),
            ("/grafana/variable", b"nope", "body"),
            ("/grafana/query", b'{"targets": {"refId": "A"}}', "targets"),
            ("/grafana/query", json.dumps(body({"target": "dollars"})).encode(), "targets[0].target"),
            ("/grafana/query", json.dumps(body({"target": "spend", "hide": True}, {"target": "dollars"})).encode(),
             "targets[1].target"),  # by its place in the body, hidden targets counted
            ("/grafana/query", spend({"group_by": "team"}), "group_by"),
            ("/grafana/query", spend({"interval": "1m"}), "payload.interval"),  # 10,080 points
            ("/grafana/query", json.dumps(body({"target": "top_tokens", "payload": {"limit": "x"}})).encode(),
             "payload.limit"),
            ("/grafana/query", spend(range={"from": "yesterday", "to": TO}), "from"),
            ("/grafana/query", spend(range={"from": TO, "to": FROM}), "from"),
            ("/grafana/query", adhoc("team", "="), "filters[0].key"),
            ("/grafana/query", adhoc("provider", "<"), "filters[0].operator"),
            ("/grafana/variable", b'{"payload": {"target": "teams"}}', "payload.target"),
            # a field cost-api reads, of a type it cannot read, named by its path
            ("/grafana/query", spend(range="last week"), "range"),
            ("/grafana/query", spend(range={"from": True, "to": TO}), "range.from"),
            ("/grafana/query", spend(intervalMs=[1]), "intervalMs"),
            ("/grafana/query", spend({"top": [8]}), "targets[0].payload.top"),
            ("/grafana/query", json.dumps(body({"target": "spend", "payload": '{"top": [8]}'})).encode(), "targets[0]"),
            ("/grafana/query", spend({"provider": {"a": 1}}), "targets[0].payload.provider"),
            ("/grafana/query", json.dumps(body({"target": 5})).encode(), "targets[0].target"),
            ("/grafana/query", spend(filters=["provider=openai"]), "filters[0]"),
            ("/grafana/query", spend(scopedVars={"p": "openai"}), "scopedVars[...]"),
            ("/grafana/tag-values", b'{"key": ["provider"]}', "key"),
            ("/grafana/metric-payload-options", b'{"name": 1}', "name"),
            ("/grafana/annotations", b'{"annotation": "anomalies"}', "annotation"),
        ]  # fmt: skip
        for path, raw, field in cases:
            response = await client.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (raw, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert set(problem) == PROBLEM
            assert problem["errors"][0]["field"] == field, (raw, problem)


async def test_what_multiplies_work_is_capped(log: LogDB, client_for: ClientFactory) -> None:
    """docs/grafana.md: at most 20 targets (hidden ones too) and 20 ad-hoc filters in each list, at
    most 100 values per filter; a series never has more points than maxDataPoints, nor 2,000."""
    await _ledger(log)
    spend = {"target": "spend", "payload": {}}
    many = [{"key": "endpoint", "operator": "!=", "value": f"/e{i}"} for i in range(21)]
    values = [f"v{i}" for i in range(101)]
    async with client_for() as client:
        allowed = await query(client, body(*[spend] * 20, filters=many[:20], adhocFilters=many[1:]))
        assert len(allowed) == 20
        cases = [
            (body(*[spend] * 21), "targets"),
            (body(*[spend] * 19, {"target": "spend", "hide": True}, {"refId": "U"}), "targets"),
            (body(spend, filters=many), "filters"),
            (body(spend, adhocFilters=many), "adhocFilters"),
            (body({"target": "spend", "payload": {"provider": values}}), "targets[0].payload.provider"),
            (body({"target": "spend", "payload": {"provider": "$p"}}, scopedVars={"p": {"value": values}}),
             "targets[0].payload.provider"),
        ]  # fmt: skip
        for payload, field in cases:
            response = await client.post("/grafana/query", json=payload)
            assert response.status_code == 400, (field, response.text)
            assert response.json()["errors"][0]["field"] == field
        # the longest range and the finest interval Grafana could send: maxDataPoints, then 2,000, bound it
        longest = {"from": "2025-10-16T00:00:00.000Z", "to": TO}  # 400 days
        for points, most in ((10, 10), (1_000_000_000, 2000)):
            (series,) = await query(client, body(spend, range=longest, interval_ms=1, max_points=points))
            assert len(series["datapoints"]) <= most
            # every dollar of the range is there: $0.05784 in the last 7 days, $0.03 before them
            assert round(sum(v for v, _ in series["datapoints"]), 6) == 0.08784


# --------------------------------------------------------------------------- access


async def test_api_key_in_server_access_mode_and_cors_for_browser_mode(log: LogDB, client_for: ClientFactory) -> None:
    key, origin = "k-grafana-31c9", "https://grafana.example.com"
    async with client_for(api_keys=[key], cors_origins=[origin]) as client:
        # Server access: Grafana's proxy adds the configured header
        assert (await client.get("/grafana")).status_code == 401
        assert (await client.post("/grafana/query", json={"targets": []})).status_code == 401
        bearer = {"Authorization": f"Bearer {key}"}
        assert (await client.get("/grafana", headers=bearer)).status_code == 200
        response = await client.post("/grafana/query", json=body({"target": "spend"}), headers=bearer)
        assert response.status_code == 200, response.text
        # Browser access: the browser asks first, without a key
        preflight = await client.options(
            "/grafana/query",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        call = await client.post("/grafana/tag-keys", json={}, headers={"Origin": origin, **bearer})
        assert call.status_code == 200
        assert call.headers["access-control-allow-origin"] == origin
        refused = await client.options(
            "/grafana/query", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in refused.headers


# --------------------------------------------------------------------------- annotations


def _episode(rule: str, dimension: str, key: str, start: str, end: str | None, extra: float) -> Episode:
    reading = Reading(None, None, 0.0, "words")
    ended = None if end is None else at(end)
    return Episode(rule, dimension, key, at(start), ended, 6.5, extra + 2.0, reading, extra=extra)


# two incidents (3 hours apart): $10 over the baseline in 2 hours, and $9 in the 9 hours up to TO
EPISODES = [
    _episode("burn_rate", "endpoint", "/summarise-ticket", "2026-11-19T10:00:00Z", "2026-11-19T12:00:00Z", 10.0),
    _episode("new_spender", "token", "pg_live_xy7…", "2026-11-19T15:00:00Z", None, 9.0),
]


@pytest.fixture
def episodes(monkeypatch: pytest.MonkeyPatch) -> list[Range]:
    """anomalies.replay answering EPISODES, recording the ranges it was asked for."""
    asked: list[Range] = []

    async def fake(service: Any, rng: Range, **_: Any) -> list[Episode]:
        asked.append(rng)
        return EPISODES

    monkeypatch.setattr(anomalies, "replay", fake)
    return asked


async def test_annotations_from_anomaly_incidents(log: LogDB, client_for: ClientFactory, episodes: list[Range]) -> None:
    anno = body({"refId": "Anno", "target": "anomalies", "payload": {}})
    anno["targets"][0]["refId"] = "Anno"
    async with client_for() as client:
        (table,) = await query(client, anno)
        legacy = await client.post(
            "/grafana/annotations",
            json={
                "range": {"from": FROM, "to": TO},
                "rangeRaw": {"from": "now-7d", "to": "now"},
                "annotation": {"name": "Anomalies", "enable": True, "iconColor": "red", "query": "anomalies"},
            },
        )
    assert episodes == [Range(at(FROM), at(TO))] * 2
    assert table["refId"] == "Anno"
    assert table["columns"] == [
        {"text": "time", "type": "time"},
        {"text": "timeEnd", "type": "time"},
        {"text": "title", "type": "string"},
        {"text": "text", "type": "string"},
        {"text": "tags", "type": "string"},
    ]
    started = day(6) + 10 * HOUR
    assert table["rows"] == [
        [started, started + 2 * HOUR, "burn_rate: endpoint /summarise-ticket",
         "$10.00 over its usual spend ($5.00/h)", "burn_rate,endpoint"],
        [day(6) + 15 * HOUR, day(7), "new_spender: token pg_live_xy7…",
         "$9.00 over its usual spend ($1.00/h); still running", "new_spender,token"],
    ]  # fmt: skip
    assert legacy.status_code == 200
    first = legacy.json()[0]
    assert first["time"] == started and first["timeEnd"] == started + 2 * HOUR and first["isRegion"] is True
    assert first["tags"] == ["burn_rate", "endpoint"] and first["annotation"]["name"] == "Anomalies"


# --------------------------------------------------------------------------- the dashboard, replayed


def _relative(text: str, now: datetime) -> datetime:
    """Grafana's `now-7d` / `now` / a panel's `timeFrom` ("30d", "1h")."""
    match = re.fullmatch(r"(?:now-)?(\d+)([mhd])", text)
    if text == "now" or match is None:
        return now
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return now - timedelta(**{unit: int(match.group(1))})


def _ms(value: datetime) -> str:
    return str(int(value.timestamp() * 1000))


def _substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


@pytest.mark.parametrize("provider", [".*", "anthropic", "(openai|together)"])
async def test_every_dashboard_query_answers(log: LogDB, client_for: ClientFactory, provider: str) -> None:
    """Each panel target, the annotation and the variables of docs/grafana/dashboard.json, sent as
    Grafana sends them (variables substituted as the plugin's builder mode does)."""
    await _ledger(log)
    dashboard = json.loads(DASHBOARD.read_text())
    now = datetime(2026, 11, 20, tzinfo=UTC)
    start = _relative(dashboard["time"]["from"], now)

    def request(targets: list[dict[str, Any]], frm: datetime, to: datetime, points: int = 1000) -> dict[str, Any]:
        variables = {"provider": provider, "__from": _ms(frm), "__to": _ms(to)}
        interval = max(int((to - frm).total_seconds() * 1000 / points), 1000)
        return {
            "range": {
                "from": frm.isoformat().replace("+00:00", "Z"),
                "to": to.isoformat().replace("+00:00", "Z"),
                "raw": {"from": dashboard["time"]["from"], "to": dashboard["time"]["to"]},
            },
            "rangeRaw": dashboard["time"],
            "interval": f"{interval // 1000}s",
            "intervalMs": interval,
            "maxDataPoints": points,
            "timezone": dashboard["timezone"],
            "targets": _substitute(targets, variables),
            "scopedVars": {"__interval_ms": {"text": str(interval), "value": interval}},
            "filters": [{"key": "endpoint", "operator": "!=", "value": "/misc"}],
        }

    answered = 0
    teams = [{"name": "customer-*", "tags": {"team": "customers"}}]  # the "by team" panel has a team to show
    async with client_for(token_tags=teams) as client:
        for panel in dashboard["panels"]:
            frm = _relative(panel["timeFrom"], now) if panel.get("timeFrom") else start
            response = await client.post("/grafana/query", json=request(panel["targets"], frm, now))
            assert response.status_code == 200, (panel["title"], response.text)
            answer = response.json()
            assert isinstance(answer, list) and answer, panel["title"]
            for item in answer:
                assert "datapoints" in item or item.get("type") == "table", (panel["title"], item)
            answered += 1
        for annotation in dashboard["annotations"]["list"]:
            if annotation["datasource"].get("uid") != "cost-api":
                continue
            response = await client.post("/grafana/query", json=request([annotation["target"]], start, now))
            assert response.status_code == 200, response.text
            assert response.json()[0]["columns"][0]["text"] == "time"
            answered += 1
        for var in dashboard["templating"]["list"]:
            if var["type"] == "query":
                rng = {"from": start.isoformat(), "to": now.isoformat()}
                variable = {"payload": {"target": var["query"]["query"]}, "range": rng}
                response = await client.post("/grafana/variable", json=variable)
                assert response.status_code == 200, response.text
                expected = {
                    "providers": {"__text": "anthropic", "__value": "anthropic"},
                    "tag:team": {"__text": "customers", "__value": "team:customers"},
                }
                assert expected[var["query"]["query"]] in response.json()
            else:
                assert var["type"] == "adhoc"
                assert (await client.post("/grafana/tag-keys", json={})).status_code == 200
            answered += 1
    assert answered == len(dashboard["panels"]) + 1 + len(dashboard["templating"]["list"])


def test_dashboard_refers_only_to_what_the_api_serves() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (source,) = yaml.safe_load((DASHBOARD.parent / "datasources.yaml").read_text())["datasources"]
    assert (source["uid"], source["type"], source["access"]) == ("cost-api", "simpod-json-datasource", "proxy")
    assert source["url"].endswith("/grafana")
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"].startswith("Bearer ${")
    folder = yaml.safe_load((DASHBOARD.parent / "dashboards.yaml").read_text())["providers"][0]["options"]["path"]
    assert folder in (DASHBOARD.parent.parent / "grafana.md").read_text()
    metrics = {m.value for m in grafana.metrics()}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert target["target"] in metrics, panel["title"]
            assert target["datasource"]["uid"] == "cost-api"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for headline in ("spend", "saved by cache", "change", "by provider", "top endpoints", "top tokens",
                     "last 30 days", "last hour"):  # fmt: skip
        assert headline in titles


async def test_annotations_are_the_replayed_incidents(log: LogDB, client_for: ClientFactory) -> None:
    """No stand-in: a new endpoint spending $6 in an hour in 3 calls (≥ min_spend_per_hour, nothing in the 7 days
    before, of which the log holds all) is an anomaly, $6 over nothing (≥ min_impact $5); the annotations
    are the replay's incidents, one per incident."""
    await log.insert(
        [
            Row(at("2026-11-01T00:00:00Z"), *MINI, "/old", prompt_tokens=10),  # the log's history: baselines
            # three calls (new_spender's floor): 2,000,000 tokens × $3 per 1M = $6
            *(
                Row(at(f"2026-11-19T10:{m}:00Z"), *SONNET, "/new", prompt_tokens=n)
                for m, n in (("05", 1_000_000), ("15", 500_000), ("25", 500_000))
            ),
        ]
    )
    async with client_for() as client:
        (table,) = await query(client, body({"target": "anomalies"}))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    try:  # the replay itself, on a service of its own (the app's lives on the test client's loop)
        replayed = incidents(await anomalies.replay(service, Range(at(FROM), at(TO))), 5.0)
    finally:
        await service.close()
    assert [row[2] for row in table["rows"]] == [f"{i.root.rule}: {i.root.dimension} {i.root.key}" for i in replayed]
    assert [row[:2] for row in table["rows"]] == [[day(6) + 10 * HOUR, day(6) + 11 * HOUR]]
    # seen on every dimension, one incident; its root the most specific key, the (anonymous) token
    assert table["rows"][0][2:] == [
        "new_spender: token anonymous",
        "$6.00 over its usual spend ($6.00/h); also endpoint:/new, model:anthropic/claude-3-5-sonnet-20241022, "
        "provider:anthropic",
        "new_spender,token",
    ]


# --------------------------------------------------------------------------- Infinity: the URLs docs/grafana.md gives


def _infinity_rows() -> list[tuple[str, str, str, list[str]]]:
    """(type, URL, root selector, columns) of each row of docs/grafana.md's Infinity table."""
    text = (DASHBOARD.parent.parent / "grafana.md").read_text()
    section = text[text.index("## The /v1 endpoints with the Infinity datasource") :]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1] in ("JSON", "CSV"):
            url = cells[2].strip("`")
            rows.append((cells[1], url, cells[3].strip("`"), re.findall(r"`(\w+)`", cells[4])))
    return rows


def _select(value: Any, selector: str) -> Any:
    """Infinity's root selector: `items`, `series[0].points`."""
    for part in filter(None, re.split(r"\.|\[(\d+)\]", selector)):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


async def test_the_infinity_urls_of_the_docs_answer_rows(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    rows = _infinity_rows()
    assert len(rows) >= 10
    async with client_for() as client:
        for kind, url, root, columns in rows:
            path = url.removeprefix("http://cost-api:8000")
            path = path.replace("${__from}", str(DAY0)).replace("${__to}", str(DAY0 + 7 * DAY))
            response = await client.get(path)
            assert response.status_code == 200, (url, response.text)
            if kind == "CSV":
                header = response.text.lstrip("\ufeff").splitlines()[0].split(",")
                assert set(columns) <= set(header), url
                continue
            selected = _select(response.json(), root) if root else response.json()
            records = selected if isinstance(selected, list) else [selected]
            assert records and all(isinstance(r, dict) for r in records), url
            assert set(columns) <= set(records[0]), (url, columns, records[0])
            if root == "series[0].points" and "interval=day" in url:  # the same dollars as everywhere
                assert {r["t"]: r["spend"] for r in records if r["spend"]} == {
                    "2026-11-14T00:00:00Z": 0.00525,
                    "2026-11-19T00:00:00Z": 0.05259,
                }
