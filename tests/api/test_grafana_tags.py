"""Grafana and token tags (docs/grafana.md, docs/tags.md): `tag:<key>` ad-hoc filters and tag values,
a `tag_keys` / `tag:<key>` variable, series per team — against the hand-computed ledger of test_tags
(a token moving team on 2026-11-15, an untagged token, anonymous rows), on SQLite and Postgres."""

from __future__ import annotations

from typing import Any

from ..logdb import LogDB
from .test_grafana import body, query
from .test_tags import RULES, ledger

RANGE = {"from": "2026-11-10T00:00:00.000Z", "to": "2026-11-20T00:00:00.000Z"}


def totals(answer: list[dict[str, Any]]) -> dict[str, float]:
    """Each series' spend over the range: its datapoints summed (to the micro-dollar)."""
    return {s["target"]: round(sum(v for v, _ in s["datapoints"]), 6) for s in answer}


async def test_series_per_team_and_tag_filters(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        by_team = await query(client, body({"target": "spend", "payload": {"group_by": "tag:team"}}, range=RANGE))

        async def total(*adhoc: dict[str, str]) -> dict[str, float]:
            return totals(
                await query(client, body({"target": "spend", "payload": {}}, range=RANGE, filters=list(adhoc)))
            )

        search = await total({"key": "tag:team", "operator": "=", "value": "search"})
        pattern = await total({"key": "tag:team", "operator": "=~", "value": "s.*"})
        not_ads = await total({"key": "tag:team", "operator": "!=", "value": "ads"})
        prod_search = await total(
            {"key": "tag:team", "operator": "=", "value": "search"},
            {"key": "tag:env", "operator": "=", "value": "prod"},
        )
        payload = totals(await query(client, body({"target": "spend", "payload": {"tag": "team:search"}}, range=RANGE)))
        either = totals(
            await query(client, body({"target": "spend", "payload": {"tag": "(team:search|team:ads)"}}, range=RANGE))
        )
        all_teams = totals(await query(client, body({"target": "spend", "payload": {"tag": ".*"}}, range=RANGE)))
        malformed = await client.post("/grafana/query", json=body({"target": "spend", "payload": {"tag": "search"}}))
        bad = await client.post(
            "/grafana/query", json=body({"target": "spend"}, filters=[{"key": "tag:a b", "value": "x"}])
        )
    # search: alpha $0.15 and beta's $0.60 after its move; ads: beta's $0.30 before it and delta's $0.60
    assert totals(by_team) == {"(untagged)": 1.215, "ads": 0.9, "search": 0.75}
    assert search == {"spend": 0.75}
    assert pattern == {"spend": 0.75}  # among the values logged in the range, only search matches
    assert not_ads == {"spend": 1.965}  # search and (untagged)
    assert prod_search == {"spend": 0.15}
    assert payload == {"spend": 0.75}  # the dashboard's $team variable, as the `tag` payload field
    assert either == {"spend": 1.65}
    assert all_teams == {"spend": 2.865}
    assert malformed.status_code == 400 and malformed.json()["errors"][0]["field"] == "targets[0].payload.tag"
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "filters[0].key"


async def test_tag_keys_values_and_variables(log: LogDB, client_for) -> None:
    await ledger(log)
    async with client_for(token_tags=RULES) as client:
        keys = (await client.post("/grafana/tag-keys", json={})).json()
        values = (await client.post("/grafana/tag-values", json={"key": "tag:team", "range": RANGE})).json()
        key_variable = (await client.post("/grafana/variable", json={"payload": {"target": "tag_keys"}})).json()
        team_variable = (
            await client.post("/grafana/variable", json={"payload": {"target": "tag:team"}, "range": RANGE})
        ).json()
    assert [k["text"] for k in keys] == ["provider", "model", "endpoint", "token", "tag:env", "tag:team"]
    assert values == [{"text": "(untagged)"}, {"text": "ads"}, {"text": "search"}]
    assert key_variable == [{"__text": "env", "__value": "tag:env"}, {"__text": "team", "__value": "tag:team"}]
    # a `tag:<key>` variable's values are what the `tag` payload field takes: key:value
    assert [(v["__text"], v["__value"]) for v in team_variable] == [
        ("(untagged)", "team:(untagged)"),
        ("ads", "team:ads"),
        ("search", "team:search"),
    ]
