"""A first start, query by query: where the time of the first dashboard set goes.

It serves `--db` with this checkout's `cost-api serve` (no snapshot: the rollups warm from the log),
every query the server runs timed as it runs, and its RSS sampled (bench.dashboard's `RssWatch`), while a
client asks the dashboard set (bench.dashboard's, one request after another) until every answer is a
200, waits for the rollups to be warm, then asks the token lens, the savings by endpoint and the
audit view until each answers. It prints one timeline, in seconds after the server was started: each
request (start, end, status) and each query of 50 ms or more (start, end, name, dimension, window, slot),
then the RSS at its peak and when, and its peak in each phase: until the first set, until the rollups
are warm, and after.

    python -m bench.timeline --db chdb:////tmp/h-ch100m/d100m       # bench.clickhouse_100m's log
    python -m bench.timeline --db sqlite:////tmp/bench/10M.db --memory-mb 512

The server is this module run with `--serve` (a child process): `cost_api.cli` with the store's
`Database._query_now` wrapped to write each query's times to stderr, which the parent reads afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.dashboard import COLD_RETRY_SECONDS, DASHBOARD, RssWatch, _wait
from tests.pgcluster import free_port

AFTER_WARM = ["/v1/spend?group_by=token", "/v1/savings?group_by=endpoint", "/v1/requests"]
SHOWN_S = 0.05  # queries shorter than this are left out
QUERY = "Q"  # the first field of a query's line on the server's stderr
T0 = "BENCH_TIMELINE_T0"  # the wall clock (seconds) the server's times are counted from


def serve_timed(args: list[str]) -> int:
    """`cost-api` with every query's start and end written to stderr (seconds after this process began)."""
    from cost_api.cli import main
    from cost_api.store.base import Database

    began = float(os.environ[T0])  # the parent's clock when it started this process
    query = Database._query_now  # a read of the warm-up's is timed once it runs, not while behind answers

    async def timed(self: Database, name: str, params: dict[str, Any], run: Any) -> Any:
        start = time.time()
        try:
            return await query(self, name, params, run)
        finally:
            end = time.time()
            if end - start >= SHOWN_S:
                window = f"{str(params.get('start'))[:16]}..{str(params.get('end'))[:16]}"
                what = f"{name} dim={params.get('dim')!r} {window} slot={params.get('slot_ms')}"
                print(f"{QUERY}\t{start - began:.2f}\t{end - began:.2f}\t{what}", file=sys.stderr, flush=True)

    Database._query_now = timed  # type: ignore[method-assign]
    return main(args)


def first_start(db: str, memory_mb: float | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    env.update(COST_API_QUERY_TIMEOUT="300s", COST_API_CACHE_DIR="off")
    if memory_mb is not None:
        env["COST_API_ROLLUP_MEMORY_MB"] = f"{memory_mb:g}"
    port = free_port()
    lines: list[tuple[float, str]] = []
    with tempfile.TemporaryFile() as err:
        began = time.time()
        env[T0] = repr(began)
        command = [sys.executable, "-m", "bench.timeline", "--serve", "serve", "--db", db, "--port", str(port)]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        rss = RssWatch(proc)
        rss.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:

                def ask(path: str) -> int:
                    start = time.time() - began
                    status = client.get(path).status_code
                    lines.append((start, f"{start:7.2f} {time.time() - began:7.2f}  {status}  {path}"))
                    return status

                _wait(client, "/healthz", lambda r: r.status_code == 200, 60)
                while not all(ask(path) == 200 for path in DASHBOARD):
                    time.sleep(COLD_RETRY_SECONDS)
                set_at = time.time() - began
                _wait(client, "/readyz", lambda r: r.status_code == 200 and r.json()["rollups"]["ready"], 600)
                warm_at = time.time() - began
                for path in AFTER_WARM:
                    while ask(path) != 200:
                        time.sleep(COLD_RETRY_SECONDS)
        finally:
            proc.terminate()
            proc.wait()
            rss.stop()
        err.seek(0)
        for line in err.read().decode().splitlines():
            if line.startswith(f"{QUERY}\t"):
                _, start, end, what = line.split("\t", 3)
                lines.append((float(start), f"{float(start):7.2f} {float(end):7.2f}  query {what}"))
    return [
        "  start     end  request (status) or query, seconds after `cost-api serve` started",
        *(text for _, text in sorted(lines)),
        f"first full dashboard set at {set_at:.1f} s; rollups warm at {warm_at:.1f} s",
        f"RSS at its peak {rss.peak_mib:,.0f} MiB, at {rss.peak_at - began:.1f} s",
        "RSS at its peak until the first set, until warm, after: "
        + " / ".join("–" if mib is None else f"{mib:,.0f} MiB" for mib in _peaks(rss.samples, began, set_at, warm_at)),
    ]


def _peaks(samples: list[tuple[float, float]], began: float, *ends: float) -> list[float | None]:
    """The highest of `samples` (time, MiB) before each of `ends` (seconds after `began`) and after the
    one before it, and after the last; None where no sample falls (the rollups warm by the first set)."""
    bounds = [0.0, *ends, float("inf")]
    return [
        max((mib for at, mib in samples if low <= at - began < high), default=None)
        for low, high in itertools.pairwise(bounds)
    ]


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        return serve_timed(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="the log's database URL (it is only read)")
    parser.add_argument("--memory-mb", type=float, help="the server's rollup_memory_mb (default: the setting's)")
    parser.add_argument("--out", type=Path, help="write the timeline there too")
    args = parser.parse_args()
    text = "\n".join(first_start(args.db, args.memory_mb))
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
