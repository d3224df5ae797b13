"""/grafana/query time series and /v1/trend are one computation (`trend.chart`): for day, hour and
minute buckets the same figures, each checked against dollars computed by hand, on SQLite and
Postgres.

Prices (pricing.yaml, USD per 1M tokens): gpt-4o-mini 0.15 in / 0.60 out; claude-3-5-sonnet 3 in /
15 out. The configured zone is Europe/Berlin (Grafana's `browser` zone is not sent, so the series take
it too), over the 23-hour day of 2025-03-30: Berlin's 03-30 is [03-29T23:00Z, 03-30T22:00Z).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..conftest import ClientFactory
from ..logdb import LogDB, Row, at

TZ = "Europe/Berlin"
# Berlin's 03-30 (23 hours), 03-31 and 04-01: 71 hours
FROM, TO = "2025-03-29T23:00:00Z", "2025-04-01T22:00:00Z"
HOUR, MINUTE = 3_600_000, 60_000
SONNET = ("anthropic", "claude-3-5-sonnet")
MINI = ("openai", "gpt-4o-mini")


def ms(text: str) -> int:
    return int(at(text).timestamp() * 1000)


async def _ledger(log: LogDB) -> None:
    await log.insert(
        [
            Row(at("2025-03-29T22:59:59Z"), *MINI, prompt_tokens=1_000_000),  # before `from`
            # 03-30, in the hour 00Z: 100,000 × 0.15 = $0.015 and 10,000 × 0.60 = $0.006 in the minute
            # 00:15; 10,000 × 3 = $0.03 in the minute 00:47
            Row(at("2025-03-30T00:15:10Z"), *MINI, prompt_tokens=100_000),
            Row(at("2025-03-30T00:15:50Z"), *MINI, completion_tokens=10_000),
            Row(at("2025-03-30T00:47:00Z"), *SONNET, prompt_tokens=10_000),
            # 23:59:59 CEST, still 03-30: 200,000 × 0.15 = $0.03
            Row(at("2025-03-30T21:59:59Z"), *MINI, prompt_tokens=200_000),
            # 03-31 00:00 CEST: 1,000 × 15 = $0.015
            Row(at("2025-03-30T22:00:00Z"), *SONNET, completion_tokens=1_000),
            # 03-31: 1,000,000 × 0.15 = $0.15
            Row(at("2025-03-31T12:00:00Z"), *MINI, prompt_tokens=1_000_000),
            # 04-01 00:00 CEST: 100,000 × 3 = $0.30
            Row(at("2025-03-31T22:00:00Z"), *SONNET, prompt_tokens=100_000),
            # 04-01: a cache hit costs nothing and saves 100,000 × 0.15 = $0.015
            Row(at("2025-04-01T08:00:00Z"), *MINI, cache_hit=True, prompt_tokens_avoided=100_000),
            Row(at("2025-04-01T22:00:00Z"), *SONNET, prompt_tokens=1_000_000),  # at `to`: outside
        ]
    )


def grafana_body(frm: str, to: str, interval: str, group_by: str = "") -> dict[str, Any]:
    payload = {"interval": interval, "group_by": group_by}
    return {
        "range": {"from": frm, "to": to, "raw": {"from": frm, "to": to}},
        "timezone": "browser",
        "intervalMs": MINUTE,
        "maxDataPoints": 2000,
        "targets": [
            {"refId": ref, "target": target, "payload": payload}
            for ref, target in (("A", "spend"), ("B", "saved_by_cache"), ("C", "requests"))
        ],
    }


async def both(
    client: Any, frm: str, to: str, grafana_interval: str, trend_interval: str, group_by: str = ""
) -> tuple[dict[str, list[tuple[str, list[list[Any]]]]], dict[str, list[tuple[str, list[list[Any]]]]]]:
    """The same range from /grafana/query and from /v1/trend, each as {field: [(series, [[value,
    epoch ms], ...]), ...]} for spend, saved_by_cache and requests."""
    response = await client.post("/grafana/query", json=grafana_body(frm, to, grafana_interval, group_by))
    assert response.status_code == 200, response.text
    fields = {"A": "spend", "B": "saved_by_cache", "C": "requests"}
    grafana: dict[str, list[tuple[str, list[list[Any]]]]] = {field: [] for field in fields.values()}
    for series in response.json():
        grafana[fields[series["refId"]]].append((series["target"], series["datapoints"]))
    params = {"from": frm, "to": to, "interval": trend_interval, **({"group_by": group_by} if group_by else {})}
    response = await client.get("/v1/trend", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tz"] == TZ
    v1 = {
        field: [
            (
                field if s["key"] == "total" else s["key"],  # Grafana names the total series after its target
                [[p[field], int(datetime.fromisoformat(p["t"]).timestamp() * 1000)] for p in s["points"]],
            )
            for s in body["series"]
        ]
        for field in fields.values()
    }
    return grafana, v1


def nonzero(points: list[list[Any]]) -> dict[int, float]:
    return {t: v for v, t in points if v}


async def test_day_buckets_agree_with_v1_trend(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    days = [ms("2025-03-29T23:00:00Z"), ms("2025-03-30T22:00:00Z"), ms("2025-03-31T22:00:00Z")]
    async with client_for(tz=TZ) as client:
        total, total_v1 = await both(client, FROM, TO, "1d", "day")
        by_provider, by_provider_v1 = await both(client, FROM, TO, "1d", "day", "provider")
    assert total == total_v1
    assert by_provider == by_provider_v1
    # 03-30: 0.015 + 0.006 + 0.03 + 0.03; 03-31: 0.015 + 0.15; 04-01: 0.30 (and a $0 cache hit)
    assert total["spend"] == [("spend", [[0.081, days[0]], [0.165, days[1]], [0.3, days[2]]])]
    assert total["saved_by_cache"] == [("saved_by_cache", [[0.0, days[0]], [0.0, days[1]], [0.015, days[2]]])]
    assert total["requests"] == [("requests", [[4, days[0]], [2, days[1]], [2, days[2]]])]
    # anthropic 0.03 + 0.015 + 0.30 = 0.345 before openai 0.021 + 0.03 + 0.15 = 0.201
    assert by_provider["spend"] == [
        ("anthropic", [[0.03, days[0]], [0.015, days[1]], [0.3, days[2]]]),
        ("openai", [[0.051, days[0]], [0.15, days[1]], [0.0, days[2]]]),
    ]


async def test_hour_buckets_agree_with_v1_trend(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    async with client_for(tz=TZ) as client:
        total, total_v1 = await both(client, FROM, TO, "1h", "hour")
        by_provider, by_provider_v1 = await both(client, FROM, TO, "1h", "hour", "provider")
    assert total == total_v1
    assert by_provider == by_provider_v1
    [(_, spend)] = total["spend"]
    assert [t for _, t in spend] == [ms(FROM) + n * HOUR for n in range(71)]  # the 23-hour day, then 48
    assert nonzero(spend) == {
        ms("2025-03-30T00:00:00Z"): 0.051,  # 0.015 + 0.006 + 0.03
        ms("2025-03-30T21:00:00Z"): 0.03,
        ms("2025-03-30T22:00:00Z"): 0.015,
        ms("2025-03-31T12:00:00Z"): 0.15,
        ms("2025-03-31T22:00:00Z"): 0.3,
    }
    assert nonzero(total["saved_by_cache"][0][1]) == {ms("2025-04-01T08:00:00Z"): 0.015}
    assert {name: nonzero(points) for name, points in by_provider["spend"]} == {
        "anthropic": {ms("2025-03-30T00:00:00Z"): 0.03, ms("2025-03-30T22:00:00Z"): 0.015,
                      ms("2025-03-31T22:00:00Z"): 0.3},
        "openai": {ms("2025-03-30T00:00:00Z"): 0.021, ms("2025-03-30T21:00:00Z"): 0.03,
                   ms("2025-03-31T12:00:00Z"): 0.15},
    }  # fmt: skip


async def test_minute_buckets_add_up_to_the_v1_trend_hour(log: LogDB, client_for: ClientFactory) -> None:
    await _ledger(log)
    frm, to = "2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z"
    async with client_for(tz=TZ) as client:
        minutes, hour = await both(client, frm, to, "1m", "hour")
        by_provider, by_provider_hour = await both(client, frm, to, "1m", "hour", "provider")
    [(_, spend)] = minutes["spend"]
    assert [t for _, t in spend] == [ms(frm) + n * MINUTE for n in range(60)]
    # the minute 00:15: 0.015 + 0.006; the minute 00:47: 0.03
    assert nonzero(spend) == {ms("2025-03-30T00:15:00Z"): 0.021, ms("2025-03-30T00:47:00Z"): 0.03}
    assert nonzero(minutes["requests"][0][1]) == {ms("2025-03-30T00:15:00Z"): 2, ms("2025-03-30T00:47:00Z"): 1}
    # /v1/trend has no minutes: its one hour is the sum of Grafana's sixty
    assert hour["spend"] == [("spend", [[0.051, ms(frm)]])]
    assert hour["requests"] == [("requests", [[3, ms(frm)]])]
    for grafana, v1 in ((minutes, hour), (by_provider, by_provider_hour)):
        for field in ("spend", "saved_by_cache", "requests"):
            summed = [(name, [[round(sum(v for v, _ in points), 6), points[0][1]]]) for name, points in grafana[field]]
            assert summed == v1[field]
    assert [(name, nonzero(points)) for name, points in by_provider["spend"]] == [
        ("anthropic", {ms("2025-03-30T00:47:00Z"): 0.03}),
        ("openai", {ms("2025-03-30T00:15:00Z"): 0.021}),
    ]
