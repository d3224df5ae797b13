"""GET /v1/requests: audit rows priced one by one, newest first, keyset-paginated without gaps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cost_api.lenses.requests import decode_cursor, encode_cursor

from ..logdb import LogDB, Row, at

TO = "2026-11-20T12:00:00Z"  # window 24h: [11-19T12:00, 11-20T12:00)
CUSTOMER_A = "tok_customer_a_0123456789"


async def get(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/requests", params={"to": TO, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_rows_are_priced_and_shown_without_token_ids(log: LogDB, client_for) -> None:
    await log.add_tokens([(CUSTOMER_A, "pg_live_xy7", "customer-A")])
    await log.insert(
        [
            # 3 × 14320 + 15 × 642 = 52,590 → $0.05259
            Row(at("2026-11-20T10:00:00Z"), "anthropic", "claude-3-5-sonnet-20241022", "/summarise-ticket",
                CUSTOMER_A, streamed=True, prompt_tokens=14320, completion_tokens=642, latency_ms=2310,
                cache_key="0123456789abcdef0123", request_id="req_1"),
            # the same from the response cache: costs $0, saves $0.05259
            Row(at("2026-11-20T11:00:00Z"), "anthropic", "claude-3-5-sonnet-20241022", "/summarise-ticket",
                CUSTOMER_A, cache_hit=True, prompt_tokens_avoided=14320, completion_tokens_avoided=642,
                latency_ms=3, cache_key="0123456789abcdef0123", request_id="req_2"),
            # unpriced: no cost and no saving can be given
            Row(at("2026-11-20T09:00:00Z"), "together", "acme/mystery-model", "/misc", status_code=502,
                prompt_tokens=1000),
            # outside the 24 hours
            Row(at("2026-11-19T11:59:59Z"), "anthropic", "claude-3-5-sonnet", "/summarise-ticket"),
        ]
    )  # fmt: skip
    async with client_for() as client:
        response = await client.get("/v1/requests", params={"to": TO})
    assert CUSTOMER_A not in response.text
    body = response.json()
    assert body["range"] == {"from": "2026-11-19T12:00:00Z", "to": TO}
    assert body["next"] is None
    assert body["pricing"]["coverage_pct"] == 66.7  # 2 of 3
    hit, miss, unpriced = body["items"]
    assert {k: v for k, v in miss.items() if k != "id"} == {
        "created_at": "2026-11-20T10:00:00Z",
        "request_id": "req_1",
        "provider": "anthropic",
        "model": "claude-3-5-sonnet-20241022",
        "endpoint": "/summarise-ticket",
        "token": "pg_live_xy7…",
        "name": "customer-A",
        "status_code": 200,
        "streamed": True,
        "prompt_tokens": 14320,
        "completion_tokens": 642,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "service_tier": "standard",
        "usage_exact": True,
        "cache_hit": False,
        "prompt_tokens_avoided": 0,
        "completion_tokens_avoided": 0,
        "latency_ms": 2310,
        "cache_key": "0123456789ab",
        "priced_as": "anthropic/claude-3-5-sonnet",
        "cost": 0.05259,
        "saved": 0.0,
        "excluded": None,
    }
    assert (hit["created_at"], hit["cache_hit"], hit["cost"], hit["saved"]) == (
        "2026-11-20T11:00:00Z",
        True,
        0.0,
        0.05259,
    )
    assert (unpriced["token"], unpriced["priced_as"], unpriced["cost"], unpriced["saved"]) == (
        "anonymous",
        None,
        None,
        None,
    )
    assert unpriced["status_code"] == 502


async def ledger_of_25(log: LogDB) -> None:
    """25 rows: pairs sharing a millisecond (ties are broken by id), some microseconds apart."""
    base = at("2026-11-20T11:00:00Z")
    rows = []
    for i in range(25):
        created = base - timedelta(minutes=i // 2) + timedelta(microseconds=(i % 3) * 100)
        rows.append(Row(created, endpoint=f"/e{i % 2}", request_id=f"r{i:02d}", prompt_tokens=1000 * (i + 1)))
    await log.insert(rows)


async def test_three_pages_without_duplicates_or_gaps(log: LogDB, client_for) -> None:
    await ledger_of_25(log)
    async with client_for() as client:
        everything = await get(client, limit=1000)
        pages = [await get(client, limit=10)]
        while pages[-1]["next"] is not None:
            pages.append(await get(client, limit=10, cursor=pages[-1]["next"]))
    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    walked = [i["request_id"] for p in pages for i in p["items"]]
    assert walked == [i["request_id"] for i in everything["items"]]
    assert sorted(walked) == [f"r{i:02d}" for i in range(25)]
    created = [i["created_at"] for i in everything["items"]]
    assert created == sorted(created, reverse=True)  # newest first


async def test_pages_follow_the_filters(log: LogDB, client_for) -> None:
    await ledger_of_25(log)
    async with client_for() as client:
        first = await get(client, limit=5, endpoint="/e1")
        second = await get(client, limit=5, endpoint="/e1", cursor=first["next"])
        last = await get(client, limit=5, endpoint="/e1", cursor=second["next"])
    ids = [i["request_id"] for p in (first, second, last) for i in p["items"]]
    assert sorted(ids) == [f"r{i:02d}" for i in range(1, 25, 2)]  # the 12 odd rows
    assert last["next"] is None


def test_cursor_round_trip_and_opacity() -> None:
    cursor = encode_cursor(1_795_000_000_123_456, 42)  # date -u -d @1795000000: 2026-11-18 11:06:40
    assert "=" not in cursor
    assert decode_cursor(cursor) == (at("2026-11-18T11:06:40.123456Z"), 42)


async def test_every_page_boundary_holds(log: LogDB, client_for) -> None:
    """limit=1: each row is a boundary, including rows microseconds apart (Postgres keeps them)."""
    await ledger_of_25(log)
    async with client_for() as client:
        walked: list[str] = []
        page = await get(client, limit=1)
        while True:
            walked += [i["request_id"] for i in page["items"]]
            if page["next"] is None:
                break
            page = await get(client, limit=1, cursor=page["next"])
    assert len(walked) == 25
    assert sorted(walked) == [f"r{i:02d}" for i in range(25)]
