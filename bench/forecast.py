"""The forecast backtest: replay the forecast method (cost_api/watch/forecast.py) over a log.

For every calendar period (month, or ISO week) of the log that it holds whole, a forecast is made at
each local midnight of the period after its first day, from the four weeks before that instant only,
and compared with the period's real total: the absolute percentage error of the projected total,
and whether the 80% band held the truth. Prints the median APE, p90 APE and band coverage per period
kind, and per horizon (days left). The hourly spend comes from the one aggregation path (priced
groups), read once.

    python -m bench.forecast --demo                          # the demo log (cost-api demo, 120 days)
    python -m bench.forecast --url sqlite:////tmp/bench10m.db # any log, e.g. the benchmark's 10M rows
    python -m bench.forecast --url sqlite:////tmp/bench10m.db --time 30   # and time the lenses warm

`--time N` also times /v1/forecast (month, in total and by provider) and /v1/whatif (30 days, one
substitution and a discount) in-process, N times each once the rollups are warm, against /v1/spend
over the same 30 days as the ratio's base: median and p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from cost_api.aggregation.aggregator import Filters
from cost_api.config import load_settings
from cost_api.lenses.forecast import forecast_answer
from cost_api.lenses.spend import spend_answer
from cost_api.lenses.whatif import scenario, whatif_answer
from cost_api.tools.demo.run import run_demo
from cost_api.watch.budgets import period_at
from cost_api.watch.forecast import HISTORY_HOURS, fit
from cost_api.web.service import build_service
from cost_api.windows import HOUR_MS, Range, epoch_ms, from_ms, parse_window

DAY_MS = 24 * HOUR_MS


async def hourly_spend(url: str) -> tuple[np.ndarray, int]:
    """Spend per UTC hour over the whole log, and the epoch hour of the first."""
    settings = load_settings(overrides={"database_url": url, "query_timeout": "600s"}, environ={})
    service = build_service(settings)
    try:
        oldest, newest = await service.aggregator.log_bounds()
        assert oldest is not None and newest is not None, "an empty log"
        first, last = oldest // HOUR_MS, newest // HOUR_MS + 1
        groups = await service.aggregator.groups(Range(from_ms(first * HOUR_MS), from_ms(last * HOUR_MS)))
        hours = groups.slot_starts() // HOUR_MS - first
        return np.bincount(hours, weights=groups.spend, minlength=last - first), first
    finally:
        await service.close()


def backtest(hourly: np.ndarray, first: int, kind: str, tz: zoneinfo.ZoneInfo) -> list[tuple[int, float, bool]]:
    """(days left, APE %, covered) of every forecast over the whole periods of `kind` in the log."""
    out: list[tuple[int, float, bool]] = []
    log_start, log_end = first * HOUR_MS, (first + len(hourly)) * HOUR_MS
    period = period_at(kind, from_ms(log_start), tz)
    while epoch_ms(period.end) <= log_end:
        start, end = epoch_ms(period.start), epoch_ms(period.end)
        if start >= log_start:
            truth = hourly[(start // HOUR_MS) - first : (end // HOUR_MS) - first].sum()
            day = period.start + timedelta(days=1)
            while day < period.end:
                now = epoch_ms(day)
                upto = now // HOUR_MS - first
                profile = fit(hourly[max(0, upto - HISTORY_HOURS) : upto], max(first, now // HOUR_MS - HISTORY_HOURS))
                so_far = hourly[start // HOUR_MS - first : upto].sum()
                expected = profile.ahead(now, end)
                low, high = profile.band(expected, (end - now) / HOUR_MS)
                projected = so_far + expected
                ape = abs(projected - truth) / truth * 100 if truth else 0.0
                out.append(((end - now) // DAY_MS, ape, so_far + low <= truth <= so_far + high))
                day += timedelta(days=1)
        period = period_at(kind, period.end, tz)
    return out


def report(name: str, kind: str, results: list[tuple[int, float, bool]]) -> str:
    if not results:
        return f"{name:<10} {kind:<6} no whole period in the log\n"
    apes = [r[1] for r in results]
    covered = sum(r[2] for r in results) / len(results) * 100
    line = (
        f"{name:<10} {kind:<6} forecasts {len(results):>4}  median APE {statistics.median(apes):5.1f}%  "
        f"p90 APE {np.percentile(apes, 90):5.1f}%  band coverage {covered:5.1f}%\n"
    )
    for lo, hi in ((1, 7), (8, 14), (15, 31)):
        part = [r for r in results if lo <= r[0] <= hi]
        if part:
            cov = sum(r[2] for r in part) / len(part) * 100
            med = statistics.median(r[1] for r in part)
            line += (
                f"{'':<17}{lo:>2}–{hi:<2} days left: n {len(part):>3}  median APE {med:5.1f}%  coverage {cov:5.1f}%\n"
            )
    return line


async def timings(url: str, n: int) -> list[tuple[str, float, float, float]]:
    """(lens, median ms, p99 ms, median ÷ spend's median) of each lens, warm, `n` runs each."""
    settings = load_settings(overrides={"database_url": url, "query_timeout": "600s"}, environ={})
    service = build_service(settings)
    agg, tz = service.aggregator, zoneinfo.ZoneInfo("UTC")
    window = parse_window(window="30d", from_=None, to=None, tz=tz, default="30d", now=agg.now())
    sc = scenario(agg.pricing, {}, maps=["openai/gpt-4o=openai/gpt-4.1-mini"], discounts=["anthropic:15"], book=None)
    lenses = {
        "spend 30d by provider": lambda: spend_answer(agg, window, group_by="provider", limit=50, filters=Filters()),
        "forecast month": lambda: forecast_answer(
            agg, period="month", tz=tz, group_by=None, limit=50, filters=Filters()
        ),
        "forecast month by provider": lambda: forecast_answer(
            agg, period="month", tz=tz, group_by="provider", limit=50, filters=Filters()
        ),
        "whatif 30d by provider": lambda: whatif_answer(
            agg, window, sc, group_by="provider", limit=50, filters=Filters()
        ),
    }
    try:
        await agg.warm()
        out = []
        for name, call in lenses.items():
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                await call()
                times.append((time.perf_counter() - t0) * 1000)
            out.append((name, statistics.median(times), float(np.percentile(times, 99))))
        base = out[0][1]
        return [(name, med, p99, med / base) for name, med, p99 in out]
    finally:
        await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", default=[], help="a log's database URL (repeatable)")
    parser.add_argument("--demo", action="store_true", help="also generate and replay the demo log")
    parser.add_argument("--days", type=int, default=120, help="the demo log's length in days")
    parser.add_argument("--tz", default="UTC")
    parser.add_argument("--time", type=int, default=0, metavar="N", help="also time the lenses, N runs each")
    args = parser.parse_args()
    tz = zoneinfo.ZoneInfo(args.tz)
    logs = [(Path(u).name or u, u) for u in args.url]
    with tempfile.TemporaryDirectory() as tmp:
        if args.demo:
            url = f"sqlite:///{tmp}/demo.db"
            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            run_demo(url, days=args.days, now=now, progress=False)
            logs.insert(0, ("demo", url))
        for name, url in logs:
            hourly, first = asyncio.run(hourly_spend(url))
            print(f"{name}: {len(hourly)} hours, ${hourly.sum():,.2f}", file=sys.stderr)
            for kind in ("month", "week"):
                print(report(name, kind, backtest(hourly, first, kind, tz)), end="")
            if args.time:
                for lens, med, p99, ratio in asyncio.run(timings(url, args.time)):
                    print(f"{name:<10} {lens:<28} median {med:7.1f} ms  p99 {p99:7.1f} ms  ×{ratio:4.2f} of spend")


if __name__ == "__main__":
    main()
