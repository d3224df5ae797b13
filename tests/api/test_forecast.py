"""GET /v1/forecast against figures computed by hand from the documented method (docs/forecast.md),
on SQLite and Postgres; the 400s.

The log (now = 2026-11-20T12:00Z, a Friday): endpoint /a spends $0.15 every hour (gpt-4o-mini,
1,000,000 prompt tokens at $0.15 per 1M) from 2026-10-23T12:00Z, the first hour of the four weeks
before now, to 11:00Z; endpoint /b spends $0.03 at 09:00Z every day from 10-23 (claude-3-5-sonnet,
10,000 prompt tokens at $3 per 1M). Every day is like every other: the profile is those rates, the
level 1, the day scatter 0 (so the floor, 0.05).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from ..logdb import LogDB, Row, at
from ..problems import assert_problem
from .test_data_quality import http_at

NOW = at("2026-11-20T12:00:00Z")
Z80, SCATTER, LEVEL_SHARE = 1.2815515655446004, 0.05, 1.5


def band(expected: float, hours: float) -> tuple[float, float]:
    days = max(hours / 24, 1.0)
    sd = math.sqrt(SCATTER**2 / days + (LEVEL_SHARE * SCATTER) ** 2)
    return expected * math.exp(-Z80 * sd), expected * math.exp(Z80 * sd)


async def ledger(log: LogDB) -> None:
    start = at("2026-10-23T12:00:00Z")
    rows = [Row(start + timedelta(hours=h), endpoint="/a", prompt_tokens=1_000_000) for h in range(672)]
    rows += [
        Row(
            at("2026-10-23T09:00:00Z") + timedelta(days=d), "anthropic", "claude-3-5-sonnet", "/b", prompt_tokens=10_000
        )
        for d in range(29)
    ]
    await log.insert(rows)


def close(got: float, want: float) -> None:
    assert got == round(want, 6), (got, want)


async def test_month_total_and_band(log: LogDB) -> None:
    await ledger(log)
    async with http_at(log, NOW) as (get, _):
        body = await get("/v1/forecast", {})
    assert body["period"] == "month" and body["range"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    assert body["history"] == {"from": "2026-10-23T12:00:00Z", "to": "2026-11-20T12:00:00Z"}
    # so far: 468 hours of /a (11-01T00 to 11-20T12) and 20 runs of /b (11-01 … 11-20 at 09:00)
    close(body["spend"], 468 * 0.15 + 20 * 0.03)  # 70.80
    # ahead: 252 hours of /a and 10 runs of /b (11-21 … 11-30)
    ahead = 252 * 0.15 + 10 * 0.03  # 38.10
    low, high = band(ahead, 252)
    close(body["projected"], 70.80 + ahead)
    close(body["low"], 70.80 + low)
    close(body["high"], 70.80 + high)
    assert body["low"] < body["projected"] < body["high"] and body["band_pct"] == 80
    days = body["days"]
    assert len(days) == 30 and days[0]["date"] == "2026-11-01"
    assert days[0] == {"t": "2026-11-01T00:00:00Z", "date": "2026-11-01", "spend": 3.63, "projected": 3.63,
                       "low": 3.63, "high": 3.63}  # fmt: skip
    today = days[19]  # 12 hours and the 09:00 run so far; 12 hours ahead
    close(today["spend"], 12 * 0.15 + 0.03)
    close(today["projected"], 24 * 0.15 + 0.03)
    close(today["high"], 12 * 0.15 + 0.03 + band(12 * 0.15, 12)[1])
    assert days[20]["spend"] == 0.0 and days[20]["projected"] == 3.63
    assert body["items"] == [] and body["others"] is None


async def test_by_endpoint(log: LogDB) -> None:
    await ledger(log)
    async with http_at(log, NOW) as (get, _):
        body = await get("/v1/forecast", {"group_by": "endpoint"})
    a, b = body["items"]
    assert a["endpoint"] == "/a" and b["endpoint"] == "/b"
    close(a["spend"], 468 * 0.15)
    close(a["projected"], 720 * 0.15)
    close(a["high"], 468 * 0.15 + band(252 * 0.15, 252)[1])
    close(b["spend"], 0.60)
    close(b["projected"], 0.90)
    close(b["low"], 0.60 + band(0.30, 252)[0])
    async with http_at(log, NOW) as (get, _):
        only_b = await get("/v1/forecast", {"group_by": "endpoint", "endpoint": "/b", "limit": "1"})
    assert [i["endpoint"] for i in only_b["items"]] == ["/b"] and only_b["others"] is None
    close(only_b["projected"], 0.90)


async def test_day_in_berlin(log: LogDB) -> None:
    """2026-11-20 in Europe/Berlin (UTC+1): 11-19T23:00Z to 11-20T23:00Z."""
    await ledger(log)
    async with http_at(log, NOW) as (get, _):
        body = await get("/v1/forecast", {"period": "day", "tz": "Europe/Berlin"})
    assert body["range"] == {"from": "2026-11-19T23:00:00Z", "to": "2026-11-20T23:00:00Z"}
    close(body["spend"], 13 * 0.15 + 0.03)
    close(body["projected"], 24 * 0.15 + 0.03)
    close(body["high"], 13 * 0.15 + 0.03 + band(11 * 0.15, 11)[1])
    assert [d["date"] for d in body["days"]] == ["2026-11-20"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"period": "quarter"}, "period"), ({"group_by": "cache_key"}, "group_by"), ({"tz": "Mars/Base"}, "tz"),
     ({"limit": "0"}, "limit")],
)  # fmt: skip
async def test_bad_parameters(log: LogDB, client_for: Any, params: dict[str, str], field: str) -> None:
    async with client_for() as client:
        response = await client.get("/v1/forecast", params=params)
    body = assert_problem(response, 400, kind="bad-parameter")
    assert [e["field"] for e in body["errors"]] == [field]
