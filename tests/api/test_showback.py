"""Showback (docs/showback.md): /v1/spend by team whose rows add up to the total exactly, as JSON and
CSV, and the FOCUS export — against hand-computed figures where rounding each row alone would not add
up; a token that changes team mid-month, an untagged token, a cache hit; SQLite and Postgres."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from cost_api.web.csv import cell

from ..clock import FakeClock
from ..logdb import LogDB, Row, at
from ..problems import assert_problem

NOW = "2026-12-04T12:00:00Z"
MONTH = {"window": "month", "to": "2026-12-01T00:00:00Z"}  # November 2026, UTC
SEARCH = "tok_search_000001"  # column: team search, env prod
ADS = "tok_ads_000000002"  # column: team ads; a rule moves it to search from 2026-11-05
LOOSE = "tok_loose_0000003"  # no tags
RULES = [{"token": ADS, "tags": {"team": "search"}, "since": "2026-11-05"}]


async def ledger(log: LogDB) -> None:
    """gpt-4o-mini: $0.15 per 1M input tokens, so a token costs $0.00000015 (0.15 micro-dollars)."""
    await log.add_tokens(
        [(SEARCH, "pg_live_sss", "search-bot"), (ADS, "pg_live_aaa", "ads-bot"), (LOOSE, "pg_live_lll", None)],
        ['{"team": "search", "env": "prod"}', '{"team": "ads"}', None],
    )
    await log.insert(
        [
            Row(at("2026-11-03T10:00:00Z"), token_id=SEARCH, prompt_tokens=1_000_011),  # $0.15000165 search
            Row(at("2026-11-03T11:00:00Z"), token_id=ADS, prompt_tokens=2_000_005),  # $0.30000075 ads
            Row(at("2026-11-04T09:00:00Z"), token_id=LOOSE, prompt_tokens=3_000_004),  # $0.4500006 untagged
            # a cache hit: $0 spent, 1,000,000 × 0.15 = $0.15 saved, for search; local 11-03 in New York
            Row(at("2026-11-04T02:00:00Z"), token_id=SEARCH, cache_hit=True, prompt_tokens_avoided=1_000_000),
            Row(at("2026-11-05T12:00:00Z"), token_id=ADS, prompt_tokens=1_000_000),  # $0.15 search (moved)
            Row(at("2026-10-20T00:00:00Z"), token_id=ADS, prompt_tokens=2_000_000),  # October: $0.30 ads
        ]
    )


# In micro-dollars: search 150,001.65 + 150,000 = 300,001.65; ads 300,000.75; untagged 450,000.6;
# the total 1,050,003 ($1.050003). Each rounded alone: 300,002 + 300,001 + 450,001 = 1,050,004 —
# a micro-dollar too many. The largest remainder method: 300,001 + 300,000 + 450,000 = 1,050,001,
# and the 2 missing go to the largest fractions (ads .75, search .65): search $0.300002, ads
# $0.300001, untagged $0.450000. Shares (per mille): untagged 428.5708, search 285.7150, ads 285.7142:
# each rounded alone 42.9 + 28.6 + 28.6 = 100.1; apportioned (2 tenths to search's .7150 and ads'
# .7142): 42.8 + 28.6 + 28.6 = 100.0.
TEAMS = [
    # tag, spend, share_pct, requests, cache_hits, saved_by_cache, previous_spend
    ("(untagged)", 0.45, 42.8, 1, 0, 0.0, 0.0),
    ("search", 0.300002, 28.6, 3, 1, 0.15, 0.0),
    ("ads", 0.300001, 28.6, 1, 0, 0.0, 0.3),
]


def micro(value: float | str) -> int:
    return round(float(value) * 1_000_000)


async def get(client: Any, path: str, **params: Any) -> Any:
    response = await client.get(path, params={**MONTH, **params})
    assert response.status_code == 200, response.text
    return response


def rows_of(response: Any) -> list[dict[str, str]]:
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


async def test_team_rows_add_up_to_the_total_where_rounding_each_would_not(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(clock=FakeClock(NOW), token_tags=RULES) as client:
        body = (await get(client, "/v1/spend", group_by="tag:team")).json()
        table = rows_of(await get(client, "/v1/spend", group_by="tag:team", format="csv"))
    fields = ("tag", "spend", "share_pct", "requests", "cache_hits", "saved_by_cache", "previous_spend")
    assert [tuple(item[f] for f in fields) for item in body["items"]] == TEAMS
    assert body["spend"] == 1.050003
    assert body["previous"]["spend"] == 0.3
    assert sum(micro(item["spend"]) for item in body["items"]) == micro(body["spend"])
    # the CSV: the same rows, then the total line
    assert [row["tag"] for row in table] == ["(untagged)", "search", "ads", "(total)"]
    assert [tuple(row[f] for f in fields) for row in table[:3]] == [tuple(map(cell, t)) for t in TEAMS]
    total = table[-1]
    assert (total["spend"], total["share_pct"], total["requests"], total["cache_hits"]) == ("1.050003", "100", "5", "1")
    assert (total["saved_by_cache"], total["previous_spend"], total["change_pct"]) == ("0.15", "0.3", "250")
    assert sum(micro(row["spend"]) for row in table[:-1]) == micro(total["spend"])
    assert round(sum(float(row["share_pct"]) for row in table[:-1]), 6) == 100.0


async def test_the_keys_past_limit_are_one_line_before_the_total(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(clock=FakeClock(NOW), token_tags=RULES) as client:
        body = (await get(client, "/v1/spend", group_by="tag:team", limit=1)).json()
        table = rows_of(await get(client, "/v1/spend", group_by="tag:team", limit=1, format="csv"))
    # search and ads as apportioned above: 0.300002 + 0.300001
    assert body["others"] == {"count": 2, "spend": 0.600003, "requests": 4, "saved_by_cache": 0.15}
    assert [(r["tag"], r["spend"], r["share_pct"], r["requests"]) for r in table] == [
        ("(untagged)", "0.45", "42.8", "1"),
        ("(others)", "0.600003", "57.2", "4"),
        ("(total)", "1.050003", "100", "5"),
    ]


async def test_focus_export_one_row_per_local_day_team_and_model(log: LogDB, client_for) -> None:
    await ledger(log)
    # November in New York (EST from 11-01 06:00Z): [11-01T04:00Z, 12-01T05:00Z); days start at 05:00Z
    params = {"window": "month", "to": "2026-12-01T05:00:00Z", "tz": "America/New_York"}
    async with client_for(clock=FakeClock(NOW), token_tags=RULES) as client:
        response = await client.get("/v1/spend", params={**params, "group_by": "tag:team", "format": "focus"})
        total = (await client.get("/v1/spend", params=params)).json()["spend"]
    assert response.status_code == 200, response.text
    assert 'filename="focus-team-20261101T040000Z-20261201T050000Z.csv"' in response.headers["content-disposition"]
    header = response.content.decode("utf-8-sig").split("\r\n")[0].split(",")
    assert header[:8] == [
        "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
        "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
    ]  # fmt: skip
    rows = rows_of(response)
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in rows} == {
        ("2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z")
    }
    # by day, then tag value: 11-03 ads $0.30000075 and search $0.15000165 (+ the 02:00Z cache hit:
    # 21:00 on 11-03 in New York); 11-04 untagged $0.4500006; 11-05 search $0.15 (ads' token, moved).
    # Micro-dollars 300,000.75 + 150,001.65 + 450,000.6 + 150,000 = 1,050,003: the 2 missing after
    # rounding down go to ads (.75) and search (.65) of 11-03.
    got = [
        (r["ChargePeriodStart"], r["ChargePeriodEnd"], r["Tags"], r["BilledCost"], r["x_Requests"], r["x_SavedByCache"])
        for r in rows
    ]
    assert got == [
        ("2026-11-03T05:00:00Z", "2026-11-04T05:00:00Z", '{"team": "ads"}', "0.300001", "1", "0"),
        ("2026-11-03T05:00:00Z", "2026-11-04T05:00:00Z", '{"team": "search"}', "0.150002", "2", "0.15"),
        ("2026-11-04T05:00:00Z", "2026-11-05T05:00:00Z", "{}", "0.45", "1", "0"),
        ("2026-11-05T05:00:00Z", "2026-11-06T05:00:00Z", '{"team": "search"}', "0.15", "1", "0"),
    ]
    assert sum(micro(r["BilledCost"]) for r in rows) == micro(total) == 1_050_003
    first = rows[0]
    assert all(r["EffectiveCost"] == r["ListCost"] == r["ContractedCost"] == r["BilledCost"] for r in rows)
    assert (first["BillingCurrency"], first["ProviderName"], first["ServiceName"], first["SkuId"]) == (
        "USD", "openai", "gpt-4o-mini", "openai/gpt-4o-mini",
    )  # fmt: skip
    assert (first["ChargeCategory"], first["ChargeFrequency"], first["ChargeClass"]) == ("Usage", "Usage-Based", "")
    assert (first["ServiceCategory"], first["ServiceSubcategory"]) == ("AI and Machine Learning", "Generative AI")
    assert (first["ConsumedQuantity"], first["ConsumedUnit"], first["x_PromptTokens"]) == (
        "2000005",
        "Tokens",
        "2000005",
    )
    assert all(isinstance(json.loads(r["Tags"]), dict) for r in rows)


async def test_focus_needs_a_tag_and_formats_are_checked(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(clock=FakeClock(NOW), token_tags=RULES) as client:
        untagged = await client.get("/v1/spend", params={"format": "focus"})
        unknown = await client.get("/v1/spend", params={"format": "xlsx"})
        elsewhere = await client.get("/v1/savings", params={"format": "focus"})
    body = assert_problem(untagged, 400, kind="bad-parameter")
    assert body["errors"] == [
        {"field": "group_by", "message": "format=focus takes group_by=tag:<key> (e.g. tag:team); got 'provider'"}
    ]
    body = assert_problem(unknown, 400, kind="bad-parameter")
    assert body["errors"] == [{"field": "format", "message": "expected json, csv or focus; got 'xlsx'"}]
    body = assert_problem(elsewhere, 400, kind="bad-parameter")
    assert body["errors"] == [{"field": "format", "message": "expected json or csv; got 'focus'"}]
