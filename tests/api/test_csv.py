"""CSV answers parse with the csv module and say what the JSON says."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from cost_api.web.csv import cell, render

from ..logdb import LogDB, Row, at
from . import test_requests, test_savings, test_spend


def parse(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="')
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel then reads … and ü right
    text = response.content.decode("utf-8-sig")
    assert text.endswith("\r\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def assert_same(rows: list[dict[str, str]], items: list[dict[str, Any]]) -> None:
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        assert row == {k: cell(v) for k, v in item.items()}


@pytest.mark.parametrize("group_by", ["provider", "endpoint", "token", "model"])
async def test_spend_csv_matches_json(log: LogDB, client_for, group_by: str) -> None:
    await test_spend.ledger(log)
    params = {"to": test_spend.TO, "group_by": group_by}
    async with client_for() as client:
        body = (await client.get("/v1/spend", params=params)).json()
        by_format = await client.get("/v1/spend", params={**params, "format": "csv"})
        by_accept = await client.get("/v1/spend", params=params, headers={"Accept": "text/csv"})
    assert by_format.content == by_accept.content
    *rows, total = parse(by_format)
    assert_same(rows, body["items"])
    # the total line: "(total)" in the first key column, the answer's total (docs/showback.md)
    first = next(iter(body["items"][0]))
    assert (total[first], total["spend"], total["previous_spend"]) == (
        "(total)", cell(body["spend"]), cell(body["previous"]["spend"]),
    )  # fmt: skip
    assert by_format.headers["content-disposition"] == (
        f'attachment; filename="spend-{group_by}-20261021T120000Z-20261120T120000Z.csv"'
    )


async def test_spend_csv_spells_numbers_plainly(log: LogDB, client_for) -> None:
    await test_spend.ledger(log)
    async with client_for() as client:
        response = await client.get("/v1/spend", params={"to": test_spend.TO, "format": "csv"})
    text = response.content.decode("utf-8-sig")
    lines = text.split("\r\n")
    assert lines[0] == (
        "provider,spend,share_pct,requests,cache_hits,unpriced_requests,prompt_tokens,completion_tokens,"
        "cache_read_tokens,cache_write_tokens,saved_by_cache,previous_spend,change_pct"
    )
    assert lines[1] == "anthropic,0.06759,49.3,3,1,0,15320,742,10000,2000,0.05259,0.3,-77.5"
    assert lines[2] == "groq,0.0669,48.8,1,0,0,100000,10000,0,0,0,0,"  # change_pct null: an empty cell


async def test_json_stays_the_default(log: LogDB, client_for) -> None:
    async with client_for() as client:
        browser = await client.get("/v1/spend", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        forced = await client.get("/v1/spend", params={"format": "json"}, headers={"Accept": "text/csv"})
    assert browser.headers["content-type"].startswith("application/json")
    assert forced.headers["content-type"].startswith("application/json")


async def test_savings_csv_matches_json(log: LogDB, client_for) -> None:
    await test_savings.ledger(log)
    params = {**test_savings.RANGE, "group_by": "cache_key"}
    async with client_for() as client:
        items = (await client.get("/v1/savings", params=params)).json()["items"]
        response = await client.get("/v1/savings", params={**params, "format": "csv"})
    rows = parse(response)
    assert_same(rows, items)
    assert rows[0]["cache_key"] == "abcdef012345"
    assert rows[-1]["cache_key"] == ""  # not cacheable: null


async def test_requests_csv_matches_json_page_by_page(log: LogDB, client_for) -> None:
    await test_requests.ledger_of_25(log)
    params = {"to": test_requests.TO, "limit": 20}
    async with client_for() as client:
        page = (await client.get("/v1/requests", params=params)).json()
        response = await client.get("/v1/requests", params=params, headers={"Accept": "text/csv"})
        empty = await client.get("/v1/requests", params={"window": "1m", "format": "csv"})
    assert_same(parse(response), page["items"])
    assert response.headers["x-next-cursor"] == page["next"]
    assert parse(empty) == []
    assert empty.content.decode("utf-8-sig").startswith("id,created_at,request_id,provider,")


FORMULAS = [
    '=HYPERLINK("http://x")',
    "\n=1+1",  # a line break first: some spreadsheets drop it and read the rest
    "\r=1+1",
    '\uff1dHYPERLINK("http://x")',  # full-width ＝ ＋ － ＠: spreadsheets in CJK locales take them as = + - @
    "\uff0b1+1",
    "\uff0d1+1",
    "\uff20SUM(A1)",
]


async def test_formula_like_text_is_defused(log: LogDB, client_for) -> None:
    await log.insert([Row(at(f"2026-11-20T11:0{i}:00Z"), endpoint=text) for i, text in enumerate(FORMULAS)])
    async with client_for() as client:
        response = await client.get(
            "/v1/spend", params={"to": test_spend.TO, "group_by": "endpoint", "format": "csv", "limit": 100}
        )
    *rows, _ = parse(response)
    assert sorted(row["endpoint"] for row in rows) == sorted("'" + text for text in FORMULAS)


def test_cells() -> None:
    assert [cell(v) for v in (0.0, 1e-05, 1847.2, 12.0, 3, -77.5, True, None, "…")] == [
        "0",
        "0.00001",
        "1847.2",
        "12",
        "3",
        "-77.5",
        "true",
        "",
        "…",
    ]
    assert [cell(t) for t in ("-1", "+1", "@x", "a=b", "\t=1", "\n=1", "\uff1d1", " =1")] == [
        "'-1", "'+1", "'@x", "a=b", "'\t=1", "'\n=1", "'\uff1d1", " =1",
    ]  # fmt: skip
    assert render([{"a": "x,y", "b": 'say "hi"'}], ["a", "b"]) == 'a,b\r\n"x,y","say ""hi"""\r\n'
