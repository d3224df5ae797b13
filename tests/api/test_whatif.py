"""GET /v1/whatif against dollars computed by hand, on SQLite and Postgres; price books; the 400s.

Rates (USD per 1M tokens): gpt-4o since 2024-10-02 2.50 in / 10 out / 1.25 cache read, batch 1.25 in;
gpt-4.1-mini 0.40 / 1.60 / 0.10, batch 0.20 in; claude-3-5-sonnet 3 / 15; gpt-4o-mini 0.15 in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from cost_api.config import ConfigError, load_settings
from cost_api.web.app import create_app
from cost_api.web.service import load_price_books

from ..logdb import LogDB, Row, at
from ..problems import assert_problem
from ..tools.test_cli_report import line, run
from .test_anomalies import rollups_ready
from .test_data_quality import http_at, service_at

NOW = at("2026-11-20T12:00:00Z")  # window 30d: [2026-10-21T12:00Z, now)
MAP = "openai/gpt-4o=openai/gpt-4.1-mini"


async def ledger(log: LogDB) -> None:
    await log.insert(
        [
            # 1. 1M × 2.5 + 0.1M × 10 + 0.2M × 1.25 = $3.75; as gpt-4.1-mini 0.4 + 0.16 + 0.02 = $0.58
            Row(at("2026-11-10T10:00:00Z"), "openai", "openai/gpt-4o", "/chat",
                prompt_tokens=1_000_000, completion_tokens=100_000, cache_read_tokens=200_000),
            # 2. batch: 1M × 1.25 = $1.25; as gpt-4.1-mini batch 1M × 0.20 = $0.20
            Row(at("2026-11-11T10:00:00Z"), "openai", "gpt-4o", "/batch", prompt_tokens=1_000_000,
                service_tier="batch"),
            # 3. 0.1M × 3 + 0.01M × 15 = $0.45; 15% off: $0.3825
            Row(at("2026-11-12T10:00:00Z"), "anthropic", "claude-3-5-sonnet-20241022", "/chat",
                prompt_tokens=100_000, completion_tokens=10_000),
            # 4. 1M × 0.15 = $0.15, not substituted
            Row(at("2026-11-15T10:00:00Z"), "openai", "gpt-4o-mini", "/batch", prompt_tokens=1_000_000),
            # 5. unpriced, in both: counted, never $0
            Row(at("2026-11-16T10:00:00Z"), "together", "acme/mystery-model", "/chat", prompt_tokens=1000),
            # 6. before the window: in no figure
            Row(at("2026-10-01T10:00:00Z"), "openai", "gpt-4o", "/chat", prompt_tokens=1_000_000),
        ]
    )  # fmt: skip


async def test_substitution_and_discount(log: LogDB) -> None:
    await ledger(log)
    async with http_at(log, NOW) as (get, _):
        body = await get("/v1/whatif", {"map": MAP, "discount": "anthropic:15"})
    assert body["spend"] == 5.6  # 3.75 + 1.25 + 0.45 + 0.15
    assert body["whatif"] == 1.3125  # 0.58 + 0.20 + 0.3825 + 0.15
    assert body["difference"] == -4.2875 and body["change_pct"] == -76.6
    assert body["substitutions"] == [
        {"from": "openai/gpt-4o", "to": "openai/gpt-4.1-mini", "requests": 2, "spend": 5.0, "whatif": 0.78}
    ]
    assert body["discounts"] == [{"provider": "anthropic", "pct": 15.0}]
    assert body["unpriced_requests"] == 1
    assert body["unpriced"] == [{"provider": "together", "model": "acme/mystery-model", "requests": 1}]
    items = {i["provider"]: i for i in body["items"]}
    assert (items["openai"]["spend"], items["openai"]["whatif"]) == (5.15, 0.93)
    assert (items["anthropic"]["spend"], items["anthropic"]["whatif"]) == (0.45, 0.3825)
    assert (items["together"]["whatif"], items["together"]["unpriced_requests"]) == (0.0, 1)
    assert body["book"] is None and body["group_by"] == "provider"


async def test_by_endpoint_and_model(log: LogDB) -> None:
    await ledger(log)
    async with http_at(log, NOW) as (get, _):
        by_endpoint = await get("/v1/whatif", {"map": MAP, "group_by": "endpoint"})
        by_model = await get("/v1/whatif", {"map": MAP, "group_by": "model", "provider": "openai"})
    endpoints = {i["endpoint"]: (i["spend"], i["whatif"]) for i in by_endpoint["items"]}
    assert endpoints == {
        "/chat": (4.2, 1.03),
        "/batch": (1.4, 0.35),
    }  # 3.75 + 0.45 → 0.58 + 0.45; 1.25 + 0.15 → 0.2 + 0.15
    models = {(i["model"], i["priced_as"]): (i["spend"], i["whatif"]) for i in by_model["items"]}
    assert models == {
        ("openai/gpt-4o", "openai/gpt-4o"): (3.75, 0.58),
        ("gpt-4o", "openai/gpt-4o"): (1.25, 0.2),
        ("gpt-4o-mini", "openai/gpt-4o-mini"): (0.15, 0.15),
    }
    assert by_model["spend"] == 5.15 and by_model["whatif"] == 0.93


async def test_price_book(log: LogDB, tmp_path: Path) -> None:
    """The book's gpt-4o: 2 in / 6 out / 1 cache read, no batch rate: row 1 2 + 0.6 + 0.2 = $2.80,
    row 2 at its standard input rate 1M × 2 = $2.00; the others as the live table."""
    await ledger(log)
    book = tmp_path / "negotiated.yaml"
    book.write_text(
        "version: negotiated-2027\nmodels:\n  - provider: openai\n    model: gpt-4o\n"
        "    prices:\n      - {input: 2, output: 6, cache_read: 1}\n"
    )
    settings = load_settings(environ={}, overrides={"database_url": log.url, "whatif_price_books": {"n27": str(book)}})
    service = service_at(log, NOW)
    service.price_books = load_price_books(settings)
    async with AsyncTestClient(app=create_app(service.settings, service)) as client:
        await rollups_ready(service)
        response = await client.get("/v1/whatif", params={"book": "n27"})
    body = response.json()
    assert body["book"] == "n27" and body["spend"] == 5.6
    assert body["whatif"] == 5.4  # 2.80 + 2.00 + 0.45 + 0.15


@pytest.mark.parametrize(
    ("params", "field"),
    [({"map": "openai/gpt-4o=openai/no-such-model"}, "map"), ({"map": "nobody/x=openai/gpt-4o"}, "map"),
     ({"map": "openai/gpt-4o"}, "map"), ({"discount": "anthropic:150"}, "discount"),
     ({"discount": "anthropic:-1"}, "discount"), ({"discount": "anthropic"}, "discount"),
     ({"book": "nope"}, "book"), ({"group_by": "cache_key"}, "group_by"), ({"window": "0d"}, "window")],
)  # fmt: skip
async def test_bad_parameters(log: LogDB, client_for: Any, params: dict[str, str], field: str) -> None:
    async with client_for() as client:
        response = await client.get("/v1/whatif", params=params)
    body = assert_problem(response, 400, kind="bad-parameter")
    assert [e["field"] for e in body["errors"]] == [field]


def test_a_broken_price_book_stops_the_start(tmp_path: Path) -> None:
    book = tmp_path / "broken.yaml"
    book.write_text("version: x\nmodels: [{provider: openai}]\n")
    settings = load_settings(environ={}, overrides={"whatif_price_books": {"negotiated-2027": str(book)}})
    with pytest.raises(ConfigError, match=r"whatif_price_books\.negotiated-2027"):
        load_price_books(settings)


async def test_report_whatif_prints_the_same(log: LogDB, capsys: pytest.CaptureFixture[str]) -> None:
    await ledger(log)
    argv = ["report", "--db", log.url, "--to", "2026-11-20T12:00:00Z", "--whatif", MAP, "--discount", "anthropic:15"]
    code, out, err = await run(capsys, *argv)
    assert (code, err) == (0, "")
    assert line(out, "Spend").split() == ["Spend", "$5.60"]
    assert line(out, "What-if").split() == ["What-if", "$1.31", "(-76.6%)"]  # $1.3125
    assert line(out, "  openai/gpt-4o →").split() == ["openai/gpt-4o", "→", "openai/gpt-4.1-mini:", "2", "requests"]
    assert line(out, "  openai ").split() == ["openai", "$5.15", "$0.93", "↓", "81.9%"]  # 0.93 / 5.15 − 1
    assert "together/acme/mystery-model (1 requests)" in out
