"""The budget check under load: `python -m bench.budget_check [--workers 1 2] [--duration 20]`.

1. Writes a demo log (SQLite, 35 days) and serves it with `cost-api serve --workers N` (uvicorn with
   httptools and uvloop), with budgets on the checked endpoint (a month and a week, far from their
   caps) and one exceeded budget; for each N given, a server of its own.
2. A writer process (bench.load's) appends rows to the log (`--write-rate` per second) meanwhile.
3. A load generator in another process calls `GET /v1/budgets/check?endpoint=/summarise-ticket` on
   loopback: wrk (`apt-get install wrk`) with `--connections` connections for `--duration` seconds, or,
   without wrk, a Python asyncio client (slower: it measures itself as much as the server).
   With `--token`, the check also names a token (the demo's `customer-A`, by id) that a budget caps and
   a `token_tags` rule puts in a team with a budget of its own: the check then looks up the token's
   budgets and its tags' too.
4. The same load on `/healthz`, in the same run: what the framework and the machine give any route.
   With `--rounds R` the two alternate R times (check first, then /healthz first, …) and each figure
   is the median of its R runs. With several workers, a run that one worker served alone (the other
   took under BOTH_WORKERS of the CPU time: the kernel can hand every connection to one) is run again.
5. In-process: the server time of one check, with `time.perf_counter` around many calls, both of the
   tracker's `check()` alone and of the whole ASGI application (routing, middleware, JSON).

Targets, each reported as met or missed: ≥ 5,000 requests/s, p99 ≤ 10 ms, no errors, and the check's
throughput ≥ 90 % of /healthz's (the check costs little beside the HTTP server); the month's spend grown
by the writer's rows by the end; ≤ 1 ms of server time per check. Prints the figures as Markdown tables
(docs/performance.md, section "Budget check"); exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import multiprocessing
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cost_api.config import load_settings
from cost_api.tools.demo.run import run_demo
from cost_api.web.app import create_app
from tests.server import spawned_workers

from .load import _free_port, _writer  # the load benchmark's writer: rows stamped now, in batches

ENDPOINT = "/summarise-ticket"
CHECK_PATH = "/v1/budgets/check"
CONFIG = """\
tz: Europe/Berlin
budget_refresh: REFRESH
budgets:
  - {endpoint: /summarise-ticket, limit_usd: 1000000, period: month}
  - {endpoint: /summarise-ticket, limit_usd: 250000, period: week}
  - {endpoint: /agent-proxy-claude, limit_usd: 0.01, period: day}
"""
# One call on the capped endpoint stamped now (1M input tokens: $3): its budget is passed from the first
# second of the day in `tz`, where the demo log may hold none of its calls yet (at 00:00 Europe/Berlin the
# run of 2026-12-05 23:00 UTC saw no 422).
OVER_BUDGET = """INSERT INTO request_log (created_at, provider, model, endpoint, status_code, prompt_tokens)
VALUES (?, 'anthropic', 'claude-sonnet-4-5-20250929', '/agent-proxy-claude', 200, 1000000)"""
TOKEN_CONFIG = """\
  - {tag: "team:customers", limit_usd: 1000000, period: month}
  - {token: TOKEN, limit_usd: 1000000, period: week}
token_tags:
  - {name: "customer-*", tags: {team: customers}}
"""


# --------------------------------------------------------------------------- load generators


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def run_wrk(url: str, connections: int, duration: int, threads: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "client": f"wrk -t{threads} -c{connections} -d{duration}s",
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "errors": (sum(map(int, socket_errors.groups())) if socket_errors else 0)
        + (int(non_2xx.group(1)) if non_2xx else 0),
        "raw": out,
    }


async def _python_load(host: str, port: int, target: str, connections: int, duration: int) -> dict[str, Any]:
    """Keep-alive HTTP/1.1 GETs on `connections` sockets; latency per request."""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    took = time.monotonic() - started
    latencies.sort()
    return {
        "client": f"Python asyncio, {connections} connections, {duration}s",
        "requests": len(latencies),
        "rps": len(latencies) / took,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "errors": errors,
        "raw": "",
    }


# --------------------------------------------------------------------------- server time


async def server_time(db_url: str, config_path: Path, calls: int, settle: float, token: str | None) -> dict[str, float]:
    """Seconds per check inside the process: the tracker's check() alone, and the whole ASGI app."""
    settings = load_settings(config_path, environ={}, overrides={"database_url": db_url})
    app = create_app(settings)
    tracker = app.state.budgets
    async with app.lifespan():
        await asyncio.sleep(settle)  # past the start-up reads, as the served run is
        started = time.perf_counter()
        for _ in range(calls):
            tracker.check(ENDPOINT, token)
        check_s = (time.perf_counter() - started) / calls

        def scope(query: bytes, path: str = CHECK_PATH) -> dict[str, Any]:
            return {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": query,
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1")],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }

        def receiver() -> Any:
            """As a server's: the request once, then nothing until the client leaves (which it never
            does here; the app stops listening once it has answered)."""
            messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

            async def receive() -> dict[str, Any]:
                message = next(messages, None)
                if message is None:
                    await asyncio.Event().wait()
                return message  # type: ignore[return-value]

            return receive

        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def per_request(query: bytes, n: int, path: str = CHECK_PATH) -> tuple[float, list[float]]:
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                await app(scope(query, path), receiver(), send)  # type: ignore[arg-type]
                samples.append(time.perf_counter() - t0)
            return sum(samples) / n, sorted(samples)

        caller = b"" if token is None else b"&token=" + token.encode()
        asgi_s, samples = await per_request(b"endpoint=%2Fsummarise-ticket" + caller, calls // 10)
        blocked_s, _ = await per_request(b"endpoint=%2Fagent-proxy-claude" + caller, calls // 10)
        healthz_s, _ = await per_request(b"", calls // 10, "/healthz")
    assert set(statuses) == {200, 422}, statuses
    return {
        "check_us": check_s * 1e6,
        "asgi_us": asgi_s * 1e6,
        "asgi_p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "asgi_422_us": blocked_s * 1e6,
        "healthz_us": healthz_s * 1e6,
    }


# --------------------------------------------------------------------------- the run

TARGET_RPS = 5000
TARGET_P99_MS = 10.0
TARGET_SHARE = 0.90  # of /healthz's requests/s
TARGET_SERVER_US = 1000
# With several workers, a round where one of them did less than this share of the servers' CPU time was
# served by the other alone (the kernel gave it every connection wrk opened): measured again, up to
# ONE_WORKER_TRIES times, since it says nothing of what several workers give.
BOTH_WORKERS = 0.2
ONE_WORKER_TRIES = 4


def _uvicorn_stack() -> str:
    """What uvicorn's `auto` picks in this environment: uvloop and httptools when installed."""
    found = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name) is not None]
    return " + ".join(found) if found else "asyncio + h11"


def _serving_processes(server: subprocess.Popen[bytes]) -> list[int]:
    """The processes that serve: the server itself with one worker, its spawned workers with more."""
    return spawned_workers(server.pid) or [server.pid]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of `pids` so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per key over the rounds: medians, and the sums of requests and errors."""
    return {
        "client": runs[0]["client"],
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "cpu_ms": statistics.median(r["cpu_ms"] for r in runs),
        "runs": runs,
    }


def serve_and_load(args: argparse.Namespace, url: str, config: Path, workers: int) -> dict[str, Any]:
    """One server with `workers` workers: the check and /healthz under the same load, the writer on."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--config", str(config)]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL
    )
    written = multiprocessing.Value("q", 0)
    stop = multiprocessing.Event()
    writer = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not come up")
            time.sleep(0.2)
        time.sleep(args.settle)  # each worker reads every closed hour once at start (its rollups)
        serving = _serving_processes(server)
        rss = [_rss_mb(pid) for pid in serving]
        before = httpx.get(base + "/v1/budgets").json()
        writer = multiprocessing.Process(target=_writer, args=(url, args.write_rate, stop, written, os.getpid()))
        writer.start()
        use_wrk = bool(shutil.which("wrk")) and not args.python_client

        def load(path: str, duration: int) -> dict[str, Any]:
            for tries in range(1, ONE_WORKER_TRIES + 1):
                cpu = [_cpu_seconds([pid]) for pid in serving]
                if use_wrk:
                    got = run_wrk(base + path, args.connections, duration, args.threads)
                else:
                    got = asyncio.run(_python_load("127.0.0.1", port, path, args.connections, duration))
                used = [_cpu_seconds([pid]) - before for pid, before in zip(serving, cpu, strict=True)]
                got["cpu_ms"] = sum(used) * 1000 / max(got["requests"], 1)
                got["least_share"] = min(used) / sum(used) if sum(used) else 0.0
                got["tries"] = tries
                if len(serving) == 1 or got["least_share"] >= BOTH_WORKERS:
                    break
            return got

        target = f"{CHECK_PATH}?endpoint=%2Fsummarise-ticket" + (
            "" if args.token_id is None else f"&token={args.token_id}"
        )
        load(target, 3)  # warm-up
        checks, healthz = [], []
        for i in range(args.rounds):  # alternating, so that a drift in the machine's load hits both
            order = [(target, checks), ("/healthz", healthz)]
            for path, runs in order if i % 2 == 0 else order[::-1]:
                runs.append(load(path, args.duration))
        after = httpx.get(base + "/v1/budgets").json()
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=30)
        server.terminate()
        server.wait(timeout=60)
    return {
        "workers": workers,
        "check": _median(checks),
        "healthz": _median(healthz),
        "rss_mb": rss,
        "written": written.value,
        "spent": (before["items"][0]["spent"], after["items"][0]["spent"]),
        "age": after["age_seconds"],
    }


def _spread(run: dict[str, Any], workers: int) -> str:
    """With several workers: the least busy one's share of the CPU time, and how often the round was
    measured before both served."""
    if workers == 1:
        return ""
    again = f", {run['tries']} tries" if run["tries"] > 1 else ""
    return f" (least busy worker {run['least_share']:.0%}{again})"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def report(run: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print one server's table; whether it met every target."""
    check, healthz = run["check"], run["healthz"]
    share = check["rps"] / healthz["rps"] if healthz["rps"] else 0.0
    goals = {
        "rps": check["rps"] >= TARGET_RPS,
        "p99": check["p99_ms"] <= TARGET_P99_MS,
        "errors": check["errors"] == 0,
        "share": share >= TARGET_SHARE,
        "grows": run["spent"][1] > run["spent"][0],  # the writer's rows reached the check's figures
    }
    n = run["workers"]
    rss = ", ".join(f"{mb:.0f}" for mb in run["rss_mb"])
    processes = "one process" if n == 1 else f"{n} worker processes"
    print(f"\n**`--workers {n}`** ({processes}, RSS after warm-up: {rss} MB)\n")
    print("| figure | `/v1/budgets/check` | `/healthz` | target | |")
    print("|---|---|---|---|---|")
    print(f"| requests/s | {check['rps']:,.0f} | {healthz['rps']:,.0f} | ≥ {TARGET_RPS:,} | {_verdict(goals['rps'])} |")
    print(f"| p50 latency | {check['p50_ms']:.2f} ms | {healthz['p50_ms']:.2f} ms | | |")
    print(
        f"| p99 latency | {check['p99_ms']:.2f} ms | {healthz['p99_ms']:.2f} ms | ≤ {TARGET_P99_MS:g} ms "
        f"| {_verdict(goals['p99'])} |"
    )
    print(
        f"| errors (non-2xx, socket) | {check['errors']} of {check['requests']:,} | {healthz['errors']} of "
        f"{healthz['requests']:,} | 0 | {_verdict(goals['errors'])} |"
    )
    print(f"| check ÷ /healthz requests/s | {share:.0%} | | ≥ {TARGET_SHARE:.0%} | {_verdict(goals['share'])} |")
    print(f"| server CPU per request | {check['cpu_ms']:.3f} ms | {healthz['cpu_ms']:.3f} ms | | |")
    print(
        f"| month spend before → after | ${run['spent'][0]:,.2f} → ${run['spent'][1]:,.2f} | | grows "
        f"| {_verdict(goals['grows'])} |"
    )
    print(f"| figure age at the end | {run['age']} s (budget_refresh {args.refresh}) | | | |")
    if args.rounds > 1:
        for name, figures in (("check", check), ("/healthz", healthz)):
            each = "; ".join(f"{r['rps']:,.0f}/s p99 {r['p99_ms']:.1f} ms{_spread(r, n)}" for r in figures["runs"])
            print(f"\n{name}, each round: {each}", end="")
        print()
    return all(goals.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="`cost-api serve --workers`, one run each")
    parser.add_argument("--duration", type=int, default=20, help="seconds of each load run")
    parser.add_argument("--rounds", type=int, default=1, help="check and /healthz runs, alternating; medians")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--write-rate", type=int, default=200, help="rows per second the writer appends")
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--python-client", action="store_true", help="use the asyncio client even with wrk")
    parser.add_argument("--refresh", default="2s", help="budget_refresh of the served config")
    parser.add_argument("--settle", type=float, default=10, help="seconds between start-up and load")
    parser.add_argument("--calls", type=int, default=100_000, help="in-process check() calls")
    parser.add_argument("--token", action="store_true", help="check as a token with a token and a team budget")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    try:
        db = work / "log.db"
        url = f"sqlite:///{db}"
        config = work / "config.yaml"
        started = time.monotonic()
        rows = run_demo(url, days=args.days, progress=False)
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:  # the day's $0.01 passed at any hour
            conn.execute(OVER_BUDGET, (int(time.time() * 1000),))
        print(f"demo log: {rows:,} rows in {time.monotonic() - started:.1f}s ({db})", file=sys.stderr)
        text = CONFIG.replace("REFRESH", args.refresh)
        args.token_id = None
        if args.token:
            with contextlib.closing(sqlite3.connect(db)) as conn:
                (args.token_id,) = conn.execute("SELECT id FROM api_tokens WHERE name = 'customer-A'").fetchone()
            text += TOKEN_CONFIG.replace("TOKEN", args.token_id)
        config.write_text(text)
        in_process = asyncio.run(server_time(url, config, args.calls, args.settle, args.token_id))
        runs = [serve_and_load(args, url, config, n) for n in args.workers]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    client = runs[0]["check"]["client"]
    rounds = f", {args.rounds} alternating rounds (medians)" if args.rounds > 1 else ""
    print(
        f"Measured {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {client}"
        f"{rounds}, uvicorn with {_uvicorn_stack()}, demo log of {rows:,} rows, a writer appending "
        f"{args.write_rate} rows/s during each server's runs; load average (1 min) {load_before:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end."
    )
    met = [report(run, args) for run in runs]
    server_ok = in_process["asgi_us"] <= TARGET_SERVER_US
    print("\n| in-process server time | value | target | |")
    print("|---|---|---|---|")
    print(
        f"| per check, whole ASGI app (200) | {in_process['asgi_us']:.0f} µs | ≤ {TARGET_SERVER_US:,} µs "
        f"| {_verdict(server_ok)} |"
    )
    print(f"| … its p99 | {in_process['asgi_p99_us']:.0f} µs | | |")
    print(f"| … the 422 answer | {in_process['asgi_422_us']:.0f} µs | | |")
    print(f"| `BudgetTracker.check()` alone | {in_process['check_us']:.1f} µs | | |")
    print(f"| for comparison, `GET /healthz`, whole ASGI app | {in_process['healthz_us']:.0f} µs | | |")
    verdicts = ", ".join(
        f"--workers {run['workers']}: {'met' if ok else 'MISSED'}" for run, ok in zip(runs, met, strict=True)
    )
    print(f"\ntargets {verdicts}")
    return 0 if all(met) and server_ok else 1


if __name__ == "__main__":
    sys.exit(main())
