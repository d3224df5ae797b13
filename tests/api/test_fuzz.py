"""Fuzzing: schemathesis against the served OpenAPI document of a real server over a demo log, on
SQLite and on Postgres.

For every operation and a bounded number of generated requests (valid and invalid parameters):
no 5xx, every error a problem document, every answer matching the documented status codes,
content types, headers and body schemas (each /v1 and /grafana answer is a typed object: its fields,
their types, which may be null — tests/api/test_schema.py; /grafana/search's items excepted, see its
route). Bounded: `EXAMPLES` requests per operation and mode (valid, invalid), on each dialect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from cost_api.config import load_settings
from cost_api.tools.demo.run import run_demo
from cost_api.web.app import create_app

from ..problems import SHAPE
from ..server import serving

KEY = "fuzz-key-2f7c9e"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = 25
METHODS = {"get", "put", "post", "delete", "patch"}


async def _create_database(cluster: Any, name: str) -> None:
    admin = await asyncpg.connect(cluster.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server over a demo log (the same on both dialects: one seed) in a database of its own."""
    if request.param == "sqlite":
        folder: Path = tmp_path_factory.mktemp("fuzz")
        url = f"sqlite:///{folder / 'demo.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        asyncio.run(_create_database(cluster, "fuzz"))
        url = cluster.url("fuzz")
    run_demo(url, days=3, requests_per_day=400, seed=7, progress=False)
    with serving(url, env={"COST_API_KEYS": KEY}) as base:
        yield base


@pytest.fixture(scope="module")
def api_schema(fuzz_server: str) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server}/schema/openapi.json", headers=AUTH)


def _cases() -> list[Any]:
    """Every documented operation with valid requests, and with invalid ones where it takes parameters;
    read from an app built in-process (no database is opened)."""
    settings_ = load_settings(environ={}, overrides={"database_url": "sqlite:///collect-only.db", "api_keys": [KEY]})
    document = create_app(settings_).openapi_schema.to_schema()
    cases = []
    for path, item in sorted(document["paths"].items()):
        for method, operation in item.items():
            if method not in METHODS:
                continue
            label = f"{method.upper()} {path}"
            cases.append(pytest.param(label, GenerationMode.POSITIVE, id=f"{label} valid"))
            if operation.get("parameters"):
                cases.append(pytest.param(label, GenerationMode.NEGATIVE, id=f"{label} invalid"))
    return cases


# Every check on the answers (no 5xx; documented status, content type, headers and body schema: the
# response_schema_conformance check, which the typed answers give something to check), but not the two
# that judge whether a request should have been accepted:
# - positive_data_acceptance: parameters are documented as plain strings (a window's grammar, an
#   RFC 3339 instant, a zone name), so most "schema-valid" strings are rightly refused with a 400;
# - negative_data_rejection: in a query string every value is text, so "a number where a string is
#   expected" (model=-6e16) is a valid model name on the wire, and is rightly accepted.
# Invalid requests are still generated (the negative mode) and their answers checked.
EXCLUDED = [positive_data_acceptance, negative_data_rejection]


def check(case: Any) -> None:
    response = case.call(headers=AUTH, timeout=30)
    case.validate_response(response, headers=AUTH, excluded_checks=EXCLUDED)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        content_type = response.headers.get("content-type")
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type == "application/problem+json", response.text
        body = response.json()
        assert set(body) >= SHAPE, body
        assert body["status"] == response.status_code
        assert "Traceback" not in response.text


@pytest.mark.parametrize(("operation", "mode"), _cases())
def test_operation(api_schema: Any, operation: str, mode: GenerationMode) -> None:
    method, path = operation.split(" ", 1)
    strategy = api_schema[path][method].as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        check(case)

    fuzz()
