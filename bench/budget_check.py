"""The budget check under load: `python -m bench.budget_check [--duration 20] [--connections 32]`.

1. Writes a demo log (SQLite, 35 days) and serves it with `cost-api serve` (one uvicorn worker), with
   budgets on the checked endpoint (a month and a week, far from their caps) and one exceeded budget.
2. A writer process (bench.load's) appends rows to the log (`--write-rate` per second) meanwhile.
3. A load generator in another process calls `GET /v1/budgets/check?endpoint=/summarise-ticket` on
   loopback: wrk (`apt-get install wrk`) with `--connections` connections for `--duration` seconds, or,
   without wrk, a Python asyncio client (slower: it measures itself as much as the server).
4. The same load on `/healthz`, for comparison: what the framework and the machine give any route.
5. In-process: the server time of one check, with `time.perf_counter` around many calls, both of the
   tracker's `check()` alone and of the whole ASGI application (routing, middleware, JSON).

Goal: ≥ 3,000 requests/s, p99 ≤ 20 ms, no errors, ≤ 1 ms of server time per check.
Prints the figures as a Markdown table (docs/performance.md, section "Budget check").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import re
import shutil
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


async def server_time(db_url: str, config_path: Path, calls: int, settle: float) -> dict[str, float]:
    """Seconds per check inside the process: the tracker's check() alone, and the whole ASGI app."""
    settings = load_settings(config_path, environ={}, overrides={"database_url": db_url})
    app = create_app(settings)
    tracker = app.state.budgets
    async with app.lifespan():
        await asyncio.sleep(settle)  # past the start-up reads, as the served run is
        started = time.perf_counter()
        for _ in range(calls):
            tracker.check(ENDPOINT)
        check_s = (time.perf_counter() - started) / calls

        def scope(query: bytes) -> dict[str, Any]:
            return {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": CHECK_PATH,
                "raw_path": CHECK_PATH.encode(),
                "query_string": query,
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1")],
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        async def per_request(query: bytes, n: int) -> tuple[float, list[float]]:
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                await app(scope(query), receive, send)  # type: ignore[arg-type]
                samples.append(time.perf_counter() - t0)
            return sum(samples) / n, sorted(samples)

        asgi_s, samples = await per_request(b"endpoint=%2Fsummarise-ticket", calls // 10)
        blocked_s, _ = await per_request(b"endpoint=%2Fagent-proxy-claude", calls // 10)
    assert set(statuses) == {200, 422}, statuses
    return {
        "check_us": check_s * 1e6,
        "asgi_us": asgi_s * 1e6,
        "asgi_p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "asgi_422_us": blocked_s * 1e6,
    }


# --------------------------------------------------------------------------- the run


def _uvicorn_stack() -> str:
    """What uvicorn's `auto` picks in this environment: uvloop and httptools when installed."""
    found = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name) is not None]
    return " + ".join(found) if found else "asyncio + h11"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--write-rate", type=int, default=200, help="rows per second the writer appends")
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--python-client", action="store_true", help="use the asyncio client even with wrk")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the /healthz comparison run")
    parser.add_argument("--refresh", default="2s", help="budget_refresh of the served config")
    parser.add_argument("--settle", type=float, default=10, help="seconds between start-up and load")
    parser.add_argument("--calls", type=int, default=100_000, help="in-process check() calls")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    db = work / "log.db"
    url = f"sqlite:///{db}"
    config = work / "config.yaml"
    config.write_text(CONFIG.replace("REFRESH", args.refresh))
    started = time.monotonic()
    rows = run_demo(url, days=args.days, progress=False)
    print(f"demo log: {rows:,} rows in {time.monotonic() - started:.1f}s ({db})", file=sys.stderr)

    in_process = asyncio.run(server_time(url, config, args.calls, args.settle))

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--config", str(config), "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    written = multiprocessing.Value("q", 0)
    stop = multiprocessing.Event()
    writer = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not come up")
            time.sleep(0.2)
        time.sleep(args.settle)  # the server reads every closed hour once at start (its rollups)
        before = httpx.get(base + "/v1/budgets").json()
        writer = multiprocessing.Process(target=_writer, args=(url, args.write_rate, stop, written))
        writer.start()
        target = f"{CHECK_PATH}?endpoint=%2Fsummarise-ticket"
        use_wrk = shutil.which("wrk") and not args.python_client
        if use_wrk:
            run_wrk(base + target, args.connections, 3, args.threads)  # warm-up
            load = run_wrk(base + target, args.connections, args.duration, args.threads)
        else:
            load = asyncio.run(_python_load("127.0.0.1", port, target, args.connections, args.duration))
        after = httpx.get(base + "/v1/budgets").json()
        # the same load on /healthz: what the framework and this machine give a route doing nothing
        baseline = None
        if use_wrk and args.baseline:
            baseline = run_wrk(base + "/healthz", args.connections, args.duration, args.threads)
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=30)
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    spent = (before["items"][0]["spent"], after["items"][0]["spent"])
    goal = load["rps"] >= 3000 and load["p99_ms"] <= 20 and load["errors"] == 0
    goal = goal and in_process["asgi_us"] <= 1000
    print(load["raw"], file=sys.stderr)
    print(f"Measured {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, ")
    print(f"{load['client']} against one uvicorn worker ({_uvicorn_stack()}), demo log of {rows:,} rows, ")
    print(f"a writer appending {args.write_rate} rows/s ({written.value:,} rows during the load runs).\n")
    print("| figure | value | goal |")
    print("|---|---|---|")
    print(f"| requests/s | {load['rps']:,.0f} | ≥ 3,000 |")
    print(f"| p50 latency | {load['p50_ms']:.2f} ms | |")
    print(f"| p99 latency | {load['p99_ms']:.2f} ms | ≤ 20 ms |")
    print(f"| errors (non-2xx, socket) | {load['errors']} of {load['requests']:,} | 0 |")
    if baseline is not None:
        print(
            f"| for comparison, `GET /healthz` under the same load | {baseline['rps']:,.0f} requests/s, "
            f"p50 {baseline['p50_ms']:.2f} ms, p99 {baseline['p99_ms']:.2f} ms | |"
        )
    print(f"| server time per check, whole ASGI app (200) | {in_process['asgi_us']:.0f} µs | ≤ 1 ms |")
    print(f"| … its p99 | {in_process['asgi_p99_us']:.0f} µs | |")
    print(f"| … the 422 answer | {in_process['asgi_422_us']:.0f} µs | |")
    print(f"| `BudgetTracker.check()` alone | {in_process['check_us']:.1f} µs | |")
    print(f"| month spend before → after the run | ${spent[0]:,.2f} → ${spent[1]:,.2f} | grows |")
    print(f"| figure age at the end | {after['age_seconds']} s (budget_refresh {args.refresh}) | |")
    print(f"\ngoal {'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
