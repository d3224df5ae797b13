"""Budgets per token and per tag value (a team) beside per-endpoint ones, against hand-computed dollars,
on SQLite and Postgres: a team budget exceeded by a token that moved into the team mid-period, a token
budget by prefix and by id, a check naming every exceeded budget that applies, untagged tokens and
anonymous calls under no team budget, the alert rules, the 400s.

gpt-4o-mini: $0.15 per 1M prompt tokens, $0.60 per 1M completion tokens. tz UTC; now is
2026-11-20T12:00Z (a Friday): the month from 2026-11-01T00:00Z, the day from 2026-11-20T00:00Z.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from cost_api.watch.anomalies import budget_episodes
from cost_api.windows import Range

from ..clock import FakeClock
from ..logdb import LogDB, Row, at
from ..problems import assert_problem
from .test_budgets import served, tracker_for

NOW = "2026-11-20T12:00:00Z"
ALPHA = "tok_alpha_0000001"  # column: team search
BETA = "tok_beta_00000002"  # column: team ads; a rule moves it to search from 2026-11-15
GAMMA = "tok_gamma_0000003"  # untagged
RULES = [{"token": BETA, "tags": {"team": "search"}, "since": "2026-11-15"}]
BUDGETS = [
    {"tag": "team:search", "limit_usd": 1.5, "period": "month"},
    {"tag": "team:ads", "limit_usd": 1, "period": "month"},
    {"token": "pg_live_bbb…", "limit_usd": 0.5, "period": "day"},  # by displayed prefix
    {"token": GAMMA, "limit_usd": 2, "period": "month"},  # by id
    {"endpoint": "/agent", "limit_usd": 0.5, "period": "day"},
]


async def ledger(log: LogDB) -> None:
    await log.add_tokens(
        [(ALPHA, "pg_live_aaa", "alpha-bot"), (BETA, "pg_live_bbb", "beta-bot"), (GAMMA, "pg_live_ccc", "gamma-ci")],
        ['{"team": "search"}', '{"team": "ads"}', None],
    )
    await log.insert(
        [
            Row(at("2026-10-31T23:00:00Z"), token_id=ALPHA, prompt_tokens=10_000_000),  # October: not counted
            Row(at("2026-11-10T10:00:00Z"), token_id=ALPHA, prompt_tokens=4_000_000),  # $0.60 search
            Row(at("2026-11-10T11:00:00Z"), token_id=BETA, prompt_tokens=2_000_000),  # $0.30 ads (before its move)
            Row(at("2026-11-16T09:00:00Z"), "openai", endpoint="/agent", token_id=BETA, prompt_tokens=4_000_000),
            # ↑ $0.60 search (after its move), not today
            Row(at("2026-11-20T10:00:00Z"), endpoint="/agent", token_id=BETA, completion_tokens=1_000_000),
            # ↑ $0.60 search, today: BETA's day and /agent's day
            Row(at("2026-11-12T00:00:00Z"), token_id=GAMMA, prompt_tokens=8_000_000),  # $1.20 untagged
            Row(at("2026-11-14T00:00:00Z"), prompt_tokens=1_000_000),  # $0.15 anonymous
        ]
    )


def subject(item: dict[str, Any]) -> str:
    return item["endpoint"] or item["token"] or item["tag"]


async def test_overview_per_team_token_and_endpoint(log: LogDB) -> None:
    await ledger(log)
    async with served(log, FakeClock(NOW), token_tags=RULES, budgets=BUDGETS) as (client, _):
        body = (await client.get("/v1/budgets")).json()
    items = body["items"]
    assert [(i["endpoint"], i["token"], i["tag"]) for i in items] == [
        (None, None, "team:search"),
        (None, None, "team:ads"),
        (None, "pg_live_bbb…", None),
        (None, "pg_live_ccc…", None),  # configured by id, shown by its prefix
        ("/agent", None, None),
    ]
    assert [(i["period"], i["spent"], i["status"], i["seen"]) for i in items] == [
        # search: ALPHA 0.60 + BETA after its move 0.60 + 0.60 = $1.80 of $1.50 (without the move: $0.60)
        ("month", 1.8, "exceeded", True),
        # ads: BETA before its move only, $0.30 (with its later spend it would be $1.50, over $1)
        ("month", 0.3, "ok", True),
        ("day", 0.6, "exceeded", True),  # BETA today
        ("month", 1.2, "ok", True),  # GAMMA, untagged: in its token budget, in no team's
        ("day", 0.6, "exceeded", True),
    ]
    assert [(i["remaining"], i["used_pct"]) for i in items] == [
        (0.0, 120.0),
        (0.7, 30.0),
        (0.0, 120.0),
        (0.8, 60.0),
        (0.0, 120.0),
    ]


async def test_check_names_every_exceeded_budget_that_applies(log: LogDB) -> None:
    await ledger(log)
    async with served(log, FakeClock(NOW), token_tags=RULES, budgets=BUDGETS) as (client, _):

        async def check(**params: str) -> Any:
            return await client.get("/v1/budgets/check", params=params)

        beta = await check(endpoint="/agent", token=BETA)
        alpha = await check(endpoint="/chat", token=ALPHA)
        alpha_by_prefix = await check(endpoint="/chat", token="pg_live_aaa…")
        gamma = await check(endpoint="/chat", token=GAMMA)
        anonymous = await check(endpoint="/chat")
        anonymous_agent = await check(endpoint="/agent", token="anonymous")
        stranger = await check(endpoint="/chat", token="tok_nobody_000009")

    problem = assert_problem(beta, 422, kind="budget-exceeded", extension=None)
    assert (problem["endpoint"], problem["token"], problem["tags"]) == ("/agent", "pg_live_bbb…", {"team": "search"})
    assert [subject(i) for i in problem["exceeded"]] == ["team:search", "pg_live_bbb…", "/agent"]
    assert [(subject(i), i["spent"]) for i in problem["budgets"]] == [
        ("team:search", 1.8),
        ("pg_live_bbb…", 0.6),
        ("/agent", 0.6),
    ]  # not team:ads: BETA is in search now
    # the one that resets last decides when calls resume: the month
    assert (problem["period"], problem["limit_usd"], problem["spent"]) == ("month", 1.5, 1.8)
    assert problem["resets_at"] == "2026-12-01T00:00:00Z"
    assert problem["detail"] == (
        "tag team:search has spent $1.8 of its $1.5 month budget; token pg_live_bbb… has spent $0.6 of its "
        "$0.5 day budget; /agent has spent $0.6 of its $0.5 day budget; calls resume at 2026-12-01T00:00:00Z"
    )

    for answer in (alpha, alpha_by_prefix):
        problem = assert_problem(answer, 422, kind="budget-exceeded", extension=None)
        assert (problem["token"], problem["tags"]) == ("pg_live_aaa…", {"team": "search"})
        assert [subject(i) for i in problem["budgets"]] == ["team:search"]
        assert problem["detail"] == (
            "tag team:search has spent $1.8 of its $1.5 month budget; it resets at 2026-12-01T00:00:00Z"
        )

    # untagged: its own budget only, no team's
    assert gamma.status_code == 200, gamma.text
    assert [(subject(b), b["spent"], b["status"]) for b in gamma.json()["budgets"]] == [("pg_live_ccc…", 1.2, "ok")]
    assert anonymous.json()["budgets"] == [] and anonymous.status_code == 200
    problem = assert_problem(anonymous_agent, 422, kind="budget-exceeded", extension=None)
    assert (problem["token"], problem["tags"], [subject(i) for i in problem["budgets"]]) == (None, {}, ["/agent"])
    assert stranger.status_code == 200 and stranger.json()["budgets"] == []


async def test_a_move_at_the_since_instant_changes_the_team_a_check_sees(log: LogDB) -> None:
    """Before BETA's move its calls fall under ads' budget; from the rule's `since` on, under search's —
    the check reads the tags the token carries at the time of the request, from memory."""
    await ledger(log)
    clock = FakeClock("2026-11-14T23:00:00Z")
    budgets = BUDGETS[:2]
    async with served(log, clock, token_tags=RULES, budgets=budgets, budget_refresh="1h") as (client, _):
        before = (await client.get("/v1/budgets/check", params={"endpoint": "/chat", "token": BETA})).json()
        clock.set("2026-11-15T00:00:00Z", wake=False)  # no refresh: the tags of the same roster
        after = await client.get("/v1/budgets/check", params={"endpoint": "/chat", "token": BETA})
    # until 2026-11-15 only 0.60 (ALPHA) and 0.30 (BETA, ads) were spent
    assert [(subject(b), b["spent"], b["status"]) for b in before["budgets"]] == [("team:ads", 0.3, "ok")]
    assert after.status_code == 200, after.text
    assert [(subject(b), b["spent"]) for b in after.json()["budgets"]] == [("team:search", 0.6)]


async def test_budgets_nobody_matches_say_so_once(log: LogDB, caplog: pytest.LogCaptureFixture) -> None:
    await ledger(log)
    budgets = [
        {"tag": "team:serch", "limit_usd": 1, "period": "month"},  # a typo: no token carries it
        {"tag": "owner:me", "limit_usd": 1, "period": "month"},  # a key no token carries
        {"token": "pg_live_zzz", "limit_usd": 1, "period": "month"},
        {"tag": "team:ads", "limit_usd": 1, "period": "month"},
    ]
    caplog.set_level(logging.WARNING, logger="cost_api.watch.budgets")
    async with tracker_for(log, FakeClock(NOW), token_tags=RULES, budgets=budgets) as tracker:
        for _ in range(2):
            await tracker.refresh()
        items = tracker.overview()["items"]
    assert [(subject(i), i["seen"], i["spent"], i["status"]) for i in items] == [
        ("team:serch", False, 0.0, "ok"),
        ("owner:me", False, 0.0, "ok"),
        ("pg_li…", False, 0.0, "ok"),  # an id or a prefix? unknown: shown as an unknown id is, by its start
        ("team:ads", True, 0.3, "ok"),
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "cost_api.watch.budgets"] == [
        "budget for tag team:serch: no token carries that tag (api_tokens.tags, token_tags); it caps nothing "
        "until one does",
        "budget for tag owner:me: no token carries that tag (api_tokens.tags, token_tags); it caps nothing "
        "until one does",
        "budget for token pg_live_zzz: api_tokens lists no token with that id or prefix, and no row of the log "
        "has it; it caps nothing until one does",
    ]


async def test_team_and_token_budgets_project_and_alert(log: LogDB) -> None:
    """ALPHA (team search) spends $0.15 every hour for four weeks before now: the profile of the team and
    of the token is $0.15 an hour (as tests/api/test_budget_forecast.py's endpoint)."""
    now = at(NOW)
    start = at("2026-10-23T12:00:00Z")
    await log.add_tokens([(ALPHA, "pg_live_aaa", "alpha-bot")], ['{"team": "search"}'])
    await log.insert([Row(start + timedelta(hours=h), token_id=ALPHA, prompt_tokens=1_000_000) for h in range(672)])
    budgets = [
        {"tag": "team:search", "limit_usd": 100, "period": "month"},
        {"token": ALPHA, "limit_usd": 2, "period": "day", "warn_at_pct": 50},
    ]
    async with served(log, FakeClock(now), budgets=budgets) as (client, tracker):
        team, token = (await client.get("/v1/budgets")).json()["items"]
        episodes = budget_episodes(tracker, Range(now - timedelta(hours=3), now))
    # the month: 468 hours spent ($70.20), 252 ahead ($37.80); the $29.80 left lasts 198⅔ hours
    assert (team["spent"], team["projected"], team["projected_exceed_at"]) == (70.2, 108.0, "2026-11-28T18:40:00Z")
    # the day: 12 hours ($1.80) of $2, warning from $1; 1⅓ hours more reach $2
    assert (token["spent"], token["status"], token["projected"]) == (1.8, "warning", 3.6)
    assert token["projected_exceed_at"] == "2026-11-20T13:20:00Z"
    assert sorted((e.rule, e.dimension, e.key) for e in episodes) == [
        ("budget_forecast", "tag:team", "search"),
        ("budget_forecast", "token", "pg_live_aaa…"),
        ("budget_warning", "token", "pg_live_aaa…"),
    ]


async def test_a_blank_token_is_a_400(log: LogDB) -> None:
    async with served(log, FakeClock(NOW), budgets=BUDGETS) as (client, _):
        blank = await client.get("/v1/budgets/check", params={"endpoint": "/chat", "token": " "})
    assert assert_problem(blank, 400, kind="bad-parameter")["errors"][0]["field"] == "token"
