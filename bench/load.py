"""The load benchmark: a real server under concurrent clients while a writer appends to the log.

It generates a demo log (or uses a demo database given with --db), starts `cost-api serve` on
loopback with an API key, then for --seconds drives the given paths (default: /v1/summary and the
budget check a gateway calls before each provider call) from this process with --concurrency
asyncio+httpx clients, while a second process appends rows to the log at --write-rate rows/s.

It reports, per path and overall: requests/s, p50/p99 latency and errors (anything but a 200, or a
422 from the budget check, is an error: there must be none), the server's RSS before and after.
Then the backfill scenario (bench/backfill.py: --backfill-rows old rows appended in one transaction
while the writer and the clients go on; no error, RSS, time until exact); then, with the writer
stopped, it checks that the server's figures for a fixed range equal a fresh direct computation (a
new in-process service, no rollups: SQL over the raw rows) and a raw `count(*)`. It prints the
targets (bench/backfill.py's TARGETS) met or missed, and exits non-zero on any error or mismatch.

    python -m bench.load                                   # 20 s, SQLite demo log of 30 days
    python -m bench.load --seconds 60 --concurrency 4 --write-rate 200
    python -m bench.load --path /v1/summary --path '/v1/spend?group_by=endpoint'
    python -m bench.load --db postgresql://postgres@127.0.0.1:5432/bench   # a demo database only

Only loopback is targeted; the run is bounded by --seconds and --max-requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

KEY = "bench-load-key"
DEFAULT_PATHS = ["/v1/summary", "/v1/budgets/check?endpoint=/summarise-ticket"]
# (provider, model, endpoint, prompt tokens, completion tokens): priced models the demo also logs
WRITES = [
    ("anthropic", "claude-3-5-sonnet-20241022", "/summarise-ticket", 14000, 600),
    ("openai", "gpt-4o-mini-2024-07-18", "/classify-intent", 350, 8),
    ("groq", "llama-3.1-8b-instant", "/autocomplete", 400, 30),
    ("anthropic", "claude-sonnet-4-5-20250929", "/chat", 2500, 450),
]
COLUMNS = (
    "created_at",
    "provider",
    "model",
    "endpoint",
    "token_id",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
)


# --------------------------------------------------------------------------- the writer process


def _writer(url: str, rate: float, stop: Any, written: Any, parent: int) -> None:
    """Append `rate` rows/s (in batches every 100 ms, created_at = now) until `stop` is set, or the
    benchmark (process `parent`) is gone: killed, it cannot set `stop`, and a writer left behind
    would go on appending to the log under the next run."""
    from cost_api.store.url import parse_database_url

    def going() -> bool:
        return not stop.is_set() and os.getppid() == parent

    parsed = parse_database_url(url)
    rng = random.Random(11)
    carry = 0.0
    last = time.monotonic()

    def batch() -> list[tuple[Any, ...]]:
        nonlocal carry, last
        now = time.monotonic()
        carry += (now - last) * rate
        last = now
        count, carry = int(carry), carry - int(carry)
        at = datetime.now(UTC)
        rows = []
        for _ in range(count):
            provider, model, endpoint, prompt, completion = rng.choice(WRITES)
            rows.append((at, provider, model, endpoint, f"tok_bench_{rng.randrange(20)}", 200, prompt, completion, 800))
        return rows

    placeholders = ", ".join("?" * len(COLUMNS))
    if parsed.dialect == "sqlite":
        conn = sqlite3.connect(str(parsed.path), isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 60000")  # the backfill scenario holds the lock for seconds
        try:
            while going():
                rows = batch()
                if rows:
                    epoch = datetime(1970, 1, 1, tzinfo=UTC)
                    values = [((r[0] - epoch) // timedelta(milliseconds=1), *r[1:]) for r in rows]
                    conn.executemany(f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({placeholders})", values)
                    written.value += len(rows)
                time.sleep(0.1)
        finally:
            conn.close()
        return

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(parsed.dsn)
        try:
            while going():
                rows = batch()
                if rows:
                    await conn.copy_records_to_table("request_log", records=rows, columns=list(COLUMNS))
                    written.value += len(rows)
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    asyncio.run(run())


# --------------------------------------------------------------------------- the clients


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def errors(self, path: str) -> int:
        ok = {200, 422} if path.startswith("/v1/budgets/check") else {200}
        return sum(n for status, n in self.statuses.items() if status not in ok) + sum(self.failures.values())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def _drive(base: str, paths: list[str], seconds: float, concurrency: int, limit: int) -> dict[str, Tally]:
    tallies = {path: Tally() for path in paths}
    deadline = time.monotonic() + seconds
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY}, timeout=30, limits=limits) as client:

        async def worker(offset: int) -> None:
            nonlocal sent
            i = offset
            while time.monotonic() < deadline and sent < limit:
                sent += 1
                path = paths[i % len(paths)]
                i += 1
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                    await response.aread()
                except httpx.HTTPError as exc:
                    tallies[path].failures[type(exc).__name__] += 1
                    continue
                tallies[path].latencies.append(time.perf_counter() - started)
                tallies[path].statuses[response.status_code] += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return tallies


# --------------------------------------------------------------------------- figures and server


async def _direct_figures(url: str, start: datetime, end: datetime) -> dict[str, Any]:
    """A fresh service (rollups never warmed: SQL over the raw rows) and a raw count(*)."""
    from cost_api.aggregation.aggregator import money
    from cost_api.config import load_settings
    from cost_api.store.url import parse_database_url
    from cost_api.web.service import build_service
    from cost_api.windows import Range, epoch_ms

    # no rollups: SQL over every raw row of the range, which may take minutes on a large log
    service = build_service(load_settings(environ={}, overrides={"database_url": url, "query_timeout": "600s"}))
    try:
        total = (await service.aggregator.groups(Range(start, end))).total()
    finally:
        await service.close()
    parsed = parse_database_url(url)
    if parsed.dialect == "sqlite":
        conn = sqlite3.connect(f"file:{parsed.path}?mode=ro", uri=True)
        try:
            (count,) = conn.execute(
                "SELECT count(*) FROM request_log WHERE created_at >= ? AND created_at < ?",
                (epoch_ms(start), epoch_ms(end)),
            ).fetchone()
        finally:
            conn.close()
    else:
        import asyncpg

        pg = await asyncpg.connect(parsed.dsn)
        try:
            count = await pg.fetchval(
                "SELECT count(*) FROM request_log WHERE created_at >= $1 AND created_at < $2", start, end
            )
        finally:
            await pg.close()
    return {
        "spend": money(total.spend),
        "saved_by_cache": money(total.saved_by_cache),
        "requests": total.requests,
        "count": count,
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, proc: subprocess.Popen[bytes], limit: float) -> None:
    """Until /readyz answers 200 with the rollups warm (a 10M-row log takes a minute or two)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            ready = httpx.get(base + "/readyz", headers={"X-API-Key": KEY}, timeout=2)
            if ready.status_code == 200 and ready.json().get("rollups", {}).get("ready"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def _budgets(paths: list[str]) -> list[dict[str, Any]]:
    """A generous monthly budget for every endpoint the paths check (so the check answers 200)."""
    endpoints = set()
    for path in paths:
        if path.startswith("/v1/budgets/check?"):
            query = httpx.URL(path).params
            endpoints.update(query.get_list("endpoint"))
    return [{"endpoint": e, "limit_usd": 1_000_000, "period": "month"} for e in sorted(endpoints)]


def _analyze(url: str) -> None:
    """Planner statistics for a Postgres log just bulk-loaded, as autovacuum gives a gateway's log long
    before it holds millions of rows: without them the open hours' reads are planned badly (a 10M-row
    log: the summary 1.3 s at p50 instead of 8 ms, docs/performance.md)."""
    from cost_api.store.url import parse_database_url

    parsed = parse_database_url(url)
    if parsed.dialect != "postgres":
        return
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(parsed.dsn)
        try:
            await conn.execute("ANALYZE request_log")
        finally:
            await conn.close()

    asyncio.run(run())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cost_api.tools.demo.run import run_demo

    workdir = Path(tempfile.mkdtemp(prefix="cost-api-load-"))
    url = args.db or f"sqlite:///{workdir / 'load.db'}"
    started = time.monotonic()
    run_demo(url, days=args.days, requests_per_day=args.requests_per_day, seed=3, progress=False)
    _analyze(url)
    generated = time.monotonic() - started

    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "api_keys": [KEY],
                "max_concurrent_queries": args.max_concurrent_queries,
                "budgets": _budgets(args.path),
                "cache_dir": str(workdir / "cache"),  # never an earlier run's snapshot of another log
            }
        )
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--config", str(config), "--port", str(port)]
    result: dict[str, Any] = {"db": url, "generated_s": round(generated, 1), "seconds": args.seconds}
    serve_log = workdir / "serve.log"  # read back when an answer failed (`_problems`)
    with serve_log.open("wb") as stderr, subprocess.Popen(command, env=env, stderr=stderr) as server:
        try:
            _wait_ready(base, server, args.ready_seconds)
            paths = []
            for path in args.path:  # a route that is not there (yet) is left out, and said so
                status = httpx.get(base + path, headers={"X-API-Key": KEY}, timeout=60).status_code
                if status == 404:
                    print(f"bench.load: {path} answers 404 (not there yet): left out", file=sys.stderr)
                else:
                    paths.append(path)
            if not paths:
                raise SystemExit("no path to drive")
            result["rss_before_mib"] = round(_rss_mib(server.pid), 1)

            spawn = multiprocessing.get_context("spawn")
            stop = spawn.Event()
            written = spawn.Value("q", 0)
            writer = spawn.Process(target=_writer, args=(url, args.write_rate, stop, written, os.getpid()))
            writer.start()
            t0 = time.monotonic()
            tallies = asyncio.run(_drive(base, paths, args.seconds, args.concurrency, args.max_requests))
            elapsed = time.monotonic() - t0
            result["rss_after_mib"] = round(_rss_mib(server.pid), 1)
            if args.backfill_rows:
                from bench.backfill import backfill

                result["backfill"] = asyncio.run(
                    backfill(base, url, args.backfill_rows, args.concurrency, args.backfill_seconds, server.pid)
                )
            stop.set()
            writer.join(30)
            if writer.is_alive():  # held behind a lock past its wait: stopped, so the figures stay still
                writer.terminate()
                writer.join()
            result["rows_written"] = written.value

            per_path = {}
            for path, tally in tallies.items():
                per_path[path] = {
                    "requests": len(tally.latencies) + sum(tally.failures.values()),
                    "rps": round(len(tally.latencies) / elapsed, 1),
                    "p50_ms": round(_pct(tally.latencies, 50) * 1000, 1),
                    "p99_ms": round(_pct(tally.latencies, 99) * 1000, 1),
                    "errors": tally.errors(path),
                    "statuses": dict(tally.statuses),
                    "failures": dict(tally.failures),
                }
            every = [x for t in tallies.values() for x in t.latencies]
            result["paths"] = per_path
            result["total"] = {
                "requests": sum(p["requests"] for p in per_path.values()),
                "rps": round(len(every) / elapsed, 1),
                "p50_ms": round(_pct(every, 50) * 1000, 1),
                "p99_ms": round(_pct(every, 99) * 1000, 1),
                "errors": sum(p["errors"] for p in per_path.values()),
            }

            # the figures after the run: the server's answer equals a fresh direct computation
            end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            start = end - timedelta(days=30)
            served = httpx.get(
                base + "/v1/summary",
                params={"from": start.isoformat().replace("+00:00", "Z"), "to": end.isoformat().replace("+00:00", "Z")},
                headers={"X-API-Key": KEY},
                timeout=60,
            ).json()
            direct = asyncio.run(_direct_figures(url, start, end))
            figures = {k: served[k] for k in ("spend", "saved_by_cache", "requests")}
            result["figures"] = {"served": figures, "direct": direct}
            result["figures_match"] = (
                figures == {k: direct[k] for k in figures} and direct["requests"] == direct["count"]
            )
        finally:
            server.terminate()
            server.wait(30)
            if result.get("total", {}).get("errors") or result.get("backfill", {}).get("errors"):
                result["server_log"] = _problems(serve_log)
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    return result


def _problems(log: Path, most: int = 40) -> list[str]:
    """The server's last lines above INFO: what a failed answer left in its log."""
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if line and not line.startswith(("INFO", "DEBUG"))][-most:]


def report(result: dict[str, Any]) -> str:
    lines = [
        f"database {result['db']} (demo generated in {result['generated_s']} s); "
        f"{result['seconds']} s of load, writer appended {result['rows_written']} rows",
        "",
        "| path | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for path, p in {**result["paths"], "all": result["total"]}.items():
        lines.append(f"| `{path}` | {p['requests']} | {p['rps']} | {p['p50_ms']} | {p['p99_ms']} | {p['errors']} |")
    served, direct = result["figures"]["served"], result["figures"]["direct"]
    lines += [
        "",
        f"server RSS: {result['rss_before_mib']} MiB before the load, {result['rss_after_mib']} MiB after",
        f"figures after the run (30 days): served {served}, fresh direct {direct}: "
        + ("equal" if result["figures_match"] else "MISMATCH"),
    ]
    from bench.backfill import targets

    if result.get("server_log"):
        lines += ["", "the server's log, its last lines above INFO (answers failed):", *result["server_log"]]
    return "\n".join(lines + targets(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a demo database URL (created if absent; default: a temporary SQLite file)")
    parser.add_argument("--days", type=int, default=30, help="days of demo log to generate (default 30)")
    parser.add_argument("--requests-per-day", type=int, default=5000, help="demo log density (default 5000)")
    parser.add_argument(
        "--path", action="append", help=f"a path to drive, repeatable (default: {' and '.join(DEFAULT_PATHS)})"
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of the load (default 20)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests")
    parser.add_argument("--write-rate", type=float, default=1000, help="rows/s the writer appends (default 1000)")
    parser.add_argument("--backfill-rows", type=int, default=1_000_000, help="old rows to append (0: no backfill)")
    parser.add_argument("--backfill-seconds", type=float, default=300, help="how long to wait for the backfill")
    parser.add_argument(
        "--max-concurrent-queries", type=int, default=4, help="the server's admission limit (default 4)"
    )
    parser.add_argument("--ready-seconds", type=float, default=600, help="how long to wait for warm rollups")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (demo log, config)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.path = args.path or DEFAULT_PATHS
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else report(result))
    fill = result.get("backfill", {"errors": 0, "exact_after_s": 0})
    ok = result["total"]["errors"] == 0 and result["figures_match"] and fill["errors"] == 0
    return 0 if ok and fill["exact_after_s"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
