"""The restart benchmark: how soon `cost-api serve` answers the dashboard after it starts.

On the 60-day demo log at 10M rows (SQLite; generated once into /tmp and reused), it starts a real
server twice with the default `query_timeout`: cold (an empty cache directory: every closed hour
read from the log) and warm (the snapshot the cold run saved). From the start it polls the page's
own dashboard set — /v1/summary, /v1/trend?window=30d&group_by=provider, /v1/live, one after
another — and records every status and latency, and prints per run: the time to the first correct
set (all three 200, and /v1/summary at a fixed past instant equal to the warm server's answer at the
end of the run), the time until each lens's median over the last 5 sets is ≤ 50 ms, every 504, and
the warm-serving p50 beside them; pass or miss per target (first correct ≤ 15 s, p50 ≤ 30 s, no 504).

    python -m bench.restart                            # /tmp/cost-api-restart-10M.db, made if missing
    python -m bench.restart --db /tmp/log.db --runs cold,warm,warm
    python -m bench.restart --url chdb:////tmp/h-ch100m/d100m --limit 400   # bench.clickhouse_100m's log

Each run ends once the server's snapshot is current (`/readyz`: `rollups.snapshot_due` false): what the
run read of the log, the pieces by token too, is what the next run restores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.dashboard import DASHBOARD, _size
from cost_api.tools.demo.run import run_demo
from tests.pgcluster import free_port

FIRST_TARGET, P50_TARGET, LENS_MS = 15.0, 30.0, 50.0
WINDOW = 5  # sets in the rolling median


def _serve(url: str, port: int, cache: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_API_")}
    env["COST_API_CACHE_DIR"] = str(cache)  # the default query_timeout: a slow answer is a 504 here
    command = [sys.executable, "-m", "cost_api.cli", "serve", "--db", url, "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _get(client: httpx.Client, path: str) -> tuple[int, float, dict]:
    started = time.perf_counter()
    try:
        response = client.get(path)
    except httpx.HTTPError:
        return 0, (time.perf_counter() - started) * 1000, {}
    elapsed = (time.perf_counter() - started) * 1000
    return response.status_code, elapsed, response.json() if response.status_code == 200 else {}


def run_one(url: str, cache: Path, label: str, limit: float, at: str) -> dict:
    port = free_port()
    began = time.monotonic()
    proc = _serve(url, port, cache)
    sets: list[tuple[float, list[int], list[float], float | None]] = []  # (t, statuses, ms, spend at `at`)
    first = p50 = None
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            while time.monotonic() - began < limit:
                t = time.monotonic() - began
                got = [_get(client, path) for path in DASHBOARD]
                if got[0][0] == 0:  # not listening yet
                    time.sleep(0.1)
                    continue
                fixed = _get(client, f"/v1/summary?to={at}") if all(g[0] == 200 for g in got) else None
                sets.append((t, [g[0] for g in got], [g[1] for g in got], fixed[2].get("spend") if fixed else None))
                recent = sets[-WINDOW:]
                if p50 is None and len(recent) == WINDOW and all(all(s == 200 for s in r[1]) for r in recent):
                    medians = [statistics.median(r[2][i] for r in recent) for i in range(len(DASHBOARD))]
                    if max(medians) <= LENS_MS:
                        p50 = t
                if p50 is not None and len(sets) >= 20 and t - p50 > 5:
                    break
                time.sleep(0.1)
            ready = client.get("/readyz").json().get("rollups", {})
            reference = _get(client, f"/v1/summary?to={at}")[2].get("spend")
            snapshot = _snapshot_saved(client, cache, 120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for t, statuses, _, spend in sets:
        if first is None and all(s == 200 for s in statuses) and spend is not None and abs(spend - reference) < 1e-6:
            first = t
    tail = sets[-20:]
    return {
        "run": label,
        "first": first,
        "p50": p50,
        "504": sum(s == 504 for _, statuses, _, _ in sets for s in statuses),
        "other": sum(s not in (200, 504) for _, statuses, _, _ in sets for s in statuses),
        "requests": sum(len(r[1]) for r in sets),
        "warm_p50": [statistics.median(r[2][i] for r in tail) for i in range(len(DASHBOARD))],
        "warm_seconds": ready.get("warm_seconds"),
        "restored": ready.get("hours_restored"),
        "read": ready.get("hours_read"),
        "snapshot": snapshot,
    }


def _snapshot_saved(client: httpx.Client, cache: Path, limit: float) -> bool:
    """Whether the server saved its snapshot of all it holds (waited for: the next run restores it)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        due = client.get("/readyz").json().get("rollups", {}).get("snapshot_due")
        if due is False and any(cache.glob("rollups-*.npz")):
            return True
        time.sleep(0.5)
    return False


def _mark(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def table(results: list[dict]) -> str:
    lines = [
        "| run | first correct set | p50 ≤ 50 ms per lens | 504s (of requests) | other errors | warm-up |"
        " hours restored / read | warm p50 summary / trend / live | targets: ≤ 15 s, ≤ 30 s, no 504 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        first = "never" if r["first"] is None else f"{r['first']:.1f} s"
        p50 = "never" if r["p50"] is None else f"{r['p50']:.1f} s"
        marks = (
            _mark(r["first"] is not None and r["first"] <= FIRST_TARGET),
            _mark(r["p50"] is not None and r["p50"] <= P50_TARGET),
            _mark(r["504"] == 0),
        )
        warm = "–" if r["warm_seconds"] is None else f"{r['warm_seconds']:.1f} s"
        lines.append(
            f"| {r['run']} | {first} | {p50} | {r['504']} ({r['requests']}) | {r['other']} | {warm} |"
            f" {r['restored']} / {r['read']} | {' / '.join(f'{v:.1f}' for v in r['warm_p50'])} ms |"
            f" {', '.join(marks)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "cost-api-restart-10M.db")
    parser.add_argument("--rows", default="10M", help="rows of the demo log, when it has to be made")
    parser.add_argument("--url", help="serve this database URL instead of --db (e.g. chdb:///dir): only read")
    parser.add_argument("--runs", default="cold,warm", help="cold: an empty cache directory; warm: the last one's")
    parser.add_argument("--limit", type=float, default=240.0, help="seconds a run may take")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{args.db}"
    if args.url is None and not args.db.exists():
        rows = _size(args.rows)
        written = run_demo(url, days=60, requests_per_day=rows // 60, seed=7, progress=True)
        print(f"{written:,} rows written to {args.db}", file=sys.stderr)
    at = datetime.fromtimestamp((time.time() // 3600 - 1) * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results = []
    with tempfile.TemporaryDirectory(prefix="cost-api-restart-") as tmp:
        cache = Path(tmp)
        for label in args.runs.split(","):
            if label == "cold":
                for old in cache.iterdir():
                    old.unlink()
            results.append(run_one(url, cache, label, args.limit, at))
            print(table(results[-1:]), file=sys.stderr)
    print(f"# Restart benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.url or args.db}\n\n{table(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
