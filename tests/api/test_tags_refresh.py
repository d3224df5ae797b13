"""The token directory kept between answers (docs/tags.md#when-changes-show): a rename or a retag of a
token in `api_tokens` shows in every answer that begins `token_refresh` after it, never later, and the
answers in between share one read — on SQLite and Postgres, on a moved clock (no sleeps)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..clock import FakeClock
from ..logdb import LogDB
from .test_tags import ALPHA, BETA, TO, get, ledger, spends

RETAG = f'UPDATE api_tokens SET tags = \'{{"team": "ads", "env": "prod"}}\' WHERE id = \'{ALPHA}\''
RENAME = f"UPDATE api_tokens SET name = 'beta-renamed', prefix = 'pg_live_bbx' WHERE id = '{BETA}'"


def names(body: dict[str, Any]) -> dict[str, str | None]:
    return {item["token"]: item["name"] for item in body["items"]}


@asynccontextmanager
async def changed(
    log: LogDB, client_for: Any, refresh: str, change: str, **params: Any
) -> AsyncIterator[tuple[Any, FakeClock, dict[str, Any]]]:
    """The app on a clock at TO: one answer to `params` (it reads the directory), then `change` made to
    `api_tokens`: (client, clock, that first answer)."""
    await ledger(log)
    clock = FakeClock(TO)
    async with client_for(clock=clock, token_refresh=refresh) as client:
        before = await get(client, "/v1/spend", **params)
        await log.execute(change)
        yield client, clock, before


async def test_a_retag_shows_within_token_refresh(log: LogDB, client_for) -> None:
    async with changed(log, client_for, "5s", RETAG, group_by="tag:team") as (client, clock, before):
        clock.advance(4.9)
        kept = await get(client, "/v1/spend", group_by="tag:team")
        filtered = await get(client, "/v1/spend", group_by="provider", tag="team:search")
        clock.advance(0.1)  # 5 s after the read the answers shared: read again
        after = await get(client, "/v1/spend", group_by="tag:team")
        refiltered = await get(client, "/v1/spend", group_by="provider", tag="team:search")
    # no rules: search alpha $0.15 (column); ads beta $0.30 + $0.60; untagged gamma $1.20, delta $0.60
    # (no api_tokens row), anonymous $0.015
    assert spends(before) == spends(kept) == {"(untagged)": 1.815, "ads": 0.9, "search": 0.15}
    assert filtered["spend"] == 0.15
    # alpha moved to ads: its whole history with it, search has no token left
    assert spends(after) == {"(untagged)": 1.815, "ads": 1.05}
    assert refiltered["spend"] == 0.0


async def test_a_rename_shows_within_token_refresh(log: LogDB, client_for) -> None:
    async with changed(log, client_for, "5s", RENAME, group_by="token") as (client, clock, before):
        kept = await get(client, "/v1/spend", group_by="token")
        clock.advance(5)
        after = await get(client, "/v1/spend", group_by="token")
        by_new_prefix = await get(client, "/v1/spend", group_by="provider", token="pg_live_bbx")
    assert names(before)["pg_live_bbb…"] == names(kept)["pg_live_bbb…"] == "beta-bot"
    assert names(after)["pg_live_bbx…"] == "beta-renamed" and "pg_live_bbb…" not in names(after)
    assert by_new_prefix["spend"] == 0.9  # beta: $0.30 + $0.60


async def test_a_clock_that_goes_back_reads_again(log: LogDB, client_for) -> None:
    async with changed(log, client_for, "1h", RETAG, group_by="tag:team") as (client, clock, _):
        clock.advance(-1)  # before the read began: what was read says nothing of now
        after = await get(client, "/v1/spend", group_by="tag:team")
    assert spends(after) == {"(untagged)": 1.815, "ads": 1.05}


async def test_zero_refresh_reads_for_every_answer(log: LogDB, client_for) -> None:
    async with changed(log, client_for, "0s", RETAG, group_by="tag:team") as (client, _, _):
        after = await get(client, "/v1/spend", group_by="tag:team")
    assert spends(after) == {"(untagged)": 1.815, "ads": 1.05}
