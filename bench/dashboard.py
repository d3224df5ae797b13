"""The dashboard benchmark: the 30-day dashboard over 1M and 10M log rows, SQLite, Postgres and ClickHouse
(chDB, in the server's process: `--dialects chdb`).

For each dialect and size it generates the demo log (60 days), starts a real server, and measures
with a real HTTP client: the first dashboard set answered in full after start (cold, while the rollups
warm: an answer over more than a day is then a 503 `warming-up` on a large log, asked again every
COLD_RETRY_SECONDS), the time
until the rollups are warm, the warm dashboard set (/v1/summary, /v1/trend?window=30d&group_by=
provider, /v1/live, one after another; median and p99 over at least `--iterations` sets and at least
`--seconds`: 300 s by default, more than two cycles of the background sweeps, whose reads compete with
the answers and make the tail), every /v1 lens alone, and the server's RSS.
In the same run it computes the same dashboard set in-process with the rollups off — direct SQL
over raw rows, priced the same way — so every figure is also a ratio, and checks both agree. On a
SQLite log it also times DuckDB's full scan of the same rows (`pip install -e '.[bench]'`; `make
bench` does): the log copied into an in-memory DuckDB table (not timed), then the set's three grouped
scans — 30 days by day, provider, model and cache hit; 7 days by token; the last hour — their median
over DUCKDB_RUNS, grouped as the `groups` query does but not priced (pricing the groups takes
milliseconds); its rows checked against SQLite's count.

    python -m bench.dashboard                      # 1M and 10M, both dialects, 20,000 tokens (~45 min)
    python -m bench.dashboard --sizes 1M --dialects sqlite --iterations 10 --seconds 0
    python -m bench.dashboard --sizes 10M --keep /tmp/bench --postgres postgresql://…/postgres

`--against DIR --db URL` compares this checkout with another (e.g. `git worktree add /tmp/flat
1cfd776`): both servers on the same log at once, their dashboard sets alternated, in one run.

`--keep DIR` keeps the generated logs (SQLite files in DIR; with `--postgres`, databases on that
server) and reuses them on the next run: 10M rows take minutes to generate. A Postgres log is
`ANALYZE`d after generation, as autovacuum would do soon after: without statistics the incremental
read of new rows is planned as a sequential scan and every answer reads the whole table.

Targets (issue 18), each printed met or MISSED: every lens alone ≤ 50 ms p50, the dashboard set's
p99 ≤ 2× its p50, the server's RSS ≤ 1 GiB; with 20,000 distinct tokens in the log (`--tokens`, by
default), not only the demo's 300.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from cost_api.aggregation.aggregator import Filters
from cost_api.config import load_settings
from cost_api.lenses.live import live_answer
from cost_api.lenses.summary import summary_answer
from cost_api.lenses.trend import trend
from cost_api.tools.demo.catalogue import TOKENS
from cost_api.tools.demo.run import run_demo
from cost_api.web.service import build_service
from cost_api.windows import DAY_MS, HOUR_MS, parse_duration, parse_window, parse_zone
from tests.pgcluster import PgCluster, find_bindir, free_port

HERE = Path(__file__).parent
BENCH_TOKENS = 20_000  # issue 18's targets hold with this many distinct tokens, not only the demo's TOKENS
DASHBOARD = ["/v1/summary", "/v1/trend?window=30d&group_by=provider", "/v1/live"]
LENSES = [
    "/v1/summary",
    "/v1/spend?group_by=provider",
    "/v1/spend?group_by=endpoint",
    "/v1/spend?group_by=token",
    "/v1/spend?group_by=model",
    "/v1/trend",
    "/v1/trend?group_by=provider",
    "/v1/savings",
    "/v1/live",
    "/v1/requests",
]


def _size(text: str) -> int:
    text = text.upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RssWatch(threading.Thread):
    """A served process's peak RSS (and when: `peak_at`, `time.time()`), sampled every RSS_EVERY seconds
    while it runs (each sample in `samples`: `time.time()`, MiB); past `limit_mib` the process is killed
    (a runaway answer must not take the shared machine's memory) and `killed_at` set."""

    def __init__(self, proc: subprocess.Popen[bytes], limit_mib: float | None = None) -> None:
        super().__init__(daemon=True)
        self.proc, self.limit_mib = proc, limit_mib
        self.peak_mib, self.peak_at = 0.0, 0.0
        self.samples: list[tuple[float, float]] = []
        self.killed_at: float | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(RSS_EVERY) and self.proc.poll() is None:
            try:
                rss = _rss_mib(self.proc.pid)
            except OSError:  # the process ended meanwhile
                return
            self.samples.append((time.time(), rss))
            if rss > self.peak_mib:
                self.peak_mib, self.peak_at = rss, time.time()
            if self.limit_mib is not None and rss > self.limit_mib:
                self.killed_at = rss
                self.proc.kill()
                return

    def stop(self) -> None:
        self._done.set()
        self.join()


RSS_EVERY = 0.5


def _timed_get(client: httpx.Client, path: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.json()


COLD_RETRY_SECONDS = 1.0


def _first_full_set(client: httpx.Client) -> float:
    """Ms from the first request to the first dashboard set whose every answer is a 200 (a set with a
    503 — the service still warming — is asked again after COLD_RETRY_SECONDS)."""
    started = time.perf_counter()
    while not all(client.get(path).status_code == 200 for path in DASHBOARD):
        time.sleep(COLD_RETRY_SECONDS)
    return (time.perf_counter() - started) * 1000


def _until_ok(client: httpx.Client, path: str) -> float:
    """Ms until `path` answers 200: a 503 (what it reads past the rollups still being read into
    memory) is asked again after COLD_RETRY_SECONDS."""
    started = time.perf_counter()
    while client.get(path).status_code == 503:
        time.sleep(COLD_RETRY_SECONDS)
    return (time.perf_counter() - started) * 1000


def _dashboard(client: httpx.Client) -> tuple[float, list[float], dict]:
    started = time.perf_counter()
    parts = [_timed_get(client, p) for p in DASHBOARD]
    return (time.perf_counter() - started) * 1000, [p[0] for p in parts], parts[0][1]


async def _direct(url: str, iterations: int, to: str) -> tuple[list[float], float]:
    """The dashboard set in-process with rollups off: SQL over raw rows, then priced."""
    settings = load_settings(environ={}, overrides={"database_url": url, "query_timeout": "600s"})
    service = build_service(settings)
    agg = service.aggregator
    zone = parse_zone(None, "UTC")
    times: list[float] = []
    try:
        fixed = parse_window(window=None, from_=None, to=to, tz=zone, default="30d", now=agg.now())
        spend = (
            await summary_answer(agg, fixed, top_window=parse_duration("top_window", "7d"), top=3, filters=Filters())
        ).spend
        for _ in range(iterations):
            started = time.perf_counter()
            window = parse_window(window=None, from_=None, to=None, tz=zone, default="30d", now=agg.now())
            head = await summary_answer(
                agg, window, top_window=parse_duration("top_window", "7d"), top=3, filters=Filters()
            )
            await trend(agg, window, interval="day", group_by="provider", top=8, filters=Filters())
            await live_answer(
                agg,
                parse_window(window="1h", from_=None, to=None, tz=zone, default="1h", now=agg.now()),
                filters=Filters(),
            )
            times.append((time.perf_counter() - started) * 1000)
            assert head.spend >= 0
    finally:
        await service.close()
    return times, spend


def _serve(
    url: str, port: int, tree: Path | None = None, settings: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`cost-api serve` on `url`: this checkout's, or the one in `tree` (run from there); `settings`:
    COST_API_* variables to set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    # before the rollups are warm, short windows are SQL over the raw rows (the others wait, then 503)
    env["COST_API_QUERY_TIMEOUT"] = "300s"
    env["COST_API_CACHE_DIR"] = "off"  # a cold start: never an earlier run's snapshot (bench.restart measures those)
    env.update(settings or {})
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def against(url: str, other: Path, iterations: int) -> str:
    """This checkout's server and `other`'s (another checkout, e.g. a `git worktree` of an older
    commit) on the same log at once, warm, their dashboard sets alternated (ABBA), so that the
    machine's changing load weighs on both alike: each one's p50 / p99 and the ratio."""
    trees: list[tuple[str, Path | None]] = [("this", None), (str(other), other)]
    procs, clients = [], []
    try:
        for _, tree in trees:
            port = free_port()
            procs.append(_serve(url, port, tree))
            clients.append(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600))
        for client in clients:
            _wait(client, "/readyz", lambda r: r.status_code == 200 and r.json()["rollups"]["ready"], 1200)
            _dashboard(client)
        sets: list[list[float]] = [[], []]
        parts: list[list[list[float]]] = [[], []]
        for i in range(iterations):
            for k in (0, 1) if i % 2 == 0 else (1, 0):
                total, each, _ = _dashboard(clients[k])
                sets[k].append(total)
                parts[k].append(each)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    lines = ["| tree | dashboard p50 | p99 | summary / trend / live p50 |", "|---|---|---|---|"]
    for k, (name, _) in enumerate(trees):
        each = " / ".join(f"{statistics.median(p[i] for p in parts[k]):.1f}" for i in range(len(DASHBOARD)))
        median, p99 = statistics.median(sets[k]), _pct(sets[k], 0.99)
        lines.append(f"| {name} | {median:.1f} ms | {p99:.1f} ms | {each} ms |")
    ratio = statistics.median(sets[0]) / statistics.median(sets[1])
    return "\n".join([*lines, "", f"this ÷ other, p50: {ratio:.2f}"])


def _wait(client: httpx.Client, path: str, ok: callable, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            response = client.get(path)
            if ok(response):
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{path} not ready after {limit}s")


def _count(url: str) -> int:
    """The log's rows (a kept log was generated by an earlier run)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM request_log").fetchone()[0])
    out = subprocess.run(["psql", url, "-Atc", "SELECT count(*) FROM request_log"], check=True, capture_output=True)
    return int(out.stdout)


def run_one(
    dialect: str,
    url: str,
    rows: int,
    iterations: int,
    memory_mb: float | None = None,
    seconds: float = 0.0,
    rss_limit_mib: float | None = None,
) -> dict:
    port = free_port()
    launched = time.monotonic()
    proc = _serve(url, port, settings=None if memory_mb is None else {"COST_API_ROLLUP_MEMORY_MB": f"{memory_mb:g}"})
    watch = RssWatch(proc, rss_limit_mib)
    watch.start()
    result: dict = {"dialect": dialect, "rows": rows}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            result["start_s"] = _wait(client, "/healthz", lambda r: r.status_code == 200, 60)
            result["cold_ms"] = _first_full_set(client)
            result["first_set_s"] = time.monotonic() - launched  # after `cost-api serve` was started
            _wait(client, "/readyz", lambda r: r.status_code == 200 and r.json()["rollups"]["ready"], 600)
            result["ready_s"] = time.monotonic() - launched
            print(f"{dialect}: first set {result['first_set_s']:.1f}s, warm {result['ready_s']:.1f}s", file=sys.stderr)
            result["warm_s"] = client.get("/readyz").json()["rollups"]["warm_seconds"]  # the server's own count
            result["settled_ms"] = _first_full_set(client)  # what the answers read past the rollups, read
            sets, parts = [], []
            until = time.monotonic() + seconds  # and at least this long: the background sweeps run meanwhile
            while len(sets) < iterations or time.monotonic() < until:
                total, each, _ = _dashboard(client)
                sets.append(total)
                parts.append(each)
            result["set_p50"], result["set_p99"] = statistics.median(sets), _pct(sets, 0.99)
            result["sets"] = len(sets)
            result["parts_p50"] = [statistics.median(p[i] for p in parts) for i in range(len(DASHBOARD))]
            result["lenses"], result["primed_ms"] = {}, {}
            for path in LENSES:
                result["primed_ms"][path] = _until_ok(client, path)
                times = [_timed_get(client, path)[0] for _ in range(max(3, iterations // 3))]
                result["lenses"][path] = statistics.median(times)
            result["rss_mib"] = _rss_mib(proc.pid)
            result["to"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            result["http_spend"] = _timed_get(client, f"/v1/summary?to={result['to']}")[1]["spend"]
    except httpx.HTTPError as exc:
        if watch.killed_at is not None:
            raise RuntimeError(f"the server passed {rss_limit_mib:g} MiB ({watch.killed_at:.0f}): stopped") from exc
        raise
    finally:
        watch.stop()
        result["rss_peak_mib"] = watch.peak_mib
        proc.terminate()
        proc.wait(timeout=30)
    direct, direct_spend = asyncio.run(_direct(url, DIRECT_RUNS, result["to"]))
    result["direct_p50"] = statistics.median(direct)
    result["direct_spend"] = direct_spend
    if dialect == "sqlite":
        result["duckdb_ms"] = _duckdb(Path(url.removeprefix("sqlite:///")), result["to"])
    return result


DUCKDB_RUNS = 10
DUCKDB_CHUNK = 1_000_000  # rows copied from SQLite into DuckDB at a time
SCAN = """
SELECT {slot} AS slot, provider, model, {key} AS key, cache_hit,
       count(*) AS requests, count(*) FILTER (WHERE status_code >= 400) AS errors,
       sum(prompt_tokens), sum(completion_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(prompt_tokens_avoided), sum(completion_tokens_avoided)
FROM request_log WHERE created_at >= $start AND created_at < $end
GROUP BY ALL
"""


def _duckdb(path: Path, to: str) -> float | None:
    """DuckDB's full scan of the log at `path` (a SQLite file): the set's three grouped scans, their
    median over DUCKDB_RUNS, ms; None without duckdb installed."""
    try:
        import duckdb
    except ImportError:
        print("duckdb: not installed (pip install -e '.[bench]'), its peer figure skipped", file=sys.stderr)
        return None
    import numpy as np

    columns = (
        "created_at, provider, model, endpoint, token_id, status_code, prompt_tokens, completion_tokens,"
        " cache_read_tokens, cache_write_tokens, cache_hit, prompt_tokens_avoided, completion_tokens_avoided"
    )
    names = [c.strip() for c in columns.split(",")]
    end = int(datetime.strptime(to, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)
    month = {"start": end - 30 * DAY_MS, "end": end}
    con = duckdb.connect()
    with sqlite3.connect(path) as log:
        cursor = log.execute(f"SELECT {columns} FROM request_log")
        make = "CREATE TABLE request_log AS SELECT * FROM chunk"
        while rows := cursor.fetchmany(DUCKDB_CHUNK):
            values = zip(*rows, strict=True)
            con.register("chunk", {name: np.array(v, dtype=object) for name, v in zip(names, values, strict=True)})
            con.execute(make)
            con.unregister("chunk")
            make = "INSERT INTO request_log SELECT * FROM chunk"
        expected = log.execute(
            "SELECT count(*) FROM request_log WHERE created_at >= ? AND created_at < ?", (month["start"], end)
        ).fetchone()[0]
    scans = [
        (SCAN.format(slot=f"created_at // {DAY_MS}", key="NULL"), month),
        (SCAN.format(slot=f"created_at // {DAY_MS}", key="token_id"), {"start": end - 7 * DAY_MS, "end": end}),
        (SCAN.format(slot=f"created_at // {HOUR_MS}", key="NULL"), {"start": end - HOUR_MS, "end": end}),
    ]
    times = []
    for _ in range(DUCKDB_RUNS + 1):  # the first run reads the table into the engine's caches: not counted
        started = time.perf_counter()
        groups = [con.execute(sql, params).fetchall() for sql, params in scans]
        times.append((time.perf_counter() - started) * 1000)
    con.close()
    scanned = sum(row[5] for row in groups[0])
    if scanned != expected:
        raise RuntimeError(f"duckdb scanned {scanned:,} rows of the month where SQLite counts {expected:,}")
    return statistics.median(times[1:])


LENS_P50_MS, SET_P99_OVER_P50, RSS_MIB = 50.0, 2.0, 1024.0
DIRECT_RUNS = 3  # the dashboard set as SQL over the raw rows: tens of seconds each at 10M rows


def targets(r: dict) -> list[str]:
    """Each target of issue 18 for one run, met or MISSED."""

    def line(what: str, value: str, ok: bool) -> str:
        return f"- {r['dialect']} {r['rows']:,}: {what}: {value}: {'met' if ok else 'MISSED'}"

    lenses = r["lenses"].items()
    lines = [line(f"`{path}` p50 ≤ {LENS_P50_MS:g} ms", f"{ms:.1f} ms", ms <= LENS_P50_MS) for path, ms in lenses]
    ratio = r["set_p99"] / r["set_p50"]
    lines.append(line(f"dashboard p99 ≤ {SET_P99_OVER_P50:g}× p50", f"{ratio:.2f}×", ratio <= SET_P99_OVER_P50))
    lines.append(line(f"RSS ≤ {RSS_MIB:g} MiB", f"{r['rss_mib']:.0f} MiB", r["rss_mib"] <= RSS_MIB))
    return lines


def table(results: list[dict], goals: Callable[[dict], list[str]] = targets) -> str:
    lines = [
        "| dialect | rows | dashboard p50 | p99 (sets) | summary / trend / live p50 | cold: first full set |"
        " warm after | direct SQL p50 | speed-up | DuckDB full scan | speed-up | RSS | same spend |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        parts = " / ".join(f"{p:.1f}" for p in r["parts_p50"])
        lines.append(
            f"| {r['dialect']} | {r['rows']:,} | {r['set_p50']:.1f} ms | {r['set_p99']:.1f} ms ({r['sets']:,}) |"
            f" {parts} ms |"
            f" {r['cold_ms']:.0f} ms | {r['warm_s']:.1f} s | {r['direct_p50']:.0f} ms |"
            f" {r['direct_p50'] / r['set_p50']:.0f}× | {_duckdb_cells(r)} | {r['rss_mib']:.0f} MiB |"
            f" {'yes' if abs(r['http_spend'] - r['direct_spend']) < 0.01 else 'NO'} |"
        )
    lines += ["", "Each /v1 lens alone, unfiltered (p50, ms):", ""]
    lines.append("| lens | " + " | ".join(f"{r['dialect']} {r['rows']:,}" for r in results) + " |")
    lines.append("|---|" + "---|" * len(results))
    for path in LENSES:
        lines.append(f"| `{path}` | " + " | ".join(f"{r['lenses'][path]:.1f}" for r in results) + " |")
    lines += ["", "Targets:", ""] + [t for r in results for t in goals(r)]
    return "\n".join(lines)


def _duckdb_cells(r: dict) -> str:
    """DuckDB's full scan and how many times our warm set it takes (a SQLite log, duckdb installed)."""
    ms = r.get("duckdb_ms")
    return "– | –" if ms is None else f"{ms:.0f} ms | {ms / r['set_p50']:.0f}×"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument("--iterations", type=int, default=100, help="warm dashboard sets, at least")
    parser.add_argument(
        "--seconds",
        type=float,
        default=300.0,
        help="warm dashboard sets for at least this long, one after another (the p99 then spans the sweeps)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "dashboard.md")
    parser.add_argument(
        "--tokens", type=int, default=BENCH_TOKENS, help="distinct regular API tokens in the log (the demo's: 300)"
    )
    parser.add_argument("--keep", type=Path, help="keep the generated logs here and reuse them")
    parser.add_argument("--postgres", help="a Postgres server's URL to use instead of a throwaway cluster")
    parser.add_argument("--memory-mb", type=float, help="the server's rollup_memory_mb (default: the setting's)")
    parser.add_argument("--against", type=Path, help="another checkout: both servers at once on --db, alternated")
    parser.add_argument("--db", help="with --against: the log (a database URL) both serve")
    args = parser.parse_args()
    if args.against:
        print(against(args.db, args.against, args.iterations))
        return 0
    sizes = [_size(s) for s in args.sizes.split(",")]
    dialects = args.dialects.split(",")
    data = args.keep or HERE / "data"
    data.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    cluster = None
    try:
        for dialect in dialects:
            if dialect == "postgres" and args.postgres:
                server = args.postgres
            elif dialect == "postgres":
                bindir = find_bindir()
                if bindir is None:
                    print("postgres: no server binaries, skipped", file=sys.stderr)
                    continue
                cluster = PgCluster(bindir)
                cluster.start()
                server = cluster.dsn
            for rows in sizes:
                name = f"log{rows}" + (f"_{args.tokens}t" if args.tokens != TOKENS else "")
                if dialect == "sqlite":
                    path = data / f"{name}.db"
                    if args.keep is None:
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{path}{suffix}").unlink(missing_ok=True)
                    url = f"sqlite:///{path}"
                elif dialect == "chdb":
                    path = data / f"chdb-{rows}"
                    shutil.rmtree(path, ignore_errors=True)
                    url = f"chdb:///{path.resolve()}"
                else:
                    # a kept database is reused; CREATE fails harmlessly when it exists
                    subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], capture_output=True)
                    url = server.rsplit("/", 1)[0] + f"/{name}"
                started = time.monotonic()
                run_demo(url, days=60, requests_per_day=rows // 60, seed=7, progress=True, tokens=args.tokens)
                if dialect == "postgres":
                    subprocess.run(["psql", url, "-qc", "ANALYZE"], check=True, capture_output=True)
                written = _count(url)
                print(f"{dialect}: {written:,} rows, ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
                results.append(run_one(dialect, url, written, args.iterations, args.memory_mb, args.seconds))
                print(table(results[-1:]), file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.destroy()
    report = (
        f"# Dashboard benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {os.cpu_count()} cores. Warm sets: at least {args.iterations}, for at least {args.seconds:g} s."
        f"\n\n{table(results)}\n"
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
