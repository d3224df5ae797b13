"""Control characters from outside: a query parameter or a Grafana body value with one is a 400 naming
it, a path with one is a 404, on SQLite and Postgres (which cannot store U+0000 in text)."""

from __future__ import annotations

import json
from typing import Any

from ..conftest import ClientFactory
from ..logdb import LogDB, Row, at
from ..problems import assert_problem

NUL = "\x00"


async def test_a_nul_in_a_filter_is_a_400_naming_it(log: LogDB, client_for: ClientFactory) -> None:
    await log.insert([Row(at("2026-11-19T10:00:00Z"), endpoint="/chat", prompt_tokens=1000)])
    async with client_for() as client:
        response = await client.get("/v1/summary", params={"endpoint": NUL})  # a 500 on Postgres before
        body = assert_problem(response, 400)
        assert body["errors"] == [
            {"field": "endpoint", "message": "contains the control character U+0000; no value the API takes has one"}
        ]
        assert body["detail"].startswith("endpoint: ")


async def test_every_query_parameter_of_every_route(log: LogDB, client_for: ClientFactory) -> None:
    """Each query parameter the OpenAPI document lists, alone with a control character in it; and one
    the API does not know (it would otherwise be ignored)."""
    async with client_for() as client:
        document = (await client.get("/schema/openapi.json")).json()
        asked = 0
        for path, item in document["paths"].items():
            for method, operation in item.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] != "query":
                        continue
                    for bad in (NUL, "/chat\x1b[2J", "x\x7f"):
                        response = await client.request(method, path, params={parameter["name"]: bad})
                        body = assert_problem(response, 400)
                        assert [e["field"] for e in body["errors"]] == [parameter["name"]], (path, bad, body)
                        asked += 1
        assert asked >= 3 * 30
        body = assert_problem(await client.get("/v1/summary", params={"utm_source": "a\x00b"}), 400)
        assert body["errors"][0]["field"] == "utm_source"
        # tab, line feed and carriage return are text: they reach the parameter's own checks
        body = assert_problem(await client.get("/v1/summary", params={"tz": "UTC\n"}), 400)
        assert body["errors"][0]["field"] == "tz" and "unknown time zone" in body["errors"][0]["message"]


async def test_a_path_with_a_control_character_is_a_404(log: LogDB, client_for: ClientFactory) -> None:
    async with client_for() as client:
        assert (await client.get("/static/app.js")).status_code == 200
        for path in ("/static/app.js%00.png", "/static/app.js%00", "/static/%1b[31m.css", "/v1/summary%00"):
            body = assert_problem(await client.get(path), 404)  # the first was a 500
            assert body["type"] == "/problems/not-found"


def _grafana(**extra: Any) -> dict[str, Any]:
    return {
        "range": {"from": "2026-11-13T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
        "targets": [{"refId": "A", "target": "spend", "payload": {}}],
        **extra,
    }


async def test_grafana_bodies_name_the_field(log: LogDB, client_for: ClientFactory) -> None:
    await log.insert([Row(at("2026-11-19T10:00:00Z"), endpoint="/chat", prompt_tokens=1000)])
    spend = {"refId": "A", "target": "spend"}
    cases = [
        ("/grafana/query", _grafana(targets=[{**spend, "payload": {"provider": NUL}}]), "targets[0].payload.provider"),
        ("/grafana/query", _grafana(targets=[spend, {**spend, "payload": {"model": ["a", "b\x00"]}}]),
         "targets[1].payload.model[1]"),
        # code mode, and plugins before 0.4: the payload as JSON text
        ("/grafana/query", _grafana(targets=[{**spend, "payload": json.dumps({"endpoint": "/chat\x00"})}]),
         "targets[0].payload.endpoint"),
        ("/grafana/query", _grafana(filters=[{"key": "endpoint", "operator": "=", "value": NUL}]), "filters[0].value"),
        ("/grafana/query", _grafana(adhocFilters=[{"key": "provider", "operator": "!=", "value": "\x1b"}]),
         "adhocFilters[0].value"),
        ("/grafana/query", _grafana(range={"from": "2026-11-13T00:00:00Z\x00", "to": "now"}), "range.from"),
        ("/grafana/query", _grafana(scopedVars={"provider": {"value": NUL}}), "scopedVars.provider.value"),
        ("/grafana/variable", {"payload": {"target": "models", "provider": NUL}}, "payload.provider"),
        ("/grafana/variable", {"payload": json.dumps({"target": "models", "provider": NUL})}, "payload.provider"),
        ("/grafana/tag-values", {"key": "endpoint", "range": {"from": NUL}}, "range.from"),
        ("/grafana/metric-payload-options", {"name": "provider\x00"}, "name"),
        ("/grafana/search", {"target": NUL}, "target"),
        ("/grafana/annotations", {"annotation": {"query": "anomalies\x00"}}, "annotation.query"),
    ]  # fmt: skip
    async with client_for() as client:
        for path, payload, field in cases:
            response = await client.post(path, json=payload)  # a 500 on Postgres before, for the filters
            body = assert_problem(response, 400)
            assert [e["field"] for e in body["errors"]] == [field], (path, payload, body)
        # JSON text is read as before: its line feeds are whitespace
        code_mode = _grafana(targets=[{**spend, "payload": '{\n  "endpoint": "/chat"\n}'}])
        response = await client.post("/grafana/query", json=code_mode)
        assert response.status_code == 200, response.text


async def test_a_body_nested_too_deeply_is_a_400(log: LogDB, client_for: ClientFactory) -> None:
    json_body = {"Content-Type": "application/json"}
    async with client_for() as client:
        deep = b'{"targets": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # a 500 before
        response = await client.post("/grafana/query", content=deep, headers=json_body)
        assert assert_problem(response, 400)["errors"][0]["field"] == "body"
        nested = b'{"targets": [' + b"[" * 900 + b"]" * 900 + b"]}"  # read, and no target in it
        response = await client.post("/grafana/query", content=nested, headers=json_body)
        assert response.status_code == 200 and response.json() == []
