"""The OpenAPI document (`/schema/openapi.json`) describes every answer: the 200 body of each /v1 route
below is an object with its properties (a component schema, not a bare "object"), every object inside
it too, and every field of a real answer — on a demo log, for each way of asking — is documented there
with its type, required where it is always present.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import load_settings
from cost_api.tools.demo.run import run_demo
from cost_api.watch.alerts import AlertEngine
from cost_api.watch.budgets import BudgetTracker
from cost_api.web.app import create_app
from cost_api.web.service import build_service

from ..clock import FakeClock

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)  # the demo log's end; the service's clock
TO = {"to": "2026-11-20T12:00:00Z"}
DAY = {"from": "2026-11-19T12:00:00Z", **TO}
EMPTY = {"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"}

# every route whose answer is typed, and the ways of asking that give answers of every shape
ROUTES: dict[str, list[dict[str, Any]]] = {
    "/v1/summary": [TO, EMPTY],
    "/v1/spend": [{**TO, "group_by": g, "limit": 2} for g in ("provider", "endpoint", "token", "model")] + [EMPTY],
    "/v1/savings": [{**TO, "group_by": g, "limit": 2} for g in ("endpoint", "model", "provider", "token", "cache_key")]
    + [{**TO, "tz": "Europe/Berlin"}, EMPTY],
    "/v1/trend": [TO, {**TO, "interval": "hour"}, EMPTY]
    + [{**TO, "group_by": g, "top": 1} for g in ("provider", "endpoint", "token", "model")],
    "/v1/live": [TO, EMPTY],
    "/v1/requests": [{**DAY, "limit": 50}, EMPTY],
    "/v1/pricing": [{}],
    "/v1/pricing/resolve": [
        {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "at": "2026-11-20T12:00:00Z"},
        {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929"},  # long context, service tiers
    ],
    "/v1/pricing/unpriced": [TO, EMPTY],
    "/v1/budgets": [{}],
    "/v1/budgets/check": [{"endpoint": "/classify-intent"}, {"endpoint": "/no-budget"}],
    "/v1/anomalies": [TO, EMPTY],
    "/v1/alerts": [{}],
}


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = document["components"]["schemas"][name]
    return schema


def body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    return document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


def bare_objects(document: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """The places under `schema` where an object is documented without its properties."""
    if "$ref" in schema:
        if schema["$ref"] in seen:
            return []
        seen.add(schema["$ref"])
    schema = resolve(document, schema)
    found = []
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        found += bare_objects(document, branch, where, seen)
    if schema.get("type") == "object" and not schema.get("properties"):
        found.append(where)
    for name, sub in schema.get("properties", {}).items():
        found += bare_objects(document, sub, f"{where}.{name}", seen)
    if "items" in schema:
        found += bare_objects(document, schema["items"], f"{where}[]", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        found += bare_objects(document, schema["additionalProperties"], f"{where}{{}}", seen)
    return found


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def mismatches(document: dict[str, Any], value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """Where `value` is not what `schema` documents: a field not in the properties (undocumented), a
    required one missing, a value of another type or outside the documented enum or pattern."""
    schema = resolve(document, schema)
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        tried = [mismatches(document, value, branch, where) for branch in branches]
        if not all(tried):
            return []
        return min(tried, key=len)
    kinds = schema.get("type")
    if kinds is None:
        return [f"{where}: no type documented"]
    kind = next((k for k in ([kinds] if isinstance(kinds, str) else kinds) if _TYPES[k](value)), None)
    if kind is None:
        return [f"{where}: {value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    if kind == "string" and "pattern" in schema and not re.search(schema["pattern"], value):
        return [f"{where}: {value!r} does not match {schema['pattern']}"]
    found = []
    if kind == "object":
        properties = schema.get("properties", {})
        found += [f"{where}.{key}: not documented" for key in value if key not in properties]
        found += [f"{where}.{key}: required, missing" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in properties:
                found += mismatches(document, item, properties[key], f"{where}.{key}")
    if kind == "array":
        for i, item in enumerate(value):
            found += mismatches(document, item, schema["items"], f"{where}[{i}]")
    return found


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'demo.db'}"
    run_demo(url, days=3, requests_per_day=400, seed=5, now=NOW, progress=False)
    return url


@pytest.fixture
async def client(demo_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app over the demo log, with budgets (one exceeded: its alerts fire, to a webhook that is not
    there, so that /v1/alerts lists events) and the tracker and the engine at the log's end."""
    settings = load_settings(
        environ={},
        overrides={
            "database_url": demo_url,
            "budgets": [
                {"endpoint": "/classify-intent", "limit_usd": 1_000_000, "period": "month"},
                {"endpoint": "/summarise-ticket", "limit_usd": 0.01, "period": "week"},
                {"endpoint": "/never-logged", "limit_usd": 5, "period": "day"},
            ],
            "alerts": {
                "webhook_url": "http://127.0.0.1:9/",  # discard: the connection is refused
                "retry": {"attempts": 1, "first_delay": "1ms", "max_delay": "1ms"},
            },
        },
    )
    service = build_service(settings, FakeClock(NOW))
    budgets = BudgetTracker(settings, service.aggregator)
    engine = AlertEngine(settings, service, budgets, timeout=0.5)
    async with AsyncTestClient(app=create_app(settings, service, budgets=budgets, alerts=engine)) as client:
        async with asyncio.timeout(20):  # started with the app: it evaluates once the figures are read
            while not engine.events or any(d.state == "pending" for d in engine.events):
                await asyncio.sleep(0.05)
        yield client


def test_every_typed_answer_is_documented_as_an_object_with_its_properties() -> None:
    settings = load_settings(environ={}, overrides={"database_url": "sqlite:///collect-only.db"})
    document = create_app(settings).openapi_schema.to_schema()
    for path in ROUTES:
        schema = resolve(document, body_schema(document, path))
        assert schema.get("type") == "object" and schema.get("properties"), (path, schema)
        assert bare_objects(document, body_schema(document, path), path, set()) == []


async def test_every_field_of_a_real_answer_is_documented(client: AsyncTestClient[Any]) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    for path, asks in ROUTES.items():
        for params in asks:
            response = await client.get(path, params=params)
            assert response.status_code == 200, (path, params, response.text)
            body = response.json()
            assert mismatches(document, body, body_schema(document, path), path) == [], params
    alerts = (await client.get("/v1/alerts")).json()
    assert alerts["items"], "the exceeded budget fired"
    check = await client.get("/v1/budgets/check", params={"endpoint": "/summarise-ticket"})
    assert check.status_code == 422  # exceeded: a problem document, not the 200 body
    spend = (await client.get("/v1/spend", params={**TO, "group_by": "model", "limit": 1})).json()
    assert spend["others"] is not None and "priced_as" in spend["items"][0]


def test_the_checker_finds_what_is_not_documented() -> None:
    document = {"components": {"schemas": {}}}
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"oneOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["a", "b"],
    }
    assert mismatches(document, {"a": 1, "b": None}, schema, "x") == []
    assert mismatches(document, {"a": 1, "b": "s", "c": 2}, schema, "x") == ["x.c: not documented"]
    assert mismatches(document, {"a": 1.5, "b": 1}, schema, "x") == ["x.a: 1.5 is not integer", "x.b: 1 is not string"]
    assert mismatches(document, {"b": None}, schema, "x") == ["x.a: required, missing"]
    assert bare_objects(document, {"type": "object", "additionalProperties": {}}, "x", set()) == ["x"]
