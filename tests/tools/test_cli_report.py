"""`cost-api report` (the headline block as text) and `cost-api smoke`, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cost_api.cli import main
from cost_api.resources import sql_dir
from cost_api.store.queries import Registry
from cost_api.tools.report import cents, dollars, trend

from ..api import test_showback
from ..clock import FakeClock
from ..logdb import LogDB, Row, at

TO = "2026-11-20T12:00:00Z"  # 30d from 10-21T12:00; top lists 7d from 11-13T12:00 (before: from 11-06T12:00)
CUSTOMER_A = "tok_customer_a_0123456789"


async def ledger(log: LogDB) -> None:
    """claude-3-5-sonnet 3 in / 15 out; gpt-4o-mini 0.15 in (USD per 1M tokens)."""
    await log.add_tokens([(CUSTOMER_A, "pg_live_xy7", "customer-A")])
    sonnet, mini = ("anthropic", "claude-3-5-sonnet"), ("openai", "gpt-4o-mini")
    await log.insert(
        [
            # 600,000,000 × 3 + 3,148,000 × 15 = 1800.00 + 47.22 → $1,847.22
            Row(at("2026-11-19T10:00:00Z"), *sonnet, "/summarise-ticket", CUSTOMER_A,
                prompt_tokens=600_000_000, completion_tokens=3_148_000),
            # a cache hit: 60,000,000 × 3 + 160,000 × 15 = 180.00 + 2.40 → saves $182.40
            Row(at("2026-11-19T11:00:00Z"), *sonnet, "/summarise-ticket", CUSTOMER_A, cache_hit=True,
                prompt_tokens_avoided=60_000_000, completion_tokens_avoided=160_000),
            # 1,000,000,000 × 0.15 → $150.00, in the 7 days before the top lists' window
            Row(at("2026-11-10T00:00:00Z"), *mini, "/classify-intent", prompt_tokens=1_000_000_000),
            # 100,000,000 × 0.15 → $15.00, in the top lists' window
            Row(at("2026-11-15T00:00:00Z"), *mini, "/classify-intent", prompt_tokens=100_000_000),
            # the previous 30 days: 500,000,000 × 3 → $1,500.00
            Row(at("2026-10-01T00:00:00Z"), *sonnet, "/summarise-ticket", prompt_tokens=500_000_000),
        ]
    )  # fmt: skip


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def line(text: str, start: str) -> str:
    (found,) = [ln for ln in text.splitlines() if ln.startswith(start)]
    return found


async def test_report_prints_the_headline_block(log: LogDB, capsys) -> None:
    await ledger(log)
    code, out, err = await run(capsys, "report", "--db", log.url, "--to", TO)
    assert (code, err) == (0, "")
    assert out.startswith(f"cost-api report: 2026-10-21T12:00:00Z → {TO} (30d)\n")
    # spend 1847.22 + 150 + 15 = 2012.22
    assert line(out, "Spend").split() == ["Spend", "$2,012.22"]
    # 182.40 / 2012.22 = 9.06%
    assert line(out, "Saved by cache").split()[-4:] == ["$182.40", "9.1%", "of", "spend"]
    # 2012.22 − 1500 = 512.22; 512.22 / 1500 = +34.1%
    assert line(out, "Previous 30d").split()[-4:] == ["$1,500.00", "↑", "$512.22", "(+34.1%)"]
    assert line(out, "Requests").split()[-4:] == ["4", "1", "cache", "hits"]
    # shares: 1847.22 / 2012.22 = 91.8%; 165 / 2012.22 = 8.2%
    assert line(out, "  anthropic").split() == ["anthropic", "$1,847.22", "91.8%"]
    assert line(out, "  openai").split() == ["openai", "$165.00", "8.2%"]
    assert "Top endpoints, last 7d" in out
    assert line(out, "  /summarise-ticket").split() == ["/summarise-ticket", "$1,847.22", "new"]
    assert line(out, "  /classify-intent").split() == ["/classify-intent", "$15.00", "↓", "90.0%"]  # vs 150
    assert line(out, "  pg_live_xy7…").split() == ["pg_live_xy7…", "customer-A", "$1,847.22", "new"]
    assert line(out, "  anonymous").split() == ["anonymous", "$15.00", "↓", "90.0%"]
    assert CUSTOMER_A not in out
    assert "100.0% of requests priced" in out
    # the columns line up: every money figure of a block ends in the same column
    assert line(out, "  anthropic").index("$1,847.22") + 9 == line(out, "  openai").index("$165.00") + 7


async def test_report_rejects_a_bad_window(log: LogDB, capsys) -> None:
    code, _, err = await run(capsys, "report", "--db", log.url, "--window", "fortnight")
    assert code == 2
    assert err.startswith("cost-api: window: expected a whole number of m, h or d")


def test_money_and_change_formatting() -> None:
    assert [dollars(v) for v in (1847.2, 0.05259, 0.0, -0.21516, 1234567.891)] == [
        "$1,847.20",
        "$0.05",
        "$0.00",
        "-$0.22",
        "$1,234,567.89",
    ]
    assert [trend(c, s) for c, s in ((13.1, 1.0), (-71.7, 1.0), (0.0, 1.0), (None, 2.0), (None, 0.0))] == [
        "↑ 13.1%",
        "↓ 71.7%",
        "→ 0.0%",
        "new",
        "—",
    ]


async def test_smoke_runs_every_registered_query(log: LogDB, capsys) -> None:
    await ledger(log)
    code, out, err = await run(capsys, "smoke", "--db", log.url)
    assert code == 0, out + err
    names = [q.name for q in Registry.load(sql_dir(), log.dialect)]
    listed = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines()[1:-2]}
    assert sorted(listed) == sorted(names)
    assert all(len(cols) == 2 and cols[0].isdigit() for cols in listed.values()), out
    assert listed["token_labels"][0] == "1"
    read = "cache_write_1h_tokens, service_tier, usage_exact"
    assert out.splitlines()[-2] == f"ok: {len(names)} queries on {log.dialect}; optional columns read: {read}"
    assert out.splitlines()[-1] == "data quality, last 24h (future rows: whole log): no row left out"


async def test_smoke_skips_the_optional_token_labels(log: LogDB, capsys) -> None:
    await log.execute("DROP TABLE api_tokens")
    code, out, _ = await run(capsys, "smoke", "--db", log.url)
    assert code == 0, out
    assert line(out, "token_labels").split()[1] == "skipped"
    assert line(out, "token_tags").split()[1] == "skipped"


async def test_smoke_skips_the_optional_tags_column(log: LogDB, capsys) -> None:
    await log.execute("ALTER TABLE api_tokens DROP COLUMN tags")
    code, out, _ = await run(capsys, "smoke", "--db", log.url)
    assert code == 0, out
    assert line(out, "token_labels").split()[1] == "0"
    assert line(out, "token_tags").split()[1] == "skipped"


async def test_smoke_fails_without_the_schema(log: LogDB, capsys) -> None:
    await log.execute("DROP TABLE request_log")
    code, _, err = await run(capsys, "smoke", "--db", log.url)
    assert code != 0
    assert "request_log" in err


async def showback(log: LogDB, tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """`cost-api report --by tag:team --month 2026-11 FLAGS` over test_showback's ledger and rules."""
    await test_showback.ledger(log)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"token_tags": test_showback.RULES}))  # JSON is YAML
    argv = ("report", "--db", log.url, "--config", str(config), "--by", "tag:team", "--month", "2026-11", *flags)
    code, out, err = await run(capsys, *argv)
    assert (code, err) == (0, ""), err
    return out


async def api_body(client_for: Any, **params: str) -> str:
    async with client_for(clock=FakeClock(test_showback.NOW), token_tags=test_showback.RULES) as client:
        response = await client.get("/v1/spend", params={**test_showback.MONTH, "group_by": "tag:team", **params})
    assert response.status_code == 200, response.text
    return response.content.decode("utf-8")


@pytest.mark.parametrize("fmt", ["csv", "focus"])
async def test_report_showback_is_the_apis_csv(log: LogDB, tmp_path: Path, capsys, client_for, fmt: str) -> None:
    out = await showback(log, tmp_path, capsys, "--format", fmt)
    assert out == await api_body(client_for, format=fmt)
    assert out.startswith("\ufeff")  # the byte-order mark, as the API answers (Excel reads UTF-8 so)
    if fmt == "csv":  # test_showback's figures: the rows add up to the total line
        assert out.split("\r\n")[1].startswith("(untagged),0.45,42.8,1,")
        assert out.split("\r\n")[-2].startswith("(total),1.050003,100,5,")


async def test_report_showback_as_markdown(log: LogDB, tmp_path: Path, capsys) -> None:
    out = await showback(log, tmp_path, capsys)
    assert out.startswith("# Showback by tag:team, 2026-11 (UTC)\n\n2026-11-01T00:00:00Z → 2026-12-01T00:00:00Z, USD\n")
    # cents apportioned from the rows' micro-dollars: 45.00006, 30.0002, 30.0001 → 45 + 30 + 30 = $1.05
    assert out.splitlines()[4:10] == [
        "| team | spend | saved by cache | requests | share |",
        "|---|---:|---:|---:|---:|",
        "| (untagged) | $0.45 | $0.00 | 1 | 42.8% |",
        "| search | $0.30 | $0.15 | 3 | 28.6% |",
        "| ads | $0.30 | $0.00 | 1 | 28.6% |",
        "| **total** | **$1.05** | **$0.15** | **5** | **100.0%** |",
    ]
    assert "Pricing " in out and "100.0% of requests priced." in out


def test_markdown_cents_add_up_where_rounding_each_would_not() -> None:
    # $0.335 + $0.335 + $0.33 = $1.00; each to the cent alone: 0.34 + 0.34 + 0.33 = $1.01. Apportioned:
    # 33 + 33 + 33 = 99 cents, the 1 missing to the largest fraction (.5: the first of the tie)
    assert cents([0.335, 0.335, 0.33], 1.0) == ["$0.34", "$0.33", "$0.33", "$1.00"]
    assert cents([], 0.0) == ["$0.00"]


async def test_report_showback_flags_are_checked(log: LogDB, capsys) -> None:
    month = await run(capsys, "report", "--db", log.url, "--by", "tag:team", "--month", "2026-13")
    fmt = await run(capsys, "report", "--db", log.url, "--by", "tag:team", "--format", "xlsx")
    alone = await run(capsys, "report", "--db", log.url, "--format", "csv")
    assert month[0] == fmt[0] == alone[0] == 2
    assert month[2] == "cost-api: month: expected YYYY-MM (e.g. 2026-11); got '2026-13'\n"
    assert fmt[2] == "cost-api: format: expected md, csv or focus; got 'xlsx'\n"
    assert alone[2] == "cost-api: report: --month and --format go with --by (e.g. --by tag:team --month 2026-11)\n"
