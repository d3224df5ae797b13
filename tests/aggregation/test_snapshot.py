"""The rollups' snapshot on both dialects: restored when it matches the log, and which hours are
read again when it does not (counted by the rollups' `hours_read`), with every answer equal to
totals computed by hand. The clock is injected: the horizon never moves during a test.

Every row is gpt-4o-mini ($0.15 per million input tokens, $0.60 per million output tokens).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cost_api.aggregation import aggregator as aggregator_module
from cost_api.aggregation import snapshot as snapshot_module
from cost_api.aggregation.aggregator import Aggregator
from cost_api.aggregation.snapshot import Snapshots, snapshot_path
from cost_api.config import load_settings
from cost_api.errors import WarmingUp
from cost_api.store import base as store_base
from cost_api.web.service import Service, build_service
from cost_api.windows import HOUR_MS, Range, epoch_ms

from ..clock import FakeClock
from ..logdb import LogDB, Row
from ..reads import Gate, recorded_reads

NOW = datetime(2026, 11, 20, 12, 34, tzinfo=UTC)
START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # four closed hours, 08:00 to 12:00
HORIZON = epoch_ms(NOW - timedelta(minutes=15)) // HOUR_MS  # 12:00 still open with 15 minutes of grace
FIRST = epoch_ms(START) // HOUR_MS
WINDOW = Range(START, NOW)
MONTH = Range(NOW - timedelta(days=30), NOW)  # more than COLD_READ_HOURS closed hours


def row(hour: int, prompt: int = 1_000_000, completion: int = 0) -> Row:
    return Row(START + timedelta(hours=hour, minutes=10), prompt_tokens=prompt, completion_tokens=completion)


@pytest.fixture
async def service(log: LogDB, tmp_path: Path) -> AsyncIterator[Service]:
    # per hour 08–11 one row of 1M input tokens ($0.15); 10:00 also 1M output tokens ($0.60)
    await log.insert([row(0), row(1), row(2, completion=1_000_000), row(3)])
    built = build_service(load_settings(environ={}, overrides={"database_url": log.url, "cache_dir": str(tmp_path)}))
    yield built
    await built.close()


def snapshots(service: Service, pricing_version: str | None = None) -> Snapshots:
    pricing = service.pricing
    if pricing_version is not None:
        pricing = type(pricing)(pricing_version, pricing.thresholds, pricing.entries)
    directory = Path(str(service.settings.cache_dir))
    return Snapshots(snapshot_path(directory, service.settings.database_url), pricing, service.db.fetch)


async def started(service: Service, store: Snapshots | None = None) -> Aggregator:
    """A warm aggregator, as after `cost-api serve` starts, at NOW."""
    agg = Aggregator(
        service.db,
        service.pricing,
        rollup_grace=900,
        clock=FakeClock(NOW),
        snapshots=store or snapshots(service),
    )
    await agg.warm()
    return agg


async def spend(agg: Aggregator, window: Range = WINDOW) -> float:
    return (await agg.groups(window)).total().spend


async def saved_after_cold_start(service: Service) -> None:
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (0, HORIZON - FIRST)
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)
    store = snapshots(service)
    await store.save(agg.rollups.held(), agg.vocab, agg.rows.bound())
    assert store.path.is_file()


async def test_a_valid_snapshot_is_restored_without_reading_an_hour(service: Service) -> None:
    await saved_after_cold_start(service)
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (HORIZON - FIRST, 0)
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)
    by_hour = (await agg.groups(WINDOW)).by("slot")
    assert sorted(by_hour) == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3]
    assert by_hour[FIRST + 2].spend == pytest.approx(0.75, abs=1e-9)


async def test_an_answer_during_the_restore_waits_for_it_instead_of_reading_its_window(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer asked while a snapshot is restored (the rollups not ready yet) waits for the restore
    (at most RESTORE_WAIT_SECONDS), then answers from memory: its window read in SQL would hold the
    connections the restore needs (on 10M rows it did, and answered 504)."""
    await saved_after_cold_start(service)
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW), snapshots=snapshots(service))
    reads = recorded_reads(monkeypatch, service.db)
    warm = asyncio.create_task(agg.warm())
    await asyncio.sleep(0)  # the warm-up begins (a server's begins at start-up, before it listens)
    assert agg.rollups.warming and not agg.rollups.ready
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)  # asked before the restore ran
    await warm
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (HORIZON - FIRST, 0)
    windows = [p for name, p in reads if name == "groups" and p["end"] - p["start"] > timedelta(hours=1)]
    assert windows == []  # the restore's own reads are of no hours; the answer read only its open rows


async def test_a_long_answer_that_a_restore_outlasts_is_a_503_on_every_dialect(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore held past the answers' wait (RESTORE_WAIT_SECONDS, 0 here): an answer over more than
    COLD_READ_HOURS closed hours is a 503 (`WarmingUp`), ClickHouse's too (at 100M rows a restore took
    7–11 s, and the page's 30-day summary, read in SQL after the wait, was a 504 past query_timeout);
    a shorter one is read in SQL. Once restored, both come from memory."""
    await saved_after_cold_start(service)
    monkeypatch.setattr(aggregator_module, "RESTORE_WAIT_SECONDS", 0.0)
    agg = Aggregator(service.db, service.pricing, rollup_grace=900, clock=FakeClock(NOW), snapshots=snapshots(service))
    gate = Gate(agg, monkeypatch)
    warm = asyncio.create_task(agg.warm())
    await gate.reached.wait()  # the restore's first read of the log
    with pytest.raises(WarmingUp) as refused:
        await spend(agg, MONTH)
    assert refused.value.retry_after == 5
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)  # 4 closed hours: SQL
    gate.open()
    await warm
    assert agg.rollups.hours_restored == HORIZON - FIRST
    assert await spend(agg, MONTH) == await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)


async def test_a_late_row_in_a_closed_hour_reads_that_hour_again(service: Service, log: LogDB) -> None:
    await saved_after_cold_start(service)
    await log.insert([row(1, prompt=2_000_000)])  # $0.30, committed after the save, dated 09:10
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (HORIZON - FIRST - 1, 1)
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60 + 0.30, abs=1e-9)


async def test_a_restores_reads_go_before_the_answers_queries(
    service: Service, log: LogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every answer waits for a restore: its reads (the hour a late row changed, read again) are not
    background reads, which would wait behind the answers' queries in flight."""
    await saved_after_cold_start(service)
    await log.insert([row(1, prompt=2_000_000)])  # $0.30, committed after the save, dated 09:10
    background: list[str] = []
    fetch = service.db.fetch

    async def recorded(name: str, **params: Any) -> Any:
        if store_base.in_background():
            background.append(name)
        return await fetch(name, **params)

    monkeypatch.setattr(service.db, "fetch", recorded)
    agg = await started(service)
    assert agg.rollups.hours_read == 1
    assert background == []
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60 + 0.30, abs=1e-9)


async def test_a_deleted_row_reads_its_hour_again(service: Service, log: LogDB) -> None:
    await saved_after_cold_start(service)
    await log.execute("DELETE FROM request_log WHERE completion_tokens > 0")  # the 10:00 row, $0.75
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (HORIZON - FIRST - 1, 1)
    assert await spend(agg) == pytest.approx(3 * 0.15, abs=1e-9)


async def test_a_corrupt_snapshot_is_ignored(service: Service) -> None:
    await saved_after_cold_start(service)
    path = snapshots(service).path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + bytes(64))
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (0, HORIZON - FIRST)
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)


async def test_a_snapshot_of_another_price_table_or_format_is_ignored(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    await saved_after_cold_start(service)
    agg = await started(service, snapshots(service, pricing_version="another"))
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (0, HORIZON - FIRST)
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)

    monkeypatch.setattr(snapshot_module, "FORMAT", snapshot_module.FORMAT + 1)
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (0, HORIZON - FIRST)
    assert await spend(agg) == pytest.approx(4 * 0.15 + 0.60, abs=1e-9)


async def test_a_snapshot_of_another_database_reads_every_hour(service: Service, log: LogDB) -> None:
    """The same URL, another log behind it (the rows written anew: other ids, other tokens)."""
    await saved_after_cold_start(service)
    await log.execute("DELETE FROM request_log")
    await log.insert([replace(row(h), prompt_tokens=3_000_000) for h in range(4)])  # $0.45 an hour
    agg = await started(service)
    assert (agg.rollups.hours_restored, agg.rollups.hours_read) == (HORIZON - FIRST - 4, 4)
    assert await spend(agg) == pytest.approx(4 * 0.45, abs=1e-9)


async def test_an_hour_changed_between_warm_up_and_save_is_read_again(service: Service, log: LogDB) -> None:
    """A delete the rollups have not seen yet when the snapshot is saved: that hour is saved without
    its figures, and the next start reads it from the log."""
    agg = await started(service)
    await log.execute("DELETE FROM request_log WHERE completion_tokens > 0")  # the 10:00 row, $0.75
    store = snapshots(service)
    await store.save(agg.rollups.held(), agg.vocab, agg.rows.bound())
    restarted = await started(service)
    assert (restarted.rollups.hours_restored, restarted.rollups.hours_read) == (HORIZON - FIRST - 1, 1)
    assert await spend(restarted) == pytest.approx(3 * 0.15, abs=1e-9)
