"""GET /v1/trend against hand-computed dollars per local bucket, on SQLite and Postgres.

Prices (pricing.yaml, USD per 1M tokens): gpt-4o-mini 0.15 in / 0.60 out; claude-3-5-sonnet 3 in.
So for gpt-4o-mini: 1,000,000 prompt tokens = $0.15, 200,000 = $0.03, 100,000 = $0.015,
10,000 = $0.0015; 100,000 completion tokens = $0.06, 10,000 = $0.006.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..logdb import LogDB, Row, at

TO = "2026-11-20T12:00:00Z"  # window 7d: [11-13T12:00Z, 11-20T12:00Z) = 8 UTC days, first and last partial
ZERO = {"spend": 0.0, "saved_by_cache": 0.0, "requests": 0}


def mini(when: str, *, prompt: int = 0, completion: int = 0, **kw: Any) -> Row:
    return Row(at(when), "openai", "gpt-4o-mini", prompt_tokens=prompt, completion_tokens=completion, **kw)


def point(t: str, date: str | None, spend: float, requests: int, saved: float = 0.0) -> dict[str, Any]:
    out: dict[str, Any] = {"t": t}
    if date is not None:
        out["date"] = date
    return {**out, "spend": spend, "saved_by_cache": saved, "requests": requests}


async def get_trend(client_for, **params: Any) -> dict[str, Any]:
    async with client_for() as client:
        response = await client.get("/v1/trend", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def only_series(body: dict[str, Any]) -> list[dict[str, Any]]:
    assert [s["key"] for s in body["series"]] == ["total"]
    return body["series"][0]["points"]


# --------------------------------------------------------------------------- local days


async def test_days_follow_berlin_across_the_23_hour_day(log: LogDB, client_for) -> None:
    await log.insert(
        [
            mini("2026-03-27T22:59:59Z", prompt=1_000_000),  # 03-27 23:59:59 CET: before `from`
            mini("2026-03-27T23:00:00Z", prompt=100_000),  # 03-28 00:00 CET → 28th, $0.015
            mini("2026-03-28T22:59:59Z", completion=10_000),  # 03-28 23:59:59 CET → 28th, $0.006
            mini("2026-03-28T23:00:00Z", prompt=200_000),  # 03-29 00:00 CET → 29th, $0.03
            mini("2026-03-29T21:59:59Z", completion=100_000),  # 03-29 23:59:59 CEST → 29th, $0.06
            mini("2026-03-29T22:00:00Z", prompt=1_000_000),  # 03-30 00:00 CEST → 30th, $0.15
            # a cache hit on the 30th: costs nothing, saves 100,000 × 0.15 = $0.015
            mini("2026-03-30T12:00:00Z", cache_hit=True, prompt_tokens_avoided=100_000),
            mini("2026-03-30T22:00:00Z", prompt=1_000_000),  # at `to`: outside
        ]
    )
    rng = {"from": "2026-03-27T23:00:00Z", "to": "2026-03-30T22:00:00Z"}
    body = await get_trend(client_for, tz="Europe/Berlin", **rng)
    assert body["interval"] == "day"
    assert body["tz"] == "Europe/Berlin"
    assert body["range"] == rng
    assert only_series(body) == [
        point("2026-03-27T23:00:00Z", "2026-03-28", 0.021, 2),  # 0.015 + 0.006
        point("2026-03-28T23:00:00Z", "2026-03-29", 0.09, 2),  # 0.03 + 0.06, in 23 hours
        point("2026-03-29T22:00:00Z", "2026-03-30", 0.15, 2, saved=0.015),
    ]
    assert body["pricing"]["coverage_pct"] == 100.0
    assert body["latest_request_at"] == "2026-03-30T22:00:00Z"
    # the same rows in UTC days: the zone, not the database, decides the buckets
    utc = await get_trend(client_for, tz="UTC", **rng)
    assert only_series(utc) == [
        point("2026-03-27T00:00:00Z", "2026-03-27", 0.015, 1),  # only its last hour is in range
        point("2026-03-28T00:00:00Z", "2026-03-28", 0.036, 2),  # 0.006 + 0.03
        point("2026-03-29T00:00:00Z", "2026-03-29", 0.21, 2),  # 0.06 + 0.15
        point("2026-03-30T00:00:00Z", "2026-03-30", 0.0, 1, saved=0.015),
    ]


async def test_days_follow_berlin_across_the_25_hour_day(log: LogDB, client_for) -> None:
    await log.insert(
        [
            mini("2026-10-24T22:00:00Z", prompt=100_000),  # 10-25 00:00 CEST → 25th, $0.015
            mini("2026-10-25T00:30:00Z", prompt=10_000),  # 02:30 CEST → 25th, $0.0015
            mini("2026-10-25T01:30:00Z", prompt=10_000),  # 02:30 CET (again) → 25th, $0.0015
            mini("2026-10-25T22:59:59Z", prompt=200_000),  # 10-25 23:59:59 CET → 25th, $0.03
            mini("2026-10-25T23:00:00Z", completion=100_000),  # 10-26 00:00 CET → 26th, $0.06
        ]
    )
    body = await get_trend(
        client_for, tz="Europe/Berlin", **{"from": "2026-10-24T22:00:00Z", "to": "2026-10-26T23:00:00Z"}
    )
    assert only_series(body) == [
        point("2026-10-24T22:00:00Z", "2026-10-25", 0.048, 4),  # 25 hours: 0.015 + 2 × 0.0015 + 0.03
        point("2026-10-25T23:00:00Z", "2026-10-26", 0.06, 1),
    ]
    # hourly, the local hour 02:00 comes twice: once in CEST, once in CET
    hourly = await get_trend(
        client_for,
        tz="Europe/Berlin",
        interval="hour",
        **{"from": "2026-10-25T00:00:00Z", "to": "2026-10-25T02:00:00Z"},
    )
    assert hourly["interval"] == "hour"
    assert only_series(hourly) == [
        point("2026-10-25T00:00:00Z", None, 0.0015, 1),
        point("2026-10-25T01:00:00Z", None, 0.0015, 1),
    ]


async def test_days_in_a_45_minute_zone_with_partial_first_and_last_days(log: LogDB, client_for) -> None:
    # Asia/Kathmandu is +05:45: local days begin at 18:15Z
    await log.insert(
        [
            mini("2026-05-31T23:59:59Z", prompt=1_000_000),  # 06-01 05:44:59 local, before `from`
            mini("2026-06-01T00:00:00Z", prompt=100_000),  # 06-01 05:45 → 1st, $0.015
            mini("2026-06-01T18:14:59Z", completion=10_000),  # 06-01 23:59:59 → 1st, $0.006
            mini("2026-06-01T18:15:00Z", prompt=200_000),  # 06-02 00:00 → 2nd, $0.03
            mini("2026-06-02T18:14:59Z", completion=100_000),  # 06-02 23:59:59 → 2nd, $0.06
            mini("2026-06-02T18:15:00Z", prompt=10_000),  # 06-03 00:00 → 3rd, $0.0015
            mini("2026-06-03T00:00:00Z", prompt=1_000_000),  # 06-03 05:45, at `to`: outside
        ]
    )
    body = await get_trend(
        client_for, tz="Asia/Kathmandu", **{"from": "2026-06-01T00:00:00Z", "to": "2026-06-03T00:00:00Z"}
    )
    assert only_series(body) == [
        point("2026-05-31T18:15:00Z", "2026-06-01", 0.021, 2),  # counts from 05:45 local only
        point("2026-06-01T18:15:00Z", "2026-06-02", 0.09, 2),
        point("2026-06-02T18:15:00Z", "2026-06-03", 0.0015, 1),  # counts until 05:45 local only
    ]


async def test_hours_in_a_30_minute_zone(log: LogDB, client_for) -> None:
    # Asia/Kolkata is +05:30: local hours begin at :30 UTC
    await log.insert(
        [
            mini("2026-06-01T00:29:59Z", prompt=100_000),  # 05:59:59 local → the 05:00 hour, $0.015
            mini("2026-06-01T00:30:00Z", prompt=200_000),  # 06:00 → the 06:00 hour, $0.03
            mini("2026-06-01T02:59:59Z", completion=10_000),  # 08:29:59 → the 08:00 hour, $0.006
            mini("2026-06-01T03:00:00Z", prompt=1_000_000),  # at `to`
        ]
    )
    body = await get_trend(
        client_for,
        tz="Asia/Kolkata",
        interval="hour",
        **{"from": "2026-06-01T00:00:00Z", "to": "2026-06-01T03:00:00Z"},
    )
    assert only_series(body) == [
        point("2026-05-31T23:30:00Z", None, 0.015, 1),
        point("2026-06-01T00:30:00Z", None, 0.03, 1),
        point("2026-06-01T01:30:00Z", None, 0.0, 0),
        point("2026-06-01T02:30:00Z", None, 0.006, 1),
    ]


async def test_the_configured_zone_is_the_default(log: LogDB, client_for) -> None:
    async with client_for(tz="Asia/Kathmandu") as client:
        body = (await client.get("/v1/trend", params={"window": "today", "to": "2026-06-02T00:00:00Z"})).json()
    assert body["tz"] == "Asia/Kathmandu"
    assert body["range"] == {"from": "2026-06-01T18:15:00Z", "to": "2026-06-02T00:00:00Z"}
    assert only_series(body) == [{"t": "2026-06-01T18:15:00Z", "date": "2026-06-02", **ZERO}]


# --------------------------------------------------------------------------- zero fill, series


async def test_every_bucket_is_present_and_zero_filled(log: LogDB, client_for) -> None:
    await log.insert([mini("2026-11-16T10:00:00Z", prompt=100_000)])
    body = await get_trend(client_for, window="7d", to=TO)
    assert body["range"] == {"from": "2026-11-13T12:00:00Z", "to": TO}
    days = [f"2026-11-{d}" for d in range(13, 21)]
    assert only_series(body) == [
        {
            "t": f"{d}T00:00:00Z",
            "date": d,
            **(ZERO if d != "2026-11-16" else {**ZERO, "spend": 0.015, "requests": 1}),
        }
        for d in days
    ]


async def test_an_empty_log(log: LogDB, client_for) -> None:
    body = await get_trend(client_for, window="24h", to=TO, interval="hour")
    points = only_series(body)
    assert len(points) == 24
    assert points[0] == {"t": "2026-11-19T12:00:00Z", **ZERO}
    assert body["pricing"]["coverage_pct"] == 100.0
    assert body["latest_request_at"] is None
    assert (await get_trend(client_for, window="24h", to=TO, group_by="endpoint"))["series"] == []


async def _endpoints(log: LogDB) -> None:
    await log.insert(
        [
            mini("2026-11-18T13:00:00Z", prompt=100_000, endpoint="/a"),  # $0.015
            mini("2026-11-19T10:00:00Z", prompt=1_000_000, endpoint="/a"),  # $0.15; /a: $0.165
            mini("2026-11-19T10:00:00Z", completion=100_000, endpoint="/b"),  # $0.06
            mini("2026-11-19T11:00:00Z", prompt=200_000, endpoint="/c"),  # $0.03
            mini("2026-11-20T01:00:00Z", prompt=100_000, endpoint="/d"),  # $0.015
            mini("2026-11-19T12:00:00Z", cache_hit=True, prompt_tokens_avoided=100_000, endpoint="/d"),
        ]
    )


def days_of(series: dict[str, Any]) -> dict[str, tuple[float, int]]:
    """The non-empty days of a series: date → (spend, requests)."""
    return {p["date"]: (p["spend"], p["requests"]) for p in series["points"] if p["requests"]}


async def test_group_by_keeps_the_top_series_and_sums_the_rest_as_other(log: LogDB, client_for) -> None:
    await _endpoints(log)
    body = await get_trend(client_for, window="7d", to=TO, group_by="endpoint", top=2)
    assert body["group_by"] == "endpoint"
    assert [(s["key"], s.get("endpoint"), s.get("count")) for s in body["series"]] == [
        ("/a", "/a", None),
        ("/b", "/b", None),
        ("other", None, 2),  # /c and /d
    ]
    assert all(len(s["points"]) == 8 for s in body["series"])
    a, b, other = body["series"]
    assert days_of(a) == {"2026-11-18": (0.015, 1), "2026-11-19": (0.15, 1)}
    assert days_of(b) == {"2026-11-19": (0.06, 1)}
    assert days_of(other) == {"2026-11-19": (0.03, 2), "2026-11-20": (0.015, 1)}  # /c, /d's hit; /d
    assert [p["saved_by_cache"] for p in other["points"] if p["saved_by_cache"]] == [0.015]
    # with room for every key there is no `other`; top defaults to 8
    assert [s["key"] for s in (await get_trend(client_for, window="7d", to=TO, group_by="endpoint"))["series"]] == [
        "/a",
        "/b",
        "/c",
        "/d",
    ]
    exact = await get_trend(client_for, window="7d", to=TO, group_by="endpoint", top=4)
    assert [s["key"] for s in exact["series"]] == ["/a", "/b", "/c", "/d"]


async def test_group_by_model_provider_and_token(log: LogDB, client_for) -> None:
    await log.add_tokens([("tok_customer_a_0123456789", "pg_live_xy7", "customer-A")])
    await log.insert(
        [
            Row(
                at("2026-11-19T10:00:00Z"),
                "openai",
                "gpt-4o-mini-2024-07-18",
                token_id="tok_customer_a_0123456789",
                prompt_tokens=1_000_000,
            ),  # $0.15
            # claude-3-5-sonnet: 10,000 × 3 / 1M = $0.03 and 5,000 × 3 / 1M = $0.015
            Row(
                at("2026-11-19T11:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet",
                token_id="sk_shared_prefix_1",
                prompt_tokens=10_000,
            ),
            Row(
                at("2026-11-19T12:00:00Z"),
                "anthropic",
                "claude-3-5-sonnet",
                token_id="sk_shared_prefix_2",
                prompt_tokens=5_000,
            ),
            Row(at("2026-11-19T13:00:00Z"), "together", "acme/mystery-model", prompt_tokens=1000),  # unpriced
        ]
    )
    by_model = await get_trend(client_for, window="7d", to=TO, group_by="model")
    assert [(s["key"], s["provider"], s["model"], s["priced_as"]) for s in by_model["series"]] == [
        ("openai/gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("anthropic/claude-3-5-sonnet", "anthropic", "claude-3-5-sonnet", "anthropic/claude-3-5-sonnet"),
        ("together/acme/mystery-model", "together", "acme/mystery-model", None),
    ]
    assert [days_of(s) for s in by_model["series"]] == [
        {"2026-11-19": (0.15, 1)},
        {"2026-11-19": (0.045, 2)},
        {"2026-11-19": (0.0, 1)},
    ]
    assert by_model["pricing"]["coverage_pct"] == 75.0
    assert [u["model"] for u in by_model["pricing"]["unpriced"]] == ["acme/mystery-model"]
    by_provider = await get_trend(client_for, window="7d", to=TO, group_by="provider")
    assert [(s["key"], days_of(s)) for s in by_provider["series"]] == [
        ("openai", {"2026-11-19": (0.15, 1)}),
        ("anthropic", {"2026-11-19": (0.045, 2)}),
        ("together", {"2026-11-19": (0.0, 1)}),
    ]
    # tokens as displayed, never the id; two ids shown alike are one series, like `token=` filters them
    by_token = await get_trend(client_for, window="7d", to=TO, group_by="token")
    assert [(s["key"], s["name"], days_of(s)) for s in by_token["series"]] == [
        ("pg_live_xy7…", "customer-A", {"2026-11-19": (0.15, 1)}),
        ("sk_shared_p…", None, {"2026-11-19": (0.045, 2)}),
        ("anonymous", None, {"2026-11-19": (0.0, 1)}),
    ]
    assert "tok_customer_a" not in str(by_token) and "prefix_1" not in str(by_token)


async def test_filters(log: LogDB, client_for) -> None:
    await _endpoints(log)
    await log.insert([Row(at("2026-11-19T10:00:00Z"), "anthropic", "claude-3-5-sonnet", "/a", prompt_tokens=10_000)])
    async with client_for() as client:
        two = (
            await client.get("/v1/trend", params=[("window", "7d"), ("to", TO), ("endpoint", "/a"), ("endpoint", "/b")])
        ).json()
        openai_a = (
            await client.get(
                "/v1/trend",
                params={
                    "window": "7d",
                    "to": TO,
                    "endpoint": "/a",
                    "provider": "openai",
                    "group_by": "model",
                },
            )
        ).json()
    # /a: 0.015 on the 18th; 0.15 + 0.03 (claude) on the 19th; /b: 0.06 on the 19th
    assert days_of(two["series"][0]) == {"2026-11-18": (0.015, 1), "2026-11-19": (0.24, 3)}
    assert [(s["key"], days_of(s)) for s in openai_a["series"]] == [
        ("openai/gpt-4o-mini", {"2026-11-18": (0.015, 1), "2026-11-19": (0.15, 1)})
    ]


async def test_csv_has_a_row_per_series_and_bucket(log: LogDB, client_for) -> None:
    await _endpoints(log)
    async with client_for() as client:
        by_param = await client.get(
            "/v1/trend", params={"window": "2d", "to": TO, "group_by": "endpoint", "top": 1, "format": "csv"}
        )
        by_accept = await client.get(
            "/v1/trend", params={"window": "2d", "to": TO, "interval": "day"}, headers={"Accept": "text/csv"}
        )
    assert by_param.status_code == 200
    assert by_param.headers["content-type"].startswith("text/csv")
    assert "trend-day-endpoint-" in by_param.headers["content-disposition"]
    assert by_param.text.lstrip("\ufeff").splitlines() == [
        "key,t,date,spend,saved_by_cache,requests",
        "/a,2026-11-18T00:00:00Z,2026-11-18,0.015,0,1",
        "/a,2026-11-19T00:00:00Z,2026-11-19,0.15,0,1",
        "/a,2026-11-20T00:00:00Z,2026-11-20,0,0,0",
        "other,2026-11-18T00:00:00Z,2026-11-18,0,0,0",
        "other,2026-11-19T00:00:00Z,2026-11-19,0.09,0.015,3",  # /b 0.06 + /c 0.03; /d's hit
        "other,2026-11-20T00:00:00Z,2026-11-20,0.015,0,1",
    ]
    assert by_accept.text.lstrip("\ufeff").splitlines()[1:] == [
        "total,2026-11-18T00:00:00Z,2026-11-18,0.015,0,1",
        "total,2026-11-19T00:00:00Z,2026-11-19,0.24,0.015,4",
        "total,2026-11-20T00:00:00Z,2026-11-20,0.015,0,1",
    ]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "minute"}, "interval"),
        ({"interval": "hour", "window": "90d"}, "interval"),  # 2,160 hours
        ({"interval": "hour", "from": "2026-01-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}, "interval"),
        ({"group_by": "cache_key"}, "group_by"),
        ({"group_by": "colour"}, "group_by"),
        ({"top": "0"}, "top"),
        ({"top": "101"}, "top"),
        ({"window": "30x"}, "window"),
        ({"window": "401d"}, "window"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"from": "2026-11-20T12:00:00Z", "to": TO}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "to": TO}, "from"),  # over 400 days
        ({"from": "last tuesday"}, "from"),
        ({"to": "2026-11-20T12:00:00"}, "to"),  # no offset
        ({"format": "xml"}, "format"),
    ],
)
async def test_bad_parameters_are_problem_documents_naming_them(
    log: LogDB, client_for, params: dict[str, str], field: str
) -> None:
    async with client_for() as client:
        response = await client.get("/v1/trend", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["status"] == 400
    assert body["type"].endswith("bad-parameter")
    assert [e["field"] for e in body["errors"]] == [field]
    assert body["errors"][0]["message"]
    assert field in body["detail"]
