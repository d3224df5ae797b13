"""API keys, open routes, CORS, and the refusal to serve the world without keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from cost_api.web import auth
from cost_api.web.auth import KeyChecker

from ..conftest import ClientFactory
from ..logdb import Row, SqliteLog, at
from ..problems import assert_problem
from ..server import serving

KEYS = ["k-one-5d1f0b", "k-two-77a0c3"]


def assert_401(response: httpx.Response) -> None:
    body = assert_problem(response, 401, kind="unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Bearer" in body["detail"]
    for key in KEYS:
        assert key not in response.text


async def test_data_routes_need_a_configured_key(client_for: ClientFactory) -> None:
    async with client_for(api_keys=KEYS) as client:
        assert_401(await client.get("/v1/summary"))
        assert_401(await client.get("/v1/summary", headers={"Authorization": "Bearer wrong"}))
        assert_401(await client.get("/v1/summary", headers={"X-API-Key": KEYS[0] + "x"}))
        assert_401(await client.get("/v1/summary", headers={"X-API-Key": KEYS[0][:-1]}))
        assert_401(await client.get("/v1/summary", headers={"Authorization": f"Basic {KEYS[0]}"}))
        assert_401(await client.get("/v1/summary", headers={"Authorization": "Bearer "}))
        for headers in (
            {"Authorization": f"Bearer {KEYS[0]}"},
            {"Authorization": f"bearer {KEYS[1]}"},
            {"X-API-Key": KEYS[1]},
            {"Authorization": "Basic Zm9vOmJhcg==", "X-API-Key": KEYS[0]},
        ):
            response = await client.get("/v1/summary", headers=headers)
            assert response.status_code == 200, (headers, response.text)


async def test_open_and_closed_routes(client_for: ClientFactory) -> None:
    """Open: health, the dashboard and its files, preflight. Closed: readiness, metrics, the schema."""
    key = {"X-API-Key": KEYS[0]}
    async with client_for(api_keys=KEYS) as client:
        assert (await client.get("/healthz")).status_code == 200
        for path in ("/readyz", "/metrics", "/schema/openapi.json", "/v1/summary"):
            assert_401(await client.get(path))
            assert (await client.get(path, headers=key)).status_code == 200, path
        # the dashboard may not be there yet: whatever it answers, it is not a 401
        assert (await client.get("/")).status_code != 401
        assert (await client.get("/static/app.js")).status_code != 401
        # an unknown path is a 404 either way: it holds no data
        assert (await client.get("/v1/nothing-here")).status_code == 404


async def test_without_keys_everything_is_open(client_for: ClientFactory) -> None:
    async with client_for() as client:
        for path in ("/v1/summary", "/readyz", "/metrics", "/schema/openapi.json"):
            assert (await client.get(path)).status_code == 200, path


async def test_key_hashes(client_for: ClientFactory) -> None:
    secret = "kept-out-of-the-config-file"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert auth.hash_key(secret) == digest
    async with client_for(api_key_hashes=[digest]) as client:
        assert (await client.get("/v1/summary", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
        assert_401(await client.get("/v1/summary", headers={"Authorization": f"Bearer {digest}"}))
        assert_401(await client.get("/v1/summary"))


def test_every_configured_digest_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the first key matching costs as many comparisons as no key matching."""
    checker = KeyChecker(["a", "b"], [hashlib.sha256(b"c").hexdigest()])
    calls: list[int] = []
    real = auth.hmac.compare_digest

    def counting(x: bytes, y: bytes) -> bool:
        calls.append(1)
        return real(x, y)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented in ("a", "c", "nope", None):
        calls.clear()
        assert checker.check(presented) is (presented in ("a", "c"))
        assert len(calls) == 3


def test_without_keys_the_checker_is_off() -> None:  # a blank key never gets here: tests/test_config.py
    assert not KeyChecker([], []).enabled


async def test_cors_preflight_needs_no_key_and_follows_the_allow_list(client_for: ClientFactory) -> None:
    allowed, other = "https://dash.example.com", "https://elsewhere.example.org"
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    async with client_for(api_keys=KEYS, cors_origins=[allowed]) as client:
        ok = await client.options("/v1/summary", headers={"Origin": allowed, **preflight})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()

        refused = await client.options("/v1/summary", headers={"Origin": other, **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        # the call itself: the browser may read the answer from the allowed origin only
        call = await client.get("/v1/summary", headers={"Origin": allowed, "X-API-Key": KEYS[0]})
        assert call.status_code == 200
        assert call.headers["access-control-allow-origin"] == allowed
        assert "Retry-After" in call.headers["access-control-expose-headers"]
        foreign = await client.get("/v1/summary", headers={"Origin": other, "X-API-Key": KEYS[0]})
        assert "access-control-allow-origin" not in foreign.headers
        # a 401 carries the CORS headers too, so that the page can tell the user why
        denied = await client.get("/v1/summary", headers={"Origin": allowed})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == allowed


async def test_openapi_declares_the_key_requirement(client_for: ClientFactory) -> None:
    async with client_for(api_keys=KEYS) as client:
        schema = (await client.get("/schema/openapi.json", headers={"X-API-Key": KEYS[0]})).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    summary = schema["paths"]["/v1/summary"]["get"]
    assert summary["security"] == [{"bearer": []}, {"apiKey": []}]
    assert "401" in summary["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


# --------------------------------------------------------------------------- a real server


@pytest.fixture
def sqlite_log(tmp_path: Path) -> SqliteLog:
    return SqliteLog(tmp_path / "log.db")


async def test_insecure_lets_a_keyless_server_bind_every_address(sqlite_log: SqliteLog) -> None:
    await sqlite_log.insert([Row(at("2026-11-19T10:00:00Z"), prompt_tokens=1000)])
    with serving(sqlite_log.url, "--host", "0.0.0.0", "--insecure") as base:
        # the test talks to loopback only; the point is that the server started at all
        assert httpx.get(base + "/v1/summary").status_code == 200


async def test_with_keys_a_public_bind_is_allowed_and_guarded(sqlite_log: SqliteLog) -> None:
    with serving(sqlite_log.url, "--host", "0.0.0.0", env={"COST_API_KEYS": ",".join(KEYS)}) as base:
        assert_401(httpx.get(base + "/v1/summary"))
        assert httpx.get(base + "/v1/summary", headers={"Authorization": f"Bearer {KEYS[1]}"}).status_code == 200
        assert httpx.get(base + "/healthz").status_code == 200


def test_refusal_names_the_way_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cost_api.cli import main

    db = SqliteLog(tmp_path / "log.db")
    assert main(["serve", "--db", db.url, "--host", "192.0.2.10"]) == 2
    err = capsys.readouterr().err
    assert "without API keys" in err
    assert "--insecure" in err
    assert "Traceback" not in err


def test_helpers_are_consistent() -> None:
    assert auth.open_path("/healthz")
    assert auth.open_path("/static/app.js")
    assert not auth.open_path("/v1/summary")
    assert not auth.open_path("/readyz")
    assert not auth.open_path("/metrics")
    assert not auth.open_path("/schema/openapi.json")
