"""The sweep benchmark: what keeping the rollups exact costs on a 10M-row log, SQLite and Postgres.

For each dialect and size it takes the demo log (60 days; a SQLite file already generated under
bench/data is reused, through a copy it may change) and measures in-process, with the aggregator's
clock at the log's end (the instant it was generated up to):

- `warm()`: every closed hour into the rollups;
- `sync()` with nothing new (median and p99), and after appending 1,000 rows to the open hours;
- `reconcile()` of the recent sweep (the last SWEEP_RECENT_HOURS and the open hours) with nothing
  changed, and of one older day (the older sweep's chunk): wall and CPU time (this process, plus
  the Postgres backends serving it);
- a DELETE of 200 rows in the hour 10 hours back, then an UPDATE of one token count 3 days back:
  the recent sweep's time (and RSS peak) to find and read them again; then the 30-day requests
  must equal a SQL count, and the last 4 days' spend the same lens computed by SQL over the raw rows;
- a backfill of 500,000 rows dated 20-40 days back (copies of the log's rows with new ids),
  committed after warm-up (the insert is not timed): the time `catch_up()` (the maintenance loop's
  intake, a page at a time) takes to fold them in, its peak RSS growth, then the whole log's
  requests against a SQL count and the sweep over those days.

From the medians it derives the sweep's cost per hour of wall time under the schedule in
cost_api/aggregation/aggregator.py and the bounds it gives.

    python -m bench.sweep                          # 10M, both dialects (~6 min)
    python -m bench.sweep --sizes 1M --dialects sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.dashboard import HERE, _pct, _size
from cost_api.aggregation.aggregator import (
    LAST_HOUR,
    MAINTAIN_SECONDS,
    SWEEP_OLDER_SECONDS,
    SWEEP_RECENT_HOURS,
    SWEEP_RECENT_SECONDS,
    Aggregator,
    Filters,
)
from cost_api.aggregation.rollups import HOUR_MS, floor_hour
from cost_api.config import load_settings
from cost_api.lenses.summary import Summary, summary_answer
from cost_api.tools.demo.run import run_demo
from cost_api.web.service import build_service
from cost_api.windows import parse_window, parse_zone
from tests.clock import FakeClock
from tests.pgcluster import PgCluster, find_bindir

DAYS = 60
SEED = 7
APPENDED = 1_000
DELETED = 200
BACKFILL = 500_000
GRACE = 900.0
UTC_ZONE = parse_zone(None, "UTC")
# every column but the id: copies get new ids, as a gateway's inserts would
COLUMNS = (
    "created_at, request_id, provider, model, endpoint, token_id, status_code, streamed, prompt_tokens,"
    " completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit, prompt_tokens_avoided,"
    " completion_tokens_avoided, latency_ms, cache_key"
)


def _status(field: str) -> float:
    """VmRSS or VmHWM of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _trim() -> None:
    """Hand freed heap back to the system (glibc), so that RSS shows what is held, not what was."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> bool:
    """Start VmHWM over from the current RSS (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Writer:
    """Writes into the log beside the service (which reads it read-only), with SQL literals per dialect."""

    dialect: str

    def at(self, ms: int) -> str:
        raise NotImplementedError

    async def execute(self, sql: str) -> None:
        raise NotImplementedError

    async def value(self, sql: str) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class SqliteWriter(Writer):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=60)

    def at(self, ms: int) -> str:
        return str(ms)

    async def execute(self, sql: str) -> None:
        self.conn.execute(sql)

    async def value(self, sql: str) -> Any:
        return self.conn.execute(sql).fetchone()[0]

    async def close(self) -> None:
        self.conn.close()


class PostgresWriter(Writer):
    dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    def at(self, ms: int) -> str:
        return f"'{_iso(ms)}'::timestamptz"

    async def execute(self, sql: str) -> None:
        await self.conn.execute(sql)

    async def value(self, sql: str) -> Any:
        return await self.conn.fetchval(sql)

    async def close(self) -> None:
        await self.conn.close()


class Cpu:
    """CPU seconds spent on the service's work: this process, plus (Postgres) the cluster's client
    backends — the postmaster's children serving a loopback connection."""

    def __init__(self, datadir: Path | None) -> None:
        self.postmaster: int | None = None
        if datadir is not None:
            self.postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
        self.tick = os.sysconf("SC_CLK_TCK")

    def _server(self) -> float:
        if self.postmaster is None:
            return 0.0
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[1]) != self.postmaster or "127.0.0.1(" not in stat + _cmdline(entry.path):
                    continue
                total += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, ValueError):
                continue
        return total / self.tick

    def now(self) -> float:
        return time.process_time() + self._server()


def _cmdline(proc: str) -> str:
    return Path(proc, "cmdline").read_bytes().decode(errors="replace")


async def _timed(cpu: Cpu, work: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of one call, and its result."""
    c0, t0 = cpu.now(), time.perf_counter()
    result = await work()
    return time.perf_counter() - t0, cpu.now() - c0, result


async def _timed_peak(cpu: Cpu, work: Callable[[], Awaitable[Any]]) -> dict:
    """`_timed`, and the RSS it needs: the peak over what was held before (freed heap handed back
    first, so that it cannot hide the growth), the peak itself, and what stays held after."""
    _trim()
    before = _status("VmRSS")
    known = _reset_peak()
    wall, used, result = await _timed(cpu, work)
    peak = _status("VmHWM") if known else float("nan")
    _trim()
    return {
        "s": wall,
        "cpu": used,
        "result": result,
        "growth": peak - before,
        "peak": peak,
        "held": _status("VmRSS") - before,
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def _requests(agg: Aggregator, from_ms: int, to_ms: int) -> Summary:
    window = parse_window(window=None, from_=_iso(from_ms), to=_iso(to_ms), tz=UTC_ZONE, default="30d", now=agg.now())
    return await summary_answer(agg, window, top_window=timedelta(days=1), top=3, filters=Filters())


async def _sql_count(writer: Writer, from_ms: int, to_ms: int) -> int:
    return int(
        await writer.value(
            f"SELECT count(*) FROM request_log WHERE created_at >= {writer.at(from_ms)}"
            f" AND created_at < {writer.at(to_ms)}"
        )
    )


async def run_one(dialect: str, url: str, writer: Writer, now_ms: int, cpu: Cpu, args: argparse.Namespace) -> dict:
    result: dict = {"dialect": dialect}
    settings = load_settings(environ={}, overrides={"database_url": url, "query_timeout": "600s"})
    service = build_service(settings)
    now_s = now_ms / 1000
    agg = Aggregator(service.db, service.pricing, rollup_grace=GRACE, clock=FakeClock(now_s))
    at = writer.at
    try:
        result["rows"] = int(await writer.value("SELECT count(*) FROM request_log"))
        result["oldest_ms"] = (await agg.log_bounds())[0]
        _trim()
        rss0 = _status("VmRSS")
        result["warm"] = await _timed_peak(cpu, agg.warm)
        assert agg.rollups.ready and agg.rows.started
        print(f"{dialect}: warm in {result['warm']['s']:.1f}s", file=sys.stderr)

        idle = []
        for _ in range(args.syncs):
            started = time.perf_counter()
            await agg.sync()
            idle.append(time.perf_counter() - started)
        result["sync_idle"] = (statistics.median(idle), _pct(idle, 0.99))

        # the newest rows of the open hours, appended again (new ids, same instants)
        horizon_ms = agg.rollups.horizon * HOUR_MS
        appended = []
        for _ in range(args.appends):
            await writer.execute(
                f"INSERT INTO request_log ({COLUMNS}) SELECT {COLUMNS} FROM request_log"
                f" WHERE created_at >= {at(horizon_ms)} ORDER BY id DESC LIMIT {APPENDED}"
            )
            open_before = len(agg.rows.open)
            started = time.perf_counter()
            await agg.sync()
            appended.append(time.perf_counter() - started)
            assert len(agg.rows.open) == open_before + APPENDED, "appended rows not taken as open rows"
        result["sync_append"] = statistics.median(appended)

        recent = (agg.rollups.horizon - SWEEP_RECENT_HOURS, LAST_HOUR)
        walls, cpus, differing = [], [], 0
        for _ in range(args.runs):
            wall, used, found = await _timed(cpu, lambda: agg.reconcile(*recent))
            walls.append(wall)
            cpus.append(used)
            differing = max(differing, found)
        result["recent"] = (statistics.median(walls), _pct(walls, 0.99), statistics.median(cpus))
        result["recent_differing"] = differing

        # the older sweep's chunks, newest first, as `sweep` walks them
        first_older = agg.rollups.horizon - SWEEP_RECENT_HOURS
        first_hour = floor_hour(result["oldest_ms"])
        older_days = -(-(first_older - first_hour) // 24)
        step = 24 * max(1, -(-older_days * MAINTAIN_SECONDS // SWEEP_OLDER_SECONDS))
        chunks = -(-(first_older - first_hour) // step)
        walls, cpus = [], []
        for i in range(args.runs):
            end = first_older - (i % max(1, chunks - 1)) * step
            wall, used, found = await _timed(cpu, lambda e=end: agg.reconcile(e - step, e))
            walls.append(wall)
            cpus.append(used)
            differing = max(differing, found)
        result["older"] = (statistics.median(walls), _pct(walls, 0.99), statistics.median(cpus))
        result["older_differing"] = differing
        result["older_chunks"] = chunks
        result["step_hours"] = step
        print(f"{dialect}: recent {result['recent']}, older {result['older']}", file=sys.stderr)

        # a delete in the hour 10 hours back, an update 3 days back: only the sweep sees them
        hour = floor_hour(now_ms) - 10
        await writer.execute(
            f"DELETE FROM request_log WHERE id IN (SELECT id FROM request_log WHERE created_at >= {at(hour * HOUR_MS)}"
            f" AND created_at < {at((hour + 1) * HOUR_MS)} ORDER BY id LIMIT {DELETED})"
        )
        result["delete"] = await _timed_peak(cpu, lambda: agg.reconcile(*recent))
        assert result["delete"]["result"] >= 1, "the sweep did not find the delete"
        day3 = now_ms - 3 * 86_400_000
        await writer.execute(
            "UPDATE request_log SET prompt_tokens = prompt_tokens + 1000 WHERE id = (SELECT id FROM request_log"
            f" WHERE created_at >= {at(day3)} AND created_at < {at(day3 + HOUR_MS)} AND NOT cache_hit"
            " ORDER BY created_at LIMIT 1)"
        )
        result["update"] = await _timed_peak(cpu, lambda: agg.reconcile(*recent))
        assert result["update"]["result"] >= 1, "the sweep did not find the update"
        month = now_ms - 30 * 86_400_000
        served = (await _requests(agg, month, now_ms)).requests
        result["month"] = (served, await _sql_count(writer, month, now_ms))
        assert result["month"][0] == result["month"][1], f"30-day requests {result['month']}"
        # the same 4 days by SQL over the raw rows (an aggregator whose rollups never warmed)
        direct = Aggregator(service.db, service.pricing, rollup_grace=GRACE, clock=FakeClock(now_s))
        days4 = now_ms - 4 * 86_400_000
        result["spend4"] = (
            (await _requests(agg, days4, now_ms)).spend,
            (await _requests(direct, days4, now_ms)).spend,
        )
        assert abs(result["spend4"][0] - result["spend4"][1]) < 1e-4, f"4-day spend {result['spend4']}"

        # a backfill dated 20-40 days back, committed after warm-up: copies of those days' rows
        lo, hi = now_ms - 40 * 86_400_000, now_ms - 20 * 86_400_000
        within = await _sql_count(writer, lo, hi)
        stride = max(1, within // BACKFILL)
        copies = -(-BACKFILL // max(1, within // stride))
        times = " UNION ALL ".join(["SELECT 1 AS n"] * copies)
        await writer.execute(
            f"INSERT INTO request_log ({COLUMNS}) SELECT {COLUMNS} FROM request_log, ({times}) AS copies"
            f" WHERE created_at >= {at(lo)} AND created_at < {at(hi)} AND id % {stride} = 0 LIMIT {BACKFILL}"
        )
        result["backfill"] = await _timed_peak(cpu, agg.catch_up)
        everything = (floor_hour(result["oldest_ms"]) * HOUR_MS, now_ms + 1)
        served = (await _requests(agg, *everything)).requests
        result["total"] = (served, await _sql_count(writer, *everything))
        assert result["total"][0] == result["total"][1], f"requests after the backfill {result['total']}"
        result["backfill_differing"] = await agg.reconcile(floor_hour(lo), floor_hour(hi) + 1)
        _trim()
        result["rss_end"] = _status("VmRSS") - rss0
    finally:
        await service.close()
    return result


def costs(r: dict) -> dict:
    """What the schedule in cost_api/aggregation/aggregator.py makes of the medians."""
    recent_per_hour = 3600 / SWEEP_RECENT_SECONDS
    older_per_hour = r["older_chunks"] * 3600 / SWEEP_OLDER_SECONDS  # paced: a pass takes SWEEP_OLDER_SECONDS
    sync_s = r["sync_idle"][0]
    return {
        "recent_cpu_h": r["recent"][2] * recent_per_hour,
        "older_cpu_h": r["older"][2] * older_per_hour,
        "recent_wall_h": r["recent"][0] * recent_per_hour,
        "older_wall_h": r["older"][0] * older_per_hour,
        # a change just after the recent sweep read its hour: the next one, a tick late at most
        "recent_bound": SWEEP_RECENT_SECONDS + MAINTAIN_SECONDS + r["recent"][1],
        # a pass over the older hours, paced to SWEEP_OLDER_SECONDS, its last chunk up to a tick late
        "older_bound": SWEEP_OLDER_SECONDS + MAINTAIN_SECONDS + sync_s + r["older"][1] + r["recent"][1],
    }


def table(results: list[dict]) -> str:
    head = "| figure | " + " | ".join(f"{r['dialect']}, {r['rows']:,} rows" for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]

    def row(label: str, cell: Callable[[dict], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")

    def wall_cpu(key: str) -> Callable[[dict], str]:
        return lambda r: f"{r[key][0]:.2f} / {r[key][1]:.2f} s (CPU {r[key][2]:.2f} s)"

    def once(key: str, extra: str = "") -> Callable[[dict], str]:
        def cell(r: dict) -> str:
            m = r[key]
            found = f"; {m['result']} h" if extra == "hours" else ""
            return (
                f"{m['s']:.2f} s (CPU {m['cpu']:.2f} s{found}); RSS peak +{m['growth']:.0f} MiB"
                f" (to {m['peak']:,.0f} MiB), then {m['held']:+.0f} MiB"
            )

        return cell

    row("`warm()`", once("warm"))
    row(
        "`sync()`, nothing new: p50 / p99",
        lambda r: f"{r['sync_idle'][0] * 1000:.2f} / {r['sync_idle'][1] * 1000:.2f} ms",
    )
    row(f"`sync()` after appending {APPENDED:,} rows: p50", lambda r: f"{r['sync_append'] * 1000:.1f} ms")
    row(
        f"`reconcile()` last {SWEEP_RECENT_HOURS // 24} days + open hours, nothing changed: p50 / p99",
        wall_cpu("recent"),
    )
    row("`reconcile()` one older chunk, nothing changed: p50 / p99", wall_cpu("older"))
    row("hours found differing with nothing changed", lambda r: f"{r['recent_differing']} / {r['older_differing']}")
    row(f"DELETE {DELETED} rows 10 h back: the recent sweep finds and reads again", once("delete", "hours"))
    row("UPDATE a token count 3 days back: the same", once("update", "hours"))
    row("then 30-day requests = SQL `count(*)`", lambda r: f"{r['month'][0]:,} = {r['month'][1]:,}")
    row("then 4-day spend = direct SQL", lambda r: f"${r['spend4'][0]:,.6f} = ${r['spend4'][1]:,.6f}")
    row(f"backfill {BACKFILL:,} rows 20-40 days back: `catch_up()`", once("backfill"))
    row("… then all requests = SQL `count(*)`", lambda r: f"{r['total'][0]:,} = {r['total'][1]:,}")
    row("… hours differing when swept after", lambda r: str(r["backfill_differing"]))
    row("RSS held at the end, over the start", lambda r: f"{r['rss_end']:.0f} MiB")
    row(
        f"sweep cost: recent × {3600 // SWEEP_RECENT_SECONDS}/h + an older pass every {SWEEP_OLDER_SECONDS} s",
        lambda r: (
            f"{costs(r)['recent_cpu_h']:.1f} + {costs(r)['older_cpu_h']:.1f} ="
            f" **{costs(r)['recent_cpu_h'] + costs(r)['older_cpu_h']:.1f} CPU-s/h**"
            f" ({(costs(r)['recent_cpu_h'] + costs(r)['older_cpu_h']) / 36:.1f}% of a core;"
            f" wall {costs(r)['recent_wall_h'] + costs(r)['older_wall_h']:.0f} s/h)"
        ),
    )
    row(
        f"bound, last {SWEEP_RECENT_HOURS // 24} days (target 300 s)",
        lambda r: f"≤ {costs(r)['recent_bound']:.0f} s",
    )
    row(
        "bound, older hours (target 3600 s)",
        lambda r: f"≤ {costs(r)['older_bound']:.0f} s ({r['older_chunks']} chunks of {r['step_hours']} h)",
    )
    return "\n".join(lines)


def _sqlite_log(data: Path, rows: int) -> tuple[str, Path]:
    """The generated log (reused when one of this size exists) and a copy this run may change."""
    path = data / f"log-{rows}.db"
    if path.exists():
        with sqlite3.connect(path) as conn:
            try:
                found = conn.execute("SELECT days, requests_per_day, seed FROM cost_api_demo").fetchone()
            except sqlite3.Error:
                found = None
        if found != (DAYS, rows // DAYS, SEED):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    started = time.monotonic()
    written = run_demo(url, days=DAYS, requests_per_day=rows // DAYS, seed=SEED, progress=True)
    if written:
        print(f"sqlite: {written:,} rows in {time.monotonic() - started:.0f}s", file=sys.stderr)
    else:
        print(f"sqlite: reusing {path}", file=sys.stderr)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    work = data / f"sweep-{rows}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(path, work)
    return f"sqlite:///{work}", work


async def _now_ms(writer: Writer) -> int:
    value = await writer.value("SELECT created_at FROM cost_api_demo")
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


async def main_async(args: argparse.Namespace) -> list[dict]:
    sizes = [_size(s) for s in args.sizes.split(",")]
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    results: list[dict] = []
    for dialect in args.dialects.split(","):
        cluster = None
        try:
            if dialect == "postgres":
                bindir = find_bindir()
                if bindir is None:
                    print("postgres: no server binaries, skipped", file=sys.stderr)
                    continue
                cluster = PgCluster(bindir)
                cluster.start()
            for rows in sizes:
                work = None
                if dialect == "sqlite":
                    url, work = _sqlite_log(data, rows)
                    writer: Writer = SqliteWriter(work)
                    cpu = Cpu(None)
                else:
                    assert cluster is not None
                    name = f"log{rows}"
                    admin = await asyncpg.connect(cluster.dsn)
                    try:
                        await admin.execute(f"CREATE DATABASE {name}")
                    finally:
                        await admin.close()
                    url = cluster.url(name)
                    started = time.monotonic()
                    # the generator runs its own event loop: keep it off this one
                    written = await asyncio.to_thread(
                        run_demo, url, days=DAYS, requests_per_day=rows // DAYS, seed=SEED, progress=True
                    )
                    print(f"postgres: {written:,} rows in {time.monotonic() - started:.0f}s", file=sys.stderr)
                    writer = PostgresWriter(await asyncpg.connect(url))
                    # statistics, as autovacuum keeps them: without any, the planner takes `id > :after`
                    # for a third of the table and `rows_after` (every sync) scans all of it
                    await writer.execute("ANALYZE request_log")
                    cpu = Cpu(cluster.datadir)
                try:
                    result = await run_one(dialect, url, writer, await _now_ms(writer), cpu, args)
                finally:
                    await writer.close()
                    if work is not None:
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{work}{suffix}").unlink(missing_ok=True)
                results.append(result)
                print(table(results[-1:]), file=sys.stderr)
                gc.collect()
        finally:
            if cluster is not None:
                cluster.destroy()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10M")
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument("--syncs", type=int, default=200, help="idle sync() calls (median, p99)")
    parser.add_argument("--appends", type=int, default=10, help=f"appends of {APPENDED:,} rows, each then synced")
    parser.add_argument("--runs", type=int, default=15, help="reconcile() runs per range (median, p99)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sweep.md")
    args = parser.parse_args()
    load = os.getloadavg()
    started = datetime.now(UTC)
    results = asyncio.run(main_async(args))
    report = (
        f"# Sweep benchmark, {started:%Y-%m-%d %H:%M}–{datetime.now(UTC):%H:%M} UTC\n\n"
        f"Machine: {os.cpu_count()} cores, load average {load[0]:.1f} at the start and"
        f" {os.getloadavg()[0]:.1f} at the end. Schedule: last {SWEEP_RECENT_HOURS} h every"
        f" {SWEEP_RECENT_SECONDS} s, older hours a day chunk at a time, paced so that a pass over"
        f" them takes {SWEEP_OLDER_SECONDS} s. {args.syncs} idle syncs, {args.runs} runs per"
        f" reconcile range (p50 / p99 wall, CPU p50).\n\n{table(results)}\n"
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
