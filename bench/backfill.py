"""bench.load's backfill scenario: old rows with new ids appended while the server answers under load.

While the load's writer keeps appending current rows, `rows` rows dated 15–25 days back are appended
(new ids, old `created_at`: a late import): on Postgres in one COPY, on SQLite in transactions of
SQLITE_CHUNK rows (one writer: a million rows at once would stop the gateway's writes for a
minute). Meanwhile `concurrency` - 1 clients keep asking `/v1/summary`; every status is counted (a
504 or any non-200 is an error), the server's RSS is sampled every 0.2 s, and a fixed range in closed
hours (20 to 10 days back, which the writer's rows never reach) is asked for every 0.5 s: the time
until its `requests` equal a `count(*)` taken after the last commit is the time until exact.

`targets` checks a bench.load result against TARGETS: issue 18's latency goals under writes, and the
backfill's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.load import COLUMNS, KEY, WRITES, Tally, _pct, _rss_mib

# issue 18: /v1/summary under 1,000 rows/s with the demo's 60,000-row storm in the open hours
SQLITE_CHUNK = 50_000  # rows per transaction on SQLite (Postgres: one COPY, beside the writer's)
TARGETS = {"summary_p50_ms": 50.0, "summary_p99_ms": 150.0, "backfill_exact_s": 60.0, "rss_mib": 1024.0}


def _rows(count: int, now: datetime) -> list[tuple[Any, ...]]:
    rng = random.Random(23)
    start = now - timedelta(days=25)
    out = []
    for _ in range(count):
        provider, model, endpoint, prompt, completion = rng.choice(WRITES)
        at = start + timedelta(seconds=rng.random() * 10 * 86_400)
        out.append((at, provider, model, endpoint, f"tok_backfill_{rng.randrange(20)}", 200, prompt, completion, 900))
    return out


def _insert(url: str, count: int, now: datetime, start: datetime, end: datetime, counted: Any) -> None:
    """In a process of its own (the clients' timings stay the server's): insert, then count the range."""
    from cost_api.store.url import parse_database_url

    parsed = parse_database_url(url)
    rows = _rows(count, now)
    if parsed.dialect == "sqlite":
        counted.value = _count_and_insert_sqlite(str(parsed.path), rows, start, end)
    else:
        counted.value = asyncio.run(_count_and_insert_postgres(parsed.dsn, rows, start, end))


def _count_and_insert_sqlite(path: str, rows: list[tuple[Any, ...]], start: datetime, end: datetime) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    values = [((r[0] - epoch) // timedelta(milliseconds=1), *r[1:]) for r in rows]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 60000")
    placeholders = ", ".join("?" * len(COLUMNS))
    try:
        for at in range(0, len(values), SQLITE_CHUNK):  # SQLite has one writer: the gateway's waits meanwhile
            conn.execute("BEGIN IMMEDIATE")
            chunk = values[at : at + SQLITE_CHUNK]
            conn.executemany(f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({placeholders})", chunk)
            conn.execute("COMMIT")
        ms = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        (count,) = conn.execute(
            "SELECT count(*) FROM request_log WHERE created_at >= ? AND created_at < ?", ms
        ).fetchone()
    finally:
        conn.close()
    return int(count)


async def _count_and_insert_postgres(dsn: str, rows: list[tuple[Any, ...]], start: datetime, end: datetime) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("request_log", records=rows, columns=list(COLUMNS))
        count = await conn.fetchval(
            "SELECT count(*) FROM request_log WHERE created_at >= $1 AND created_at < $2", start, end
        )
    finally:
        await conn.close()
    return int(count)


async def backfill(base: str, url: str, rows: int, concurrency: int, limit: float, pid: int) -> dict[str, Any]:
    """Run the scenario against the server at `base` (process `pid`) on the log at `url`."""
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(days=20), now - timedelta(days=10)
    window = {"from": start.isoformat().replace("+00:00", "Z"), "to": end.isoformat().replace("+00:00", "Z")}
    tally = Tally()
    rss = [_rss_mib(pid)]
    done = asyncio.Event()
    expected: dict[str, int] = {}
    exact_after: list[float] = []
    deadline = time.monotonic() + limit

    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:

        async def drive() -> None:
            while not done.is_set() and time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get("/v1/summary")
                except httpx.HTTPError as exc:
                    tally.failures[type(exc).__name__] += 1
                    continue
                tally.latencies.append(time.perf_counter() - started)
                tally.statuses[response.status_code] += 1

        async def watch(committed_at: float) -> None:
            while time.monotonic() < deadline:
                response = await client.get("/v1/summary", params=window)
                if response.status_code == 200 and response.json()["requests"] == expected["count"]:
                    exact_after.append(time.monotonic() - committed_at)
                    return
                await asyncio.sleep(0.5)

        async def sample() -> None:
            while not done.is_set():
                rss.append(_rss_mib(pid))
                await asyncio.sleep(0.2)

        drivers = [asyncio.create_task(drive()) for _ in range(max(1, concurrency - 1))]  # and `watch`
        sampler = asyncio.create_task(sample())
        began = time.monotonic()
        spawn = multiprocessing.get_context("spawn")
        counted = spawn.Value("q", -1)
        inserter = spawn.Process(target=_insert, args=(url, rows, now, start, end, counted))
        inserter.start()
        await asyncio.to_thread(inserter.join)
        committed = time.monotonic()
        expected["count"] = counted.value
        await watch(committed)
        done.set()
        await asyncio.gather(*drivers, sampler)
    errors = sum(n for status, n in tally.statuses.items() if status != 200) + sum(tally.failures.values())
    return {
        "rows": rows,
        "insert_s": round(committed - began, 1),
        "exact_after_s": round(exact_after[0], 1) if exact_after else None,
        "answers": len(tally.latencies),
        "errors": errors,
        "statuses": dict(tally.statuses),
        "failures": dict(tally.failures),
        "p50_ms": round(_pct(tally.latencies, 50) * 1000, 1),
        "p99_ms": round(_pct(tally.latencies, 99) * 1000, 1),
        "rss_before_mib": round(rss[0], 1),
        "rss_peak_mib": round(max(rss), 1),
        "rss_after_mib": round(_rss_mib(pid), 1),
    }


def targets(result: dict[str, Any]) -> list[str]:
    """Each target of TARGETS, measured in this run, met or missed."""
    checks: list[tuple[str, str, bool]] = []
    summary = result["paths"].get("/v1/summary")
    if summary is not None:
        for q in ("p50", "p99"):
            limit = TARGETS[f"summary_{q}_ms"]
            checks.append((f"/v1/summary {q} ≤ {limit:g} ms", f"{summary[f'{q}_ms']} ms", summary[f"{q}_ms"] <= limit))
    direct = result["figures"]["direct"]
    checks.append(("requests after the run = count(*)", f"{direct['count']}", result["figures_match"]))
    fill = result.get("backfill")
    if fill is not None:
        exact, limit = fill["exact_after_s"], TARGETS["backfill_exact_s"]
        peak, most = fill["rss_peak_mib"], TARGETS["rss_mib"]
        checks += [
            (
                f"backfill of {fill['rows']:,} rows: no error",
                f"{fill['errors']} of {fill['answers']}{_which(fill)}",
                not fill["errors"],
            ),
            (f"backfill: server RSS peak ≤ {most:g} MiB", f"{peak} MiB", peak <= most),
            (f"backfill: exact ≤ {limit:g} s after the commit", f"{exact} s", exact is not None and exact <= limit),
        ]
    lines = ["", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'met' if ok else '**missed**'} |" for name, value, ok in checks]
    if fill is not None:
        lines.append(
            f"backfill: insert {fill['insert_s']} s; /v1/summary meanwhile p50 {fill['p50_ms']} ms, "
            f"p99 {fill['p99_ms']} ms; RSS {fill['rss_before_mib']} → peak {fill['rss_peak_mib']} "
            f"→ {fill['rss_after_mib']} MiB"
        )
    return lines


def _which(fill: dict[str, Any]) -> str:
    """What the errors were: each status other than 200, and each failure, with its count."""
    kinds = {**{str(s): n for s, n in fill["statuses"].items() if int(s) != 200}, **fill.get("failures", {})}
    return "" if not kinds else " (" + ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items())) + ")"
