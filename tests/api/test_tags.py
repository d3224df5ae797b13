"""Token tags at query time (docs/tags.md): `group_by=tag:<key>` and `tag=key:value` filters on every
lens, against hand-computed dollars, on SQLite and Postgres — a token that changes team mid-window, an
untagged token, a malformed tags column, anonymous requests, a token only a rule names; the 400s."""

from __future__ import annotations

from typing import Any

from ..logdb import LogDB, Row, at
from ..problems import assert_problem

TO = "2026-11-20T12:00:00Z"  # window 30d: [2026-10-21T12:00, TO)
ALPHA = "tok_alpha_0000001"  # column: team search, env prod
BETA = "tok_beta_00000002"  # column: team ads; a rule moves it to search from 2026-11-15
GAMMA = "tok_gamma_0000003"  # column: not an object of strings (untagged); a name rule gives env ci
DELTA = "tok_delta_0000004"  # no api_tokens row; a rule by id gives team ads
RULES = [
    {"token": BETA, "tags": {"team": "search"}, "since": "2026-11-15"},
    {"token": DELTA, "tags": {"team": "ads"}},
    {"name": "gamma-*", "tags": {"env": "ci"}},
]


async def ledger(log: LogDB) -> None:
    """gpt-4o-mini: $0.15 per 1M input tokens, $0.60 per 1M output tokens."""
    await log.add_tokens(
        [(ALPHA, "pg_live_aaa", "alpha-bot"), (BETA, "pg_live_bbb", "beta-bot"), (GAMMA, "pg_live_ccc", "gamma-ci")],
        ['{"team": "search", "env": "prod"}', '{"team": "ads"}', '{"team": 5}'],
    )
    await log.insert(
        [
            Row(at("2026-11-10T10:00:00Z"), token_id=ALPHA, prompt_tokens=1_000_000),  # $0.15 search, prod
            Row(at("2026-11-10T11:00:00Z"), token_id=BETA, prompt_tokens=2_000_000),  # $0.30 ads (before since)
            Row(at("2026-11-16T09:00:00Z"), endpoint="/b", token_id=BETA, prompt_tokens=4_000_000),  # $0.60 search
            Row(at("2026-11-12T00:00:00Z"), token_id=GAMMA, prompt_tokens=8_000_000),  # $1.20 untagged team, env ci
            Row(at("2026-11-13T00:00:00Z"), token_id=DELTA, completion_tokens=1_000_000),  # $0.60 ads
            Row(at("2026-11-14T00:00:00Z"), prompt_tokens=100_000),  # $0.015 anonymous: untagged
        ]
    )


async def get(client: Any, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params={"to": TO, "window": "30d", **params})
    assert response.status_code == 200, response.text
    return response.json()


def spends(body: dict[str, Any]) -> dict[str, float]:
    return {item["tag"]: item["spend"] for item in body["items"]}


async def test_spend_by_team_splits_a_token_at_its_move(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        body = await get(client, "/v1/spend", group_by="tag:team")
        env = await get(client, "/v1/spend", group_by="tag:env")
    assert body["group_by"] == "tag:team"
    # search 0.15 + 0.60; ads 0.30 (beta before its move) + 0.60 (delta); untagged 1.20 + 0.015
    assert spends(body) == {"(untagged)": 1.215, "ads": 0.9, "search": 0.75}
    assert body["spend"] == 2.865  # the rows add up to the total
    assert spends(env) == {"(untagged)": 1.515, "ci": 1.2, "prod": 0.15}


async def test_tag_filters_on_rollups_and_sql(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        search = await get(client, "/v1/spend", group_by="provider", tag="team:search")
        # endpoint with a tag filter is read from SQL, once per span between tag changes
        by_endpoint = await get(client, "/v1/spend", group_by="endpoint", tag="team:search")
        untagged = await get(client, "/v1/spend", group_by="provider", tag="team:(untagged)")
        both = await get(client, "/v1/spend", group_by="provider", tag=["team:search", "env:prod"])
        either = await get(client, "/v1/spend", group_by="provider", tag=["team:search", "team:ads"])
        summary = await get(client, "/v1/summary", tag="team:ads")
    assert search["spend"] == 0.75
    assert {i["endpoint"]: i["spend"] for i in by_endpoint["items"]} == {"/b": 0.6, "/chat": 0.15}
    assert untagged["spend"] == 1.215
    assert both["spend"] == 0.15
    assert either["spend"] == 1.65
    assert summary["spend"] == 0.9


async def test_trend_and_requests_by_team(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        trend = await get(client, "/v1/trend", group_by="tag:team", interval="day")
        rows = await get(client, "/v1/requests", tag="team:search")
    series = {s["key"]: {p["date"]: p["spend"] for p in s["points"] if p["spend"]} for s in trend["series"]}
    assert series["search"] == {"2026-11-10": 0.15, "2026-11-16": 0.6}
    assert series["ads"] == {"2026-11-10": 0.3, "2026-11-13": 0.6}
    assert series["(untagged)"] == {"2026-11-12": 1.2, "2026-11-14": 0.015}
    assert [(r["created_at"], r["cost"]) for r in rows["items"]] == [
        ("2026-11-16T09:00:00Z", 0.6),
        ("2026-11-10T10:00:00Z", 0.15),
    ]


async def test_without_the_column_the_rules_alone(log: LogDB, client_for) -> None:
    await ledger(log)
    await log.execute("ALTER TABLE api_tokens DROP COLUMN tags")
    async with client_for(token_tags=RULES) as client:
        body = await get(client, "/v1/spend", group_by="tag:team")
        ready = (await client.get("/readyz")).json()
    # alpha and beta's column gone: alpha untagged, beta untagged until its move, search after
    assert spends(body) == {"(untagged)": 1.665, "ads": 0.6, "search": 0.6}
    assert ready["token_tags"] == {"column": False, "rules": 3, "keys": ["env", "team"]}


async def test_unknown_keys_and_bad_filters_are_400s(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        unknown = await client.get("/v1/spend", params={"group_by": "tag:owner"})
        filtered = await client.get("/v1/summary", params={"tag": "owner:me"})
        malformed = await client.get("/v1/summary", params={"tag": "team"})
        bare = await client.get("/v1/spend", params={"group_by": "tag"})
    assert bad(unknown, "group_by") == "unknown tag key 'owner'; known keys: env, team"
    assert bad(filtered, "tag") == "unknown tag key 'owner'; known keys: env, team"
    assert bad(malformed, "tag") == "expected key:value (e.g. team:search); got 'team'"
    assert bad(bare, "group_by") == "expected one of provider, endpoint, token, model, tag:<key>; got 'tag'"


def bad(response: Any, field: str) -> str:
    """The message of a 400 problem document naming `field` alone."""
    body = assert_problem(response, 400, kind="bad-parameter")
    assert [e["field"] for e in body["errors"]] == [field]
    return str(body["errors"][0]["message"])


async def test_tags_lists_keys_values_and_spend(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        body = await get(client, "/v1/tags")
    assert body["spend"] == 2.865
    env, team = ({(v["value"], v["spend"], v["share_pct"], v["requests"], v["tokens"]) for v in k["values"]}
                 for k in body["keys"])  # fmt: skip
    assert [k["key"] for k in body["keys"]] == ["env", "team"]
    # today (after beta's move): search is alpha and beta, ads is delta
    assert team == {("(untagged)", 1.215, 42.4, 2, 0), ("ads", 0.9, 31.4, 2, 1), ("search", 0.75, 26.2, 2, 2)}
    assert env == {("(untagged)", 1.515, 52.9, 4, 0), ("ci", 1.2, 41.9, 1, 1), ("prod", 0.15, 5.2, 1, 1)}


async def test_summary_top_tags(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        asked = await get(client, "/v1/summary", top_tags="team")
        unasked = await get(client, "/v1/summary")
        unknown = await client.get("/v1/summary", params={"top_tags": "owner"})
    async with client_for(token_tags=RULES, summary_top_tags="env") as client:
        default = await get(client, "/v1/summary")
    top = asked["top_tags"]
    # the 7 days to TO: beta (search since 11-15) $0.60, anonymous $0.015; the 7 before: search $0.15
    assert top["key"] == "team" and top["range"] == {"from": "2026-11-13T12:00:00Z", "to": TO}
    assert top["items"][0] == {"tag": "search", "spend": 0.6, "change_pct": 300.0}
    assert [(i["tag"], i["spend"]) for i in top["items"][1:]] == [("(untagged)", 0.015)]
    assert unasked["top_tags"] is None
    assert default["top_tags"]["key"] == "env"
    assert bad(unknown, "top_tags") == "unknown tag key 'owner'; known keys: env, team"


async def test_savings_by_team(log: LogDB, client_for) -> None:
    await ledger(log)
    await log.insert([Row(at("2026-11-17T00:00:00Z"), token_id=BETA, cache_hit=True, prompt_tokens_avoided=2_000_000)])
    async with client_for(token_tags=RULES) as client:
        body = await get(client, "/v1/savings", group_by="tag:team")
    # beta's cache hit after its move: search saved 2M × $0.15/1M = $0.30
    assert {i["tag"]: i["saved_by_cache"] for i in body["items"]} == {"search": 0.3, "ads": 0.0, "(untagged)": 0.0}


async def test_whatif_by_team(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        body = await get(client, "/v1/whatif", group_by="tag:team", discount="openai:50")
    # every row is openai: half of each team's spend
    assert {i["tag"]: (i["spend"], i["whatif"]) for i in body["items"]} == {
        "(untagged)": (1.215, 0.6075),
        "ads": (0.9, 0.45),
        "search": (0.75, 0.375),
    }
