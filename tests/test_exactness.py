"""Every lens equals the direct aggregate over raw rows, to the cent, on both dialects — with the
closed hours served from the rollups, rows arriving late into an open hour, hours closing while the
service runs, and a retention job deleting the oldest days.

The expected figures are computed here from `SELECT *` over the log, each row priced on its own with
the pricing engine (whose prices tests/test_pricing_engine.py checks against hand-computed dollars).
"""

from __future__ import annotations

import random
import zoneinfo
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cost_api.aggregate import Aggregator, Filters
from cost_api.config import load_settings
from cost_api.service import build_service
from cost_api.spend import spend
from cost_api.summary import summary
from cost_api.trend import trend
from cost_api.windows import parse_window

from .logdb import LogDB, Row

NOW = datetime(2026, 11, 20, 12, 34, 56, tzinfo=UTC)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
MODELS = [
    ("anthropic", "claude-3-5-sonnet-20241022"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("openai", "o3"),
    ("google", "models/gemini-2.5-pro"),
    ("together", "acme/unpriced-model"),
    ("ollama", "llama3.1:8b"),
]
ENDPOINTS = ["/chat", "/summarise-ticket", "/classify-intent", "/agent-proxy-claude"]
TOKENS = [None, "tok_alpha_00000000001", "tok_beta_000000000002", "tok_gamma_00000000003"]


def random_rows(rng: random.Random, count: int, start: datetime, end: datetime) -> list[Row]:
    rows = []
    span = (end - start).total_seconds()
    for _ in range(count):
        provider, model = rng.choice(MODELS)
        hit = rng.random() < 0.1
        big = rng.random() < 0.05  # past the long-context thresholds
        prompt = rng.randint(150_000, 300_000) if big else rng.randint(0, 5_000)
        row = Row(
            start + timedelta(seconds=rng.random() * span),
            provider,
            model,
            rng.choice(ENDPOINTS),
            rng.choice(TOKENS),
            status_code=rng.choice([200, 200, 200, 429, 500]),
            cache_hit=hit,
        )
        if hit:
            row.prompt_tokens_avoided, row.completion_tokens_avoided = prompt, rng.randint(0, 2_000)
        else:
            row.prompt_tokens, row.completion_tokens = prompt, rng.randint(0, 2_000)
            row.cache_read_tokens = rng.choice([0, rng.randint(0, 20_000)])
            row.cache_write_tokens = rng.choice([0, 0, rng.randint(0, 5_000)])
        rows.append(row)
    return rows


def priced(service, rows: list[Row], start: datetime, end: datetime) -> dict[str, dict]:
    """Spend and savings per key, from single rows priced one by one."""
    table = service.pricing
    out: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        if not start <= r.created_at < end:
            continue
        entry = table.match(r.provider, r.model)
        cost = saved = 0.0
        if entry is not None and r.cache_hit:
            saved = table.saved(entry, r.created_at, r.prompt_tokens_avoided, r.completion_tokens_avoided)
        elif entry is not None:
            cost = table.cost(
                entry, r.created_at, r.prompt_tokens, r.completion_tokens, r.cache_read_tokens, r.cache_write_tokens
            )
        day = r.created_at.astimezone(BERLIN).date().isoformat()
        utc_day = r.created_at.date().isoformat()
        for lens, key in (
            ("utc_day", utc_day),
            ("total", "total"),
            ("provider", r.provider),
            ("endpoint", r.endpoint),
            ("token", r.token_id),
            ("day", day),
        ):
            out[lens][key] += cost
            out[f"saved_{lens}"][key] += saved
        out["requests"]["total"] += 1
    return out


async def read_all(log: LogDB, service) -> list[Row]:
    """The log as it is now, straight from the table (after deletes and late rows)."""
    rows = await service.db.fetch(
        "rows_between",
        start=datetime(1970, 1, 1, tzinfo=UTC),
        end=datetime(9999, 1, 1, tzinfo=UTC),
        **service.aggregator._thresholds,
    )
    out = []
    for r in rows:
        hit = bool(r[5])
        out.append(
            Row(
                datetime.fromtimestamp(r[0] / 1000, UTC),
                r[1],
                r[2],
                r[3],
                r[14],
                cache_hit=hit,
                prompt_tokens=r[8],
                completion_tokens=r[9],
                cache_read_tokens=r[10],
                cache_write_tokens=r[11],
                prompt_tokens_avoided=r[12],
                completion_tokens_avoided=r[13],
            )
        )
    return out


async def check(service, agg: Aggregator, log: LogDB) -> None:
    rows = await read_all(log, service)
    window = parse_window(window="10d", from_=None, to=NOW.isoformat(), tz=BERLIN, default="30d")
    expected = priced(service, rows, window.range.start, window.range.end)
    head = await summary(agg, window, top_window=timedelta(days=2), top=10, filters=Filters())
    assert head["spend"] == pytest.approx(expected["total"]["total"], abs=1e-6)
    assert head["saved_by_cache"] == pytest.approx(expected["saved_total"]["total"], abs=1e-6)
    assert head["requests"] == expected["requests"]["total"]
    for item in head["by_provider"]:
        assert item["spend"] == pytest.approx(expected["provider"][item["provider"]], abs=1e-6)
    by_endpoint = await spend(agg, window, group_by="endpoint", limit=50, filters=Filters())
    assert {i["endpoint"]: round(i["spend"], 6) for i in by_endpoint["items"]} == pytest.approx(
        {k: round(v, 6) for k, v in expected["endpoint"].items()}, abs=1e-6
    )
    by_token = await spend(agg, window, group_by="token", limit=50, filters=Filters())
    assert sorted(round(i["spend"], 6) for i in by_token["items"]) == pytest.approx(
        sorted(round(v, 6) for v in expected["token"].values()), abs=1e-6
    )
    daily = await trend(agg, window, interval="day", group_by=None, top=8, filters=Filters())
    days = {p["date"]: p["spend"] for p in daily["series"][0]["points"]}
    for day, value in expected["day"].items():
        assert days[day] == pytest.approx(value, abs=1e-6), day
    utc = parse_window(window="10d", from_=None, to=NOW.isoformat(), tz=zoneinfo.ZoneInfo("UTC"), default="30d")
    utc_expected = priced(service, rows, utc.range.start, utc.range.end)["utc_day"]
    utc_daily = await trend(agg, utc, interval="day", group_by="provider", top=8, filters=Filters())
    utc_days: dict[str, float] = defaultdict(float)
    for series in utc_daily["series"]:
        for point in series["points"]:
            utc_days[point["date"]] += point["spend"]
    for day, value in utc_expected.items():
        assert utc_days[day] == pytest.approx(value, abs=1e-5), day
    filtered = await summary(agg, window, top_window=timedelta(days=7), top=3, filters=Filters(endpoints=("/chat",)))
    assert filtered["spend"] == pytest.approx(expected["endpoint"]["/chat"], abs=1e-6)


async def test_lenses_equal_the_raw_rows_through_late_rows_closing_hours_and_retention(
    log: LogDB, tmp_path: Path
) -> None:
    rng = random.Random(20261120)
    await log.insert(random_rows(rng, 3000, NOW - timedelta(days=10), NOW))
    clock = {"now": NOW.timestamp()}
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=lambda: clock["now"])
    try:
        await agg.rollups.warm((await agg.log_bounds())[0])
        assert agg.rollups.ready and len(agg.rollups.parts[None]) > 0
        await check(service, agg, log)

        # rows arriving late into the open hour (12:00 is still open at 12:34 with 15 minutes of grace),
        # after the rows around them were read: counted by the next answer
        await log.insert(random_rows(rng, 40, NOW.replace(minute=0, second=0), NOW - timedelta(minutes=1)))
        await check(service, agg, log)

        # an hour closes while the service runs: the rollups take it in, nothing counts twice
        clock["now"] = (NOW + timedelta(hours=2)).timestamp()
        await agg.rollups.advance()
        await check(service, agg, log)

        # retention deletes the oldest days: no stale totals remain for them
        cutoff = NOW - timedelta(days=8, hours=3, minutes=17)
        if log.dialect == "sqlite":
            await log.execute(f"DELETE FROM request_log WHERE created_at < {int(cutoff.timestamp() * 1000)}")
        else:
            await log.execute(f"DELETE FROM request_log WHERE created_at < '{cutoff.isoformat()}'")
        await check(service, agg, log)
    finally:
        await service.close()
