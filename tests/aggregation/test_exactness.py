"""Every lens equals the direct aggregate over raw rows, to the cent, on both dialects — with the
closed hours served from the rollups, rows arriving late into an open hour, hours closing while the
service runs, a retention job deleting the oldest days, late rows and backfills landing in closed
hours, deletes and updates in the middle of the log, and a restart after each.

The expected figures are computed here from `SELECT *` over the log, each row priced on its own with
the pricing engine (whose prices tests/pricing/test_pricing_engine.py checks against hand-computed dollars).
"""

from __future__ import annotations

import dataclasses
import random
import zoneinfo
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from cost_api.aggregation import aggregator
from cost_api.aggregation.aggregator import LAST_HOUR, WHOLE_SLOT_MS, Aggregator, Filters
from cost_api.config import load_settings
from cost_api.lenses.spend import spend_answer
from cost_api.lenses.summary import summary_answer
from cost_api.lenses.trend import trend
from cost_api.pricing.rates import service_tier
from cost_api.store.errors import TooManyGroups
from cost_api.web.service import build_service
from cost_api.windows import Range, parse_window

from ..clock import FakeClock
from ..logdb import LogDB, Row
from ..reads import recorded_reads

NOW = datetime(2026, 11, 20, 12, 34, 56, tzinfo=UTC)


async def summary(agg: Aggregator, *args: Any, **kwargs: Any) -> Any:
    """/v1/summary's answer as the JSON reads (dicts and lists)."""
    return msgspec.to_builtins(await summary_answer(agg, *args, **kwargs))


async def spend(agg: Aggregator, *args: Any, **kwargs: Any) -> Any:
    """/v1/spend's answer as the JSON reads (dicts and lists)."""
    return msgspec.to_builtins(await spend_answer(agg, *args, **kwargs))


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


TIERS = [None] * 6 + ["standard", "batch", "flex", "priority", "scale"]  # "scale": no rate anywhere


def random_rows(rng: random.Random, count: int, start: datetime, end: datetime, optional: bool = True) -> list[Row]:
    """Random rows; `optional`: with the optional columns' detail (1-hour writes, tiers, estimated usage)."""
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
        if optional:
            row.service_tier = rng.choice(TIERS)
            row.cache_write_1h_tokens = rng.choice([0, rng.randint(0, row.cache_write_tokens)])
            row.usage_exact = rng.choice([None, None, True, False])
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
        tier = r.service_tier
        if entry is not None and r.cache_hit:
            saved = table.saved(entry, r.created_at, r.prompt_tokens_avoided, r.completion_tokens_avoided, tier)
        elif entry is not None:
            cost = table.cost(
                entry,
                r.created_at,
                r.prompt_tokens,
                r.completion_tokens,
                r.cache_read_tokens,
                r.cache_write_tokens,
                r.cache_write_1h_tokens,
                tier,
            )
        if entry is not None and service_tier(tier) is not None:  # a tier: priced at standard without its rates?
            size = r.prompt_tokens + r.cache_read_tokens + r.cache_write_tokens
            size_class = table.size_class(r.prompt_tokens_avoided if r.cache_hit else size)
            out["no_tier_rate"]["total"] += entry.tier_rates(r.created_at.date(), size_class, service_tier(tier))[1]
        out["estimated"]["total"] += r.usage_exact is False
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
        max_id=None,
        **service.aggregator._thresholds,
    )
    out = []
    for r in rows:
        if r[16]:  # a bad row (negative counts, no model): in no figure (tests/api/test_data_quality.py)
            continue
        hit = bool(r[5])
        tier, write_1h, estimated = r[17:]  # the optional columns, after the quality
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
                cache_write_1h_tokens=write_1h,
                service_tier=tier,
                usage_exact=False if estimated else None,
            )
        )
    return out


async def check(service, agg: Aggregator, log: LogDB, span: str = "10d") -> None:
    rows = await read_all(log, service)
    window = parse_window(window=span, from_=None, to=NOW.isoformat(), tz=BERLIN, default="30d", now=NOW)
    expected = priced(service, rows, window.range.start, window.range.end)
    head = await summary(agg, window, top_window=timedelta(days=2), top=10, filters=Filters())
    assert head["spend"] == pytest.approx(expected["total"]["total"], abs=1e-6)
    assert head["saved_by_cache"] == pytest.approx(expected["saved_total"]["total"], abs=1e-6)
    assert head["requests"] == expected["requests"]["total"]
    assert head["pricing"]["estimated_requests"] == expected["estimated"]["total"]
    assert head["pricing"]["no_tier_rate_requests"] == expected["no_tier_rate"]["total"]
    for item in head["by_provider"]:
        assert item["spend"] == pytest.approx(expected["provider"][item["provider"]], abs=1e-6)
    by_endpoint = await spend(agg, window, group_by="endpoint", limit=50, filters=Filters())
    # the served figures are rounded to 6 decimals; rounding the expected ones too could put them 1e-6 apart
    assert {i["endpoint"]: i["spend"] for i in by_endpoint["items"]} == pytest.approx(
        dict(expected["endpoint"]), abs=1e-6
    )
    by_token = await spend(agg, window, group_by="token", limit=50, filters=Filters())
    assert sorted(i["spend"] for i in by_token["items"]) == pytest.approx(sorted(expected["token"].values()), abs=1e-6)
    daily = await trend(agg, window, interval="day", group_by=None, top=8, filters=Filters())
    days = {p.date: p.spend for p in daily.series[0].points}
    for day, value in expected["day"].items():
        assert days[day] == pytest.approx(value, abs=1e-6), day
    utc = parse_window(window=span, from_=None, to=NOW.isoformat(), tz=zoneinfo.ZoneInfo("UTC"), default="30d", now=NOW)
    utc_expected = priced(service, rows, utc.range.start, utc.range.end)["utc_day"]
    utc_daily = await trend(agg, utc, interval="day", group_by="provider", top=8, filters=Filters())
    utc_days: dict[str, float] = defaultdict(float)
    for series in utc_daily.series:
        for point in series.points:
            assert isinstance(point.date, str)
            utc_days[point.date] += point.spend
    for day, value in utc_expected.items():
        assert utc_days[day] == pytest.approx(value, abs=1e-5), day
    filtered = await summary(agg, window, top_window=timedelta(days=7), top=3, filters=Filters(endpoints=("/chat",)))
    assert filtered["spend"] == pytest.approx(expected["endpoint"]["/chat"], abs=1e-6)


async def test_lenses_equal_the_raw_rows_through_late_rows_closing_hours_and_retention(
    log: LogDB, tmp_path: Path
) -> None:
    rng = random.Random(20261120)
    await log.insert(random_rows(rng, 3000, NOW - timedelta(days=10), NOW))
    clock = FakeClock(NOW)
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=clock)
    try:
        await agg.warm()
        assert agg.rollups.ready and len(agg.rollups.parts[None]) > 0
        await check(service, agg, log)

        # rows arriving late into the open hour (12:00 is still open at 12:34 with 15 minutes of grace),
        # after the rows around them were read: counted by the next answer
        await log.insert(random_rows(rng, 40, NOW.replace(minute=0, second=0), NOW - timedelta(minutes=1)))
        await check(service, agg, log)

        # an hour closes while the service runs: the rollups take it in, nothing counts twice
        clock.set(NOW + timedelta(hours=2))
        await agg.sync()
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


async def test_rows_landing_where_windows_cut_closed_hours_or_among_the_newest_count_at_once(log: LogDB) -> None:
    """The closed hours a window's edges cut are summed from their kept rows per span asked (kept per
    span), and the newest open rows per second (kept between answers): late rows landing in a cut
    hour (inside the window or before its start) and rows joining the newest change the next answer
    exactly as the log does. Without the kept sums following the rows, the second check fails."""
    rng = random.Random(20261206)
    await log.insert(random_rows(rng, 2000, NOW - timedelta(days=21), NOW - timedelta(seconds=30)))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    try:
        await agg.warm()
        await check(service, agg, log)  # 10 days to NOW (12:34:56), the top lists over 2 days
        for _ in range(2):  # the second time, from the kept sums
            await check(service, agg, log)
        # each window's edges: the current one starts 10 days back, the previous one 20, the top ones
        # 2 and 4 days back; all inside an hour 12:00-13:00, which is closed and kept as single rows
        for days in (2, 4, 10, 20):
            edge = NOW - timedelta(days=days)
            late = random_rows(rng, 3, edge, edge + timedelta(minutes=20))  # inside the window
            late += random_rows(rng, 3, edge - timedelta(minutes=30), edge)  # before it (or in the previous)
            await log.insert(late)
        await check(service, agg, log)
        # the newest rows, a second or two before the windows' end, and at it (counted in none)
        for seconds in (4, 2, 1):
            newest = NOW - timedelta(seconds=seconds)
            await log.insert(random_rows(rng, 3, newest, newest + timedelta(seconds=1)))
            await check(service, agg, log)
        await log.insert([Row(NOW, prompt_tokens=1_000_000)])
        await check(service, agg, log)
    finally:
        await service.close()


async def test_lenses_equal_the_raw_rows_before_the_rollups_are_warm(
    log: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the warm-up (a cold start, a memory cap that dropped a rollup) every answer is SQL over its
    window: exact all the same; an answer that needs no bucket under a UTC day reads day groups (24×
    fewer than hours to price), an hourly one hours, and one for totals only one slot for the window
    (cut where a rate changes)."""
    rng = random.Random(20261205)
    await log.insert(random_rows(rng, 3000, NOW - timedelta(days=10), NOW))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    reads = recorded_reads(monkeypatch, service.db)
    try:
        assert not agg.rollups.ready
        await check(service, agg, log)
        windows = [p for name, p in reads if name == "groups" and p["end"] - p["start"] > timedelta(days=2)]
        # the hourly trend (a zone's days), the daily one by day, the totals (summary, spend) whole
        assert {p["slot_ms"] for p in windows} == {3_600_000, 86_400_000, WHOLE_SLOT_MS}
    finally:
        await service.close()


def groups_answers(monkeypatch: pytest.MonkeyPatch, db: Any) -> list[tuple[str, int, int | None]]:
    """Every `groups` read from now on: its dimension, its number of parts and the groups it answered
    (None: stopped by the engine past `max_groups`, TooManyGroups)."""
    answers: list[tuple[str, int, int | None]] = []
    fetch = db.fetch

    async def counted(name: str, **params: Any) -> Any:
        try:
            rows = await fetch(name, **params)
        except TooManyGroups:
            answers.append((params["dim"], params["parts"], None))
            raise
        if name == "groups":
            answers.append((params["dim"], params["parts"], len(rows)))
        return rows

    monkeypatch.setattr(db, "fetch", counted)
    return answers


async def test_reads_by_token_past_max_groups_come_in_parts_to_the_same_figures(
    log: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read by token whose groups pass `max_groups` (ClickHouse stops it as its hash table passes
    them, SQLite and Postgres answer one group more) is read again as two parts by a hash of the token,
    and so on until each part fits: every lens equals the raw rows to the cent, cold (all in SQL) and
    warm (the token rollup read a day at a time), no read by token answers more than `max_groups` + 1
    groups, and the next read of its kind begins in the parts the last one answered in."""
    rng = random.Random(20261208)
    tokens = [f"tok_{i:02d}_{'x' * 16}" for i in range(40)]
    rows = [
        dataclasses.replace(r, token_id=rng.choice([None, *tokens]))
        for r in random_rows(rng, 3000, NOW - timedelta(days=10), NOW)
    ]
    await log.insert(rows)
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    agg.max_groups = 200
    answers = groups_answers(monkeypatch, service.db)
    try:
        await check(service, agg, log)  # cold: in SQL
        by_token = [(parts, n) for dim, parts, n in answers if dim == "token"]
        assert max(parts for parts, _ in by_token) >= 4
        assert any(n is None or n > 200 for _, n in by_token)  # stopped, then read in parts
        assert all(n is None or n <= 201 for _, n in by_token)
        stopped = sum(n is None or n > 200 for _, n in by_token)
        answers.clear()
        await check(service, agg, log)  # each read begins in the parts its kind last answered in
        again = [(parts, n) for dim, parts, n in answers if dim == "token"]
        assert min(parts for parts, _ in again) >= 2
        assert sum(n is None or n > 200 for _, n in again) < stopped
        await agg.warm()
        assert "token" in agg.rollups.parts
        answers.clear()
        await check(service, agg, log)  # warm
        assert all(n is None or n <= 201 for dim, _, n in answers if dim == "token")
    finally:
        await service.close()


async def test_one_token_past_max_groups_on_its_own_is_read_whole(log: LogDB, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token whose own groups pass `max_groups` cannot be split by its hash: at MAX_PARTS its part is
    read with no limit, to the same figures."""
    monkeypatch.setattr(aggregator, "MAX_PARTS", 4)
    await log.insert(
        [
            Row(NOW - timedelta(days=2), "openai", "gpt-4o-mini", token_id="tok_heavy", prompt_tokens=1_000_000),
            Row(NOW - timedelta(days=2), "openai", "gpt-4o", token_id="tok_heavy", prompt_tokens=1_000_000),
            Row(NOW - timedelta(days=1), "openai", "gpt-4o", token_id="tok_heavy", completion_tokens=100_000),
        ]
    )
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    agg.max_groups = 1
    answers = groups_answers(monkeypatch, service.db)
    try:
        window = parse_window(window="7d", from_=None, to=None, tz=None, default="7d", now=NOW)
        answer = await spend(agg, window, group_by="token", limit=10, filters=Filters())
        # gpt-4o-mini: 1M input at $0.15; gpt-4o: 1M input at $2.50, 0.1M output at $10 per 1M ($1.00)
        assert [(i["token"], i["spend"]) for i in answer["items"]] == [("tok_…", 3.65)]
        assert ("token", 4, 3) in answers  # its part, with no limit: three groups (two models, two size classes)
    finally:
        await service.close()


def sql_time(log: LogDB, when: datetime) -> str:
    return str(int(when.timestamp() * 1000)) if log.dialect == "sqlite" else f"'{when.isoformat()}'"


async def test_every_committed_row_counts_wherever_and_whenever_it_lands(log: LogDB) -> None:
    """Late rows beyond the grace, a backfill of old rows with new ids, a delete and an update in the
    middle (found by the reconciliation sweep), each checked live and after a restart."""
    rng = random.Random(14)
    await log.insert(random_rows(rng, 2000, NOW - timedelta(days=10), NOW))
    bad_hour = NOW - timedelta(days=2)  # bad rows: in no figure, and no difference for the sweep
    await log.insert([Row(bad_hour, prompt_tokens=-500), Row(bad_hour, model="", prompt_tokens=900)])
    await log.insert([Row(bad_hour, prompt_tokens=1_000)])  # exact usage, until an update below says not
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))

    async def live_and_restarted() -> None:
        await check(service, agg, log, span="14d")
        restarted = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
        await restarted.warm()
        await check(service, restarted, log, span="14d")

    try:
        await agg.warm()
        await check(service, agg, log, span="14d")
        assert await agg.reconcile(0, LAST_HOUR) == 0

        # a row dated 5 hours back (its hour closed long ago): counted by the next answer
        await log.insert(random_rows(rng, 1, NOW - timedelta(hours=5, minutes=10), NOW - timedelta(hours=5)))
        await live_and_restarted()

        # a backfill of old rows with new ids, inside the log's span and before its first row
        await log.insert(random_rows(rng, 300, NOW - timedelta(days=9), NOW - timedelta(days=8)))
        await log.insert(random_rows(rng, 200, NOW - timedelta(days=13), NOW - timedelta(days=11)))
        await live_and_restarted()

        # a delete and an update in the middle, and a delete in the open hour: no incremental read sees
        # them; the sweep compares per-hour fingerprints and reads the hours that differ again
        mid, day_ago = NOW - timedelta(days=3), NOW - timedelta(days=1)
        await log.execute(
            f"DELETE FROM request_log WHERE created_at >= {sql_time(log, mid - timedelta(hours=2))}"
            f" AND created_at < {sql_time(log, mid)};"
            f"UPDATE request_log SET prompt_tokens = prompt_tokens + 1000, model = 'o3'"
            f" WHERE created_at >= {sql_time(log, day_ago)}"
            f" AND created_at < {sql_time(log, day_ago + timedelta(hours=1))}"
            f" AND NOT cache_hit;"
            f"DELETE FROM request_log WHERE created_at >= {sql_time(log, NOW - timedelta(minutes=20))};"
            # a corrected flag: only the estimated-requests count of that hour changes
            f"UPDATE request_log SET usage_exact = {'0' if log.dialect == 'sqlite' else 'false'}"
            f" WHERE created_at >= {sql_time(log, bad_hour.replace(minute=0, second=0))}"
            f" AND created_at < {sql_time(log, bad_hour.replace(minute=0, second=0) + timedelta(hours=1))};"
        )
        differing = await agg.reconcile(0, LAST_HOUR)
        assert differing >= 4
        assert await agg.reconcile(0, LAST_HOUR) == 0  # read again: nothing differs any more
        await live_and_restarted()
    finally:
        await service.close()


async def test_a_sweep_reads_again_only_the_kept_rows_of_the_hours_that_differ(
    log: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window that starts inside a closed hour counts that hour from its single rows, kept between
    answers. A sweep that finds the hour unchanged keeps them (dropping them made the first answer after
    every sweep read them again); one that finds it changed drops them, and the answer reads them anew."""
    start = datetime(2026, 11, 19, 11, 20, tzinfo=UTC)  # cuts the hour 11:00-12:00 a day before NOW
    inside = start + timedelta(minutes=10)
    await log.insert(
        [
            Row(start - timedelta(minutes=15)),  # in the cut hour, before the window: not counted
            Row(inside),
            Row(start + timedelta(minutes=30), prompt_tokens=7),
            Row(datetime(2026, 11, 19, 15, 5, tzinfo=UTC)),
            Row(datetime(2026, 11, 20, 9, 5, tzinfo=UTC)),
        ]
    )
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    reads = recorded_reads(monkeypatch, service.db)
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    window = Range(start, NOW)
    try:
        await agg.warm()
        assert (await agg.groups(window)).total().requests == 4  # 2 of the cut hour's 3, and 2 more
        assert await agg.reconcile(0, LAST_HOUR) == 0
        reads.clear()
        assert (await agg.groups(window)).total().requests == 4
        assert "rows_between" not in [name for name, _ in reads]  # the cut hour's rows, kept

        await log.execute(f"DELETE FROM request_log WHERE created_at = {sql_time(log, inside)}")
        assert await agg.reconcile(0, LAST_HOUR) == 1
        reads.clear()
        total = (await agg.groups(window)).total()
        assert (total.requests, total.prompt_tokens) == (3, 7)
        assert "rows_between" in [name for name, _ in reads]  # read anew
    finally:
        await service.close()


async def test_answers_go_on_while_hours_found_changed_are_read_again(
    log: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hours a sweep finds changed are read again without the lock every answer takes first (to take
    in new rows, `sync`): held through the read, a backfill's 241 hours kept answers waiting ~14 s on
    a 10M-row Postgres log, 504. Late rows an answer takes in meanwhile, in those very hours, count
    once: on top of the hours read again, which lack them."""
    rng = random.Random(17)
    await log.insert(random_rows(rng, 600, NOW - timedelta(days=3), NOW))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    try:
        await agg.warm()
        mid = (NOW - timedelta(days=2)).replace(minute=0, second=0)
        await log.execute(
            f"DELETE FROM request_log WHERE created_at >= {sql_time(log, mid)}"
            f" AND created_at < {sql_time(log, mid + timedelta(hours=4))}"
        )
        await log.insert(random_rows(rng, 40, mid, mid + timedelta(hours=4)))  # late rows in the same hours
        fetch, synced = service.db.fetch, []

        async def fetched(name: str, **params: Any) -> Any:
            if name == "groups" and not synced:  # the first read of the hours again: an answer arrives
                synced.append(agg._lock.locked())
                if not synced[0]:  # (held, it would wait for this very read)
                    await agg.sync()
            return await fetch(name, **params)

        monkeypatch.setattr(service.db, "fetch", fetched)
        assert await agg.reconcile(0, LAST_HOUR) == 4
        assert synced == [False]  # the lock was free: the answer went on
        monkeypatch.setattr(service.db, "fetch", fetch)
        assert await agg.reconcile(0, LAST_HOUR) == 0
        await check(service, agg, log, span="4d")
    finally:
        await service.close()


async def test_a_log_without_the_optional_columns_stays_exact(log: LogDB) -> None:
    """The same lenses, rollups, late rows and sweep on a log of the first shape (the queries read the
    optional columns' defaults), which a sweep must not see as differing from what is held."""
    await log.drop_optional_columns()
    rng = random.Random(16)
    await log.insert(random_rows(rng, 1500, NOW - timedelta(days=10), NOW, optional=False))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    try:
        await agg.warm()
        assert service.db.log_columns is not None and service.db.log_columns.read == ()
        await check(service, agg, log)
        assert await agg.reconcile(0, LAST_HOUR) == 0
        await log.insert(random_rows(rng, 50, NOW - timedelta(days=3), NOW, optional=False))  # late rows
        mid = NOW - timedelta(days=4)
        await log.execute(
            f"DELETE FROM request_log WHERE created_at >= {sql_time(log, mid)}"
            f" AND created_at < {sql_time(log, mid + timedelta(hours=3))}"
        )
        assert await agg.reconcile(0, LAST_HOUR) >= 1
        assert await agg.reconcile(0, LAST_HOUR) == 0
        await check(service, agg, log)
    finally:
        await service.close()


async def test_the_sweep_reaches_every_hour_on_its_schedule(log: LogDB) -> None:
    """A delete 9 days back is found by the older hours' sweep, a day at a time, within its period."""
    from cost_api.aggregation.aggregator import SWEEP_OLDER_SECONDS

    rng = random.Random(15)
    await log.insert(random_rows(rng, 1500, NOW - timedelta(days=10), NOW))
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    try:
        await agg.warm()
        old = NOW - timedelta(days=9)
        await log.execute(
            f"DELETE FROM request_log WHERE created_at >= {sql_time(log, old)}"
            f" AND created_at < {sql_time(log, old + timedelta(hours=6))}"
        )
        for step in range(0, SWEEP_OLDER_SECONDS + 1, 10):  # the maintenance ticks of one period
            await agg.sweep(float(step))
        await check(service, agg, log)
    finally:
        await service.close()


async def test_a_row_committed_between_the_first_reads_counts_once(log: LogDB) -> None:
    """The open rows are first read up to the id read just before; a row committed in between comes
    through the incremental read, once (it was counted twice when the two reads did not agree)."""
    await log.insert([Row(NOW - timedelta(minutes=30), prompt_tokens=1_000_000)])
    service = build_service(load_settings(environ={}, overrides={"database_url": log.url}))
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW))
    fetch = service.db.fetch

    async def committing_between(name: str, **params):
        rows = await fetch(name, **params)
        if name == "last_id":
            await log.insert([Row(NOW - timedelta(minutes=10), prompt_tokens=1_000_000)])
        return rows

    agg.rows._fetch = committing_between
    agg.db.fetch = committing_between  # type: ignore[method-assign]
    try:
        await agg.warm()
        window = parse_window(window="1h", from_=None, to=NOW.isoformat(), tz=BERLIN, default="30d", now=NOW)
        head = await summary(agg, window, top_window=timedelta(hours=1), top=3, filters=Filters())
        assert head["requests"] == 2
        assert head["spend"] == pytest.approx(2 * 0.15, abs=1e-9)  # gpt-4o-mini: $0.15 per 1M input tokens
    finally:
        await service.close()
