"""The summary lens in-process while rows are appended: what the open hours cost an answer.

It generates a demo log (SQLite; its 60,000-row retry storm lands in the open hours) or copies the
one given with --db, warms an Aggregator on it, then --calls times appends --rows rows dated now
and computes `/v1/summary`'s answer (30 days, top lists over 7), one at a time: p50 and p99 of the
answer alone (no HTTP, no other client). Run on two trees to compare them:

    python -m bench.open_hours --db /tmp/demo.db                       # this tree
    git archive main cost_api sql pricing.yaml | tar -x -C /tmp/main-tree
    PYTHONPATH=/tmp/main-tree python -m bench.open_hours --db /tmp/demo.db
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import tempfile
import time
import zoneinfo
from datetime import timedelta
from pathlib import Path

from bench.load import COLUMNS, WRITES


async def measure(path: Path, calls: int, rows: int) -> list[float]:
    from cost_api.aggregation.aggregator import Filters
    from cost_api.config import load_settings
    from cost_api.lenses.summary import summary_answer
    from cost_api.web.service import build_service
    from cost_api.windows import parse_window

    service = build_service(load_settings(environ={}, overrides={"database_url": f"sqlite:///{path}"}))
    conn = sqlite3.connect(str(path), isolation_level=None)
    rng = random.Random(5)
    insert = f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    times: list[float] = []
    try:
        await service.aggregator.warm()
        for n in range(calls + 3):  # three answers first, untimed
            now = int(time.time() * 1000)
            values = []
            for _ in range(rows):
                provider, model, endpoint, prompt, completion = rng.choice(WRITES)
                values.append((now, provider, model, endpoint, f"tok_{rng.randrange(20)}", 200, prompt, completion, 9))
            conn.executemany(insert, values)
            utc, now_at = zoneinfo.ZoneInfo("UTC"), service.aggregator.now()
            window = parse_window(window=None, from_=None, to=None, tz=utc, default="30d", now=now_at)
            started = time.perf_counter()
            await summary_answer(service.aggregator, window, top_window=timedelta(days=7), top=5, filters=Filters())
            if n >= 3:
                times.append(time.perf_counter() - started)
    finally:
        conn.close()
        await service.close()
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.open_hours", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="a demo SQLite file to copy (generated there when absent)")
    parser.add_argument("--requests-per-day", type=int, default=33334, help="demo density (default: ~1M rows)")
    parser.add_argument("--calls", type=int, default=60, help="timed answers (default 60)")
    parser.add_argument("--rows", type=int, default=100, help="rows appended before each answer (default 100)")
    args = parser.parse_args()
    from cost_api.tools.demo.run import run_demo

    work = Path(tempfile.mkdtemp(prefix="cost-api-open-hours-"))
    source = args.db or work / "demo.db"
    if not source.exists():
        run_demo(f"sqlite:///{source}", days=30, requests_per_day=args.requests_per_day, seed=3, progress=False)
    shutil.copy(source, work / "log.db")
    try:
        times = asyncio.run(measure(work / "log.db", args.calls, args.rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p50, p99 = times[len(times) // 2], times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    print(f"/v1/summary in-process, {args.rows} rows appended before each of {args.calls} answers: "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
