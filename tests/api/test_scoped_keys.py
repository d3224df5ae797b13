"""Scoped API keys (`scoped_keys:`, docs/security.md#scoped-keys) on every route of the app, on SQLite
and Postgres: a scoped key's answer is the unscoped key's answer with the scope's filter, against the
hand-computed dollars of test_tags' ledger; a filter outside the scope is a 403 naming the parameter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cost_api.config import ConfigError, load_settings
from cost_api.web.app import create_app
from cost_api.windows import iso

from ..clock import FakeClock
from ..logdb import LogDB
from ..problems import assert_problem
from .test_anomalies import HAND, serve, spiky_log
from .test_anomalies import NOW as ANOMALY_NOW
from .test_tags import ALPHA, BETA, RULES, TO, ledger

NOW = "2026-11-20T12:00:00Z"
ALL, TEAM, ROUTE, TOKEN = "key-all", "key-team-search", "key-route-b", "key-token-alpha"
SCOPED = [
    {"key": TEAM, "name": "search team", "tags": ["team:search"]},
    {"key": ROUTE, "endpoints": ["/b"]},
    {"key": TOKEN, "tokens": [ALPHA]},
]
BUDGETS = [
    {"endpoint": "/b", "limit_usd": 5, "period": "month"},
    {"endpoint": "/chat", "limit_usd": 5, "period": "month"},
]
SETTINGS: dict[str, Any] = {"api_keys": [ALL], "scoped_keys": SCOPED, "token_tags": RULES, "budgets": BUDGETS}
# what each scoped key's filter is for the unscoped key, and a filter value outside its scope
AS_FILTER = {
    TEAM: ("tag", "team:search", "team:ads"),
    ROUTE: ("endpoint", "/b", "/chat"),
    TOKEN: ("token", ALPHA, BETA),
}
WINDOW = {"to": TO, "window": "30d"}
# every /v1 route taking the shared filters (`common`), with the parameters each is asked with
COMMON = {
    "/v1/summary": {},
    "/v1/spend": {"group_by": "model"},
    "/v1/savings": {"group_by": "endpoint"},
    "/v1/live": {},
    "/v1/tags": {},
    "/v1/requests": {},
    "/v1/trend": {"group_by": "endpoint"},
    "/v1/forecast": {"group_by": "endpoint"},
    "/v1/whatif": {"discount": "openai:50"},
    "/v1/pricing/unpriced": {},
}
NO_SPEND = {  # no figure of the log in their answers: the same for every key
    "/healthz", "/readyz", "/", "/static/{file_path:path}", "/v1/pricing", "/v1/pricing/resolve",
    "/grafana", "/grafana/metrics", "/grafana/tag-keys",
}  # fmt: skip
REFUSED = {"/metrics", "/v1/alerts"}  # the whole service's: a scoped key gets 403
OWN_TESTS = {  # narrowed by their own rules, each in a test below
    "/v1/budgets", "/v1/budgets/check", "/v1/anomalies", "/grafana/query", "/grafana/annotations",
    "/grafana/search", "/grafana/variable", "/grafana/metric-payload-options", "/grafana/tag-values",
}  # fmt: skip


async def call(c: Any, key: str, path: str, **params: Any) -> Any:
    return await c.get(path, params=params, headers={"X-API-Key": key})


def forbidden(response: Any, field: str) -> str:
    body = assert_problem(response, 403, kind="forbidden-scope")
    assert [e["field"] for e in body["errors"]] == [field]
    return str(body["detail"])


async def test_every_route_is_classified(log: LogDB) -> None:
    """A route added later fails here until it says how a scoped key sees it."""
    app = create_app(load_settings(environ={}, overrides={"database_url": log.url, **SETTINGS}))
    paths = {route.path for route in app.routes if not route.path.startswith("/schema")}
    assert paths == set(COMMON) | NO_SPEND | REFUSED | OWN_TESTS


async def test_common_routes_equal_the_scope_as_a_filter(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(FakeClock(NOW), **SETTINGS) as c:
        for key, (name, inside, outside) in AS_FILTER.items():
            for path, params in COMMON.items():
                scoped = await call(c, key, path, **WINDOW, **params)
                filtered = await call(c, ALL, path, **WINDOW, **params, **{name: inside})
                assert scoped.status_code == 200, (key, path, scoped.text)
                assert scoped.json() == filtered.json(), (key, path)
                same = await call(c, key, path, **WINDOW, **params, **{name: inside})
                assert same.json() == filtered.json(), (key, path)
                refused = await call(c, key, path, **WINDOW, **params, **{name: outside})
                assert forbidden(refused, name) == f"{name}={outside} is outside this key's scope"
            for path in ("/v1/spend", "/v1/savings", "/v1/requests", "/v1/trend"):  # the CSVs
                scoped = await call(c, key, path, **WINDOW, format="csv")
                filtered = await call(c, ALL, path, **WINDOW, format="csv", **{name: inside})
                assert scoped.headers["content-type"].startswith("text/csv"), (key, path)
                assert scoped.text == filtered.text, (key, path)
        # hand-computed: search is alpha ($0.15) and beta after its move ($0.60); /b is beta's $0.60
        team = (await call(c, TEAM, "/v1/spend", **WINDOW, group_by="tag:team")).json()
        route = (await call(c, ROUTE, "/v1/spend", **WINDOW)).json()
        token = (await call(c, TOKEN, "/v1/summary", **WINDOW)).json()
        narrower = (await call(c, TEAM, "/v1/spend", **WINDOW, endpoint="/b")).json()
        env = (await call(c, TEAM, "/v1/spend", **WINDOW, tag="env:prod")).json()
        whole = (await call(c, ALL, "/v1/spend", **WINDOW)).json()
    assert {i["tag"]: i["spend"] for i in team["items"]} == {"search": 0.75}
    assert (team["spend"], route["spend"], token["spend"], whole["spend"]) == (0.75, 0.6, 0.15, 2.865)
    assert narrower["spend"] == 0.6  # within the scope, a request narrows further
    assert env["spend"] == 0.15  # another tag key: AND with the scope's


async def test_a_token_by_its_prefix_and_a_shared_prefix(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(FakeClock(NOW), **SETTINGS) as c:
        by_prefix = await call(c, TOKEN, "/v1/spend", **WINDOW, token="pg_live_aaa…")
        anonymous = await call(c, TOKEN, "/v1/spend", **WINDOW, token="anonymous")
    assert by_prefix.json()["spend"] == 0.15
    assert forbidden(anonymous, "token") == "token=anonymous is outside this key's scope"


async def test_refused_and_open_routes(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(FakeClock(NOW), **SETTINGS) as c:
        for path in sorted(REFUSED):
            assert forbidden(await call(c, TEAM, path), "key").startswith(f"{path} covers every team's spend")
            assert (await call(c, ALL, path)).status_code == 200
        for path in ("/v1/pricing", "/healthz", "/schema/openapi.json", "/grafana"):
            assert (await call(c, TEAM, path)).json() == (await call(c, ALL, path)).json()
        ready = await call(c, TEAM, "/readyz")  # its rollups' warm-up moves on between two calls
        assert ready.json().keys() == (await call(c, ALL, "/readyz")).json().keys() and ready.status_code == 200
        for path in ("/grafana/metrics", "/grafana/tag-keys"):
            scoped = await c.post(path, json={}, headers={"X-API-Key": TEAM})
            assert scoped.json() == (await c.post(path, json={}, headers={"X-API-Key": ALL})).json()
        for path in ("/", "/static/app.js"):  # the page and its files: no data; it calls the API with the key
            assert (await call(c, TEAM, path)).content == (await call(c, ALL, path)).content
        resolve = {"provider": "openai", "model": "gpt-4o-mini"}
        assert (await call(c, TEAM, "/v1/pricing/resolve", **resolve)).json() == (
            await call(c, ALL, "/v1/pricing/resolve", **resolve)
        ).json()
        assert (await call(c, "key-unknown", "/v1/spend")).status_code == 401
        schema = (await call(c, ALL, "/schema/openapi.json")).json()
    assert "403" in schema["paths"]["/v1/spend"]["get"]["responses"]
    assert "403" not in schema["paths"]["/healthz"]["get"]["responses"]


async def test_budgets_within_the_scope(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(FakeClock(NOW), **SETTINGS) as c:
        every = (await call(c, ALL, "/v1/budgets")).json()
        route = (await call(c, ROUTE, "/v1/budgets")).json()
        team = (await call(c, TEAM, "/v1/budgets")).json()
        allowed = await call(c, ROUTE, "/v1/budgets/check", endpoint="/b")
        other = await call(c, ROUTE, "/v1/budgets/check", endpoint="/chat")
        team_check = await call(c, TEAM, "/v1/budgets/check", endpoint="/b")
    assert [i["endpoint"] for i in every["items"]] == ["/b", "/chat"]
    assert route["items"] == [every["items"][0]]  # /b's figure: every token's spend there, all in scope
    assert team["items"] == []  # an endpoint's budget counts every team's spend on it
    assert allowed.status_code == 200
    assert forbidden(other, "endpoint") == "the budgets of endpoint=/chat are outside this key's scope"
    assert forbidden(team_check, "endpoint") == "the budgets of endpoint=/b are outside this key's scope"


def grafana_body(*filters: dict[str, str], target: str = "spend") -> dict[str, Any]:
    return {
        "range": {"from": "2026-10-21T12:00:00Z", "to": TO},
        "intervalMs": 86_400_000,
        "maxDataPoints": 1000,
        "targets": [{"refId": "A", "target": target, "payload": {}}],
        "filters": list(filters),
    }


async def grafana_total(c: Any, key: str, *filters: dict[str, str]) -> Any:
    response = await c.post("/grafana/query", json=grafana_body(*filters), headers={"X-API-Key": key})
    if response.status_code != 200:
        return response
    return round(sum(v for v, _ in response.json()[0]["datapoints"]), 6)


def eq(key: str, value: str, operator: str = "=") -> dict[str, str]:
    return {"key": key, "operator": operator, "value": value}


async def test_grafana_within_the_scope(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(FakeClock(NOW), **SETTINGS) as c:
        assert await grafana_total(c, ALL) == 2.865
        assert await grafana_total(c, TEAM) == 0.75
        assert await grafana_total(c, ROUTE) == 0.6 == await grafana_total(c, ALL, eq("endpoint", "/b"))
        assert await grafana_total(c, TOKEN) == 0.15 == await grafana_total(c, ALL, eq("token", "pg_live_aaa…"))
        assert await grafana_total(c, TOKEN, eq("token", "pg_live_aaa…")) == 0.15
        # a negation is resolved among the scope's values only
        assert await grafana_total(c, ROUTE, eq("endpoint", "/chat", "!=")) == 0.6
        assert await grafana_total(c, TEAM, eq("endpoint", "/b")) == 0.6
        outside = await grafana_total(c, ROUTE, eq("endpoint", "/chat"))
        assert forbidden(outside, "endpoint") == "endpoint=/chat is outside this key's scope"
        options = {"range": {"from": "2026-10-21T12:00:00Z", "to": TO}}
        values = await c.post("/grafana/tag-values", json={**options, "key": "endpoint"}, headers={"X-API-Key": ROUTE})
        every = await c.post("/grafana/tag-values", json={**options, "key": "endpoint"}, headers={"X-API-Key": ALL})
        tokens = await c.post(
            "/grafana/variable", json={**options, "payload": {"target": "tokens"}}, headers={"X-API-Key": TOKEN}
        )
        searched = await c.post("/grafana/search", json={**options, "target": "endpoints"}, headers={"X-API-Key": TEAM})
        picked = await c.post(
            "/grafana/metric-payload-options", json={**options, "name": "token"}, headers={"X-API-Key": TOKEN}
        )
    assert values.json() == [{"text": "/b"}]
    assert {v["text"] for v in every.json()} == {"/b", "/chat"}
    assert [v["__value"] for v in tokens.json()] == ["pg_live_aaa…"]
    assert {v["text"] for v in searched.json()} == {"/b", "/chat"}  # search's tokens: alpha on /chat, beta on /b
    assert [v["value"] for v in picked.json()] == ["pg_live_aaa…"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"tags": ["team:search"]}, "scoped_keys[0]: give exactly one of key or key_hash"),
        ({"key": "k", "key_hash": "a" * 64, "tags": ["team:x"]}, "scoped_keys[0]: give exactly one of key or key_hash"),
        ({"key": "k"}, "scoped_keys[0]: give a scope: tags, endpoints or tokens"),
        ({"key": "k", "tags": ["team"]}, "scoped_keys[0].tags[0]: expected key:value (e.g. team:search), got 'team'"),
        ({"key": "k", "endpoints": [" "]}, "scoped_keys[0].endpoints[0]: blank"),
        ({"key_hash": "XYZ", "tokens": ["t"]}, "scoped_keys[0].key_hash: expected 64 lowercase hex digits"),
        ({"key": ALL, "tokens": ["t"]}, "scoped_keys[0]: this key is already configured"),
    ],
)
def test_bad_entries_stop_the_start_naming_them(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides={"api_keys": [ALL], "scoped_keys": [entry]})
    assert str(caught.value).startswith(message)


async def test_anomalies_whose_keys_are_in_the_scope(log: LogDB) -> None:
    await spiky_log(log)
    await log.execute("UPDATE request_log SET token_id = 'tok_ended_team_a' WHERE endpoint = '/ended'")
    scoped = [
        {"key": ROUTE, "endpoints": ["/ended", "/steady"]},
        {"key": TEAM, "tags": ["team:a"]},
        {"key": TOKEN, "tags": ["team:b"]},
    ]
    rules = [{"token": "tok_ended_team_a", "tags": {"team": "a"}}]
    params = {"to": iso(ANOMALY_NOW), "window": "1d"}
    grafana = {"range": {"from": iso(ANOMALY_NOW - timedelta(days=1)), "to": iso(ANOMALY_NOW)}}
    settings: dict[str, Any] = {"token_tags": rules, "api_keys": [ALL], "scoped_keys": scoped}
    both = {**HAND, "dimensions": ["endpoint", "tag:team"]}
    async with serve(log.url, alerts=both, **settings) as c:
        every = await call(c, ALL, "/v1/anomalies", **params, view="episodes")
        route = await call(c, ROUTE, "/v1/anomalies", **params, view="episodes")
        mixed = await call(c, TEAM, "/v1/anomalies", **params)
    async with serve(log.url, alerts={**HAND, "dimensions": ["tag:team"]}, **settings) as c:
        team = await call(c, TEAM, "/v1/anomalies", **params)
        other = await call(c, TOKEN, "/v1/anomalies", **params)
        annotations = await c.post("/grafana/annotations", json=grafana, headers={"X-API-Key": TEAM})
    keys = {(e["dimension"], e["key"]) for e in every.json()["items"]}
    assert {("endpoint", "/ended"), ("endpoint", "/open"), ("tag:team", "a")} <= keys
    assert {(e["dimension"], e["key"]) for e in route.json()["items"]} == {("endpoint", "/ended")}
    # the incident that joins /ended's burn with team a's holds an endpoint's figure: not the team's to see
    assert mixed.json()["items"] == []
    # team a's burn alone: /ended's token, $9 against $3 for two hours: $12 over the usual
    assert [(i["dimension"], i["key"], i["impact"]) for i in team.json()["items"]] == [("tag:team", "a", 12.0)]
    assert other.json()["items"] == []
    assert [a["title"] for a in annotations.json()] == ["burn_rate: tag:team a"]


async def test_team_and_token_budgets_within_the_scope(log: LogDB, client_for) -> None:
    await ledger(log)
    budgets = [
        *BUDGETS,
        {"tag": "team:search", "limit_usd": 5, "period": "month"},
        {"tag": "team:ads", "limit_usd": 5, "period": "month"},
        {"token": ALPHA, "limit_usd": 5, "period": "month"},
    ]
    async with client_for(FakeClock(NOW), **{**SETTINGS, "budgets": budgets}) as c:
        team = (await call(c, TEAM, "/v1/budgets")).json()
        token = (await call(c, TOKEN, "/v1/budgets")).json()
        route = (await call(c, ROUTE, "/v1/budgets")).json()
    # each key sees the budgets of what it may see whole: its team's, its token's, its endpoint's
    # November: alpha $0.15 and beta $0.60 after its move to search on the 15th
    assert [(i["tag"], i["spent"]) for i in team["items"]] == [("team:search", 0.75)]
    assert [(i["token"], i["spent"]) for i in token["items"]] == [("pg_live_aaa…", 0.15)]
    assert [i["endpoint"] for i in route["items"]] == ["/b"]
