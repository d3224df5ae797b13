"""The team-views benchmark (issue 20): `group_by=tag:team` and a tag filter on the dashboard set, on the
demo log with 20,000 tokens in 40 teams (their `api_tokens.tags`), SQLite and Postgres.

For each dialect and size it generates the 60-day demo log (or reuses a kept one), starts a real server,
waits until its rollups are warm, and measures with a real HTTP client, alternating in one run:
`/v1/spend?group_by=tag:team` over 30 days beside `/v1/spend?group_by=provider` (the same lens without
tags), and the dashboard set (/v1/summary, /v1/trend?window=30d&group_by=provider, /v1/live) with
`tag=team:search` beside the same set unfiltered, and the token lens (`group_by=token`, issue 18's
20,000-token target): medians, p99 and the ratios. It checks that the teams' rows add up to the
unfiltered spend to the micro-dollar, and reports the server's RSS.

    python -m bench.tags                                   # 1M and 10M, both dialects
    python -m bench.tags --sizes 1M --dialects sqlite --iterations 20
    python -m bench.tags --sizes 10M --keep /tmp/bench --postgres postgresql://…/postgres

`--keep DIR` keeps the generated logs and reuses them (as bench.dashboard does; the names differ: these
logs carry 40 teams). `--memory-mb N` sets the server's `rollup_memory_mb`: at 10M rows the token rollup
of 20,000 tokens does not fit the default 1 GiB, and every token and tag answer is then SQL. The servers
run with `cache_dir: off` (never an earlier run's snapshot).

Targets, each printed met or MISSED: `group_by=tag:team` over 30 days warm p50 ≤ 50 ms; the tag-filtered
dashboard set p50 ≤ 100 ms; the token lens p50 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.dashboard import _count, _pct, _serve, _size, _timed_get, _wait
from cost_api.tools.demo.run import run_demo
from tests.pgcluster import PgCluster, find_bindir, free_port

HERE = Path(__file__).parent
TOKENS, TEAMS = 20_000, 40
TEAM = "search"  # the first team of the demo's tags
BY_TEAM = "/v1/spend?window=30d&group_by=tag:team&limit=1000"
BY_PROVIDER = "/v1/spend?window=30d&group_by=provider"
BY_TOKEN = "/v1/spend?window=30d&group_by=token"  # the token lens over the 20,000 tokens (issue 18)
DASHBOARD = ["/v1/summary", "/v1/trend?window=30d&group_by=provider", "/v1/live"]
FILTERED = [f"{path}{'&' if '?' in path else '?'}tag=team:{TEAM}" for path in DASHBOARD]
BY_TEAM_P50_MS, FILTERED_SET_P50_MS = 50.0, 100.0


def _set(client: httpx.Client, paths: list[str]) -> float:
    started = time.perf_counter()
    for path in paths:
        _timed_get(client, path)
    return (time.perf_counter() - started) * 1000


def _adds_up(client: httpx.Client) -> bool:
    """The teams' rows (and `others`) add up to the answer's total to the micro-dollar."""
    body = _timed_get(client, BY_TEAM)[1]
    rows = [item["spend"] for item in body["items"]] + ([body["others"]["spend"]] if body["others"] else [])
    return sum(round(s * 1e6) for s in rows) == round(body["spend"] * 1e6)


def _rss_mib(client: httpx.Client) -> float:
    """The server's resident memory, from its /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("process_resident_memory_bytes"):
            return float(line.split()[-1]) / (1 << 20)
    return float("nan")


def run_one(dialect: str, url: str, rows: int, iterations: int, memory_mb: float | None) -> dict:
    port = free_port()
    settings = {} if memory_mb is None else {"COST_API_ROLLUP_MEMORY_MB": f"{memory_mb:g}"}
    proc = _serve(url, port, settings=settings)  # cache_dir off: never an earlier run's snapshot
    result: dict = {"dialect": dialect, "rows": rows, "cap": memory_mb}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            _wait(client, "/readyz", lambda r: r.status_code == 200 and r.json()["rollups"]["ready"], 1800)
            result["teams"] = len(_timed_get(client, BY_TEAM)[1]["items"])
            for paths in ([BY_TEAM], [BY_PROVIDER], [BY_TOKEN], DASHBOARD, FILTERED):  # warm each once
                _set(client, paths)
            times: dict[str, list[float]] = {"team": [], "provider": [], "token": [], "set": [], "filtered": []}
            for i in range(iterations):  # alternated, so that the machine's load weighs on all alike
                order = [
                    ("team", [BY_TEAM]),
                    ("provider", [BY_PROVIDER]),
                    ("token", [BY_TOKEN]),
                    ("set", DASHBOARD),
                    ("filtered", FILTERED),
                ]
                for name, paths in order if i % 2 == 0 else order[::-1]:
                    times[name].append(_set(client, paths))
            for name, values in times.items():
                result[name] = (statistics.median(values), _pct(values, 0.99))
            result["adds_up"] = _adds_up(client)
            result["rss"] = _rss_mib(client)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| dialect | rows | teams | group_by=tag:team p50 / p99 | group_by=provider p50 | ratio |"
        " group_by=token p50 / p99 | dashboard set, tag=team:search p50 / p99 | unfiltered set p50 | ratio |"
        " rows add up | RSS (cap) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        (team, team99), (prov, _), (dash, _), (filt, filt99) = r["team"], r["provider"], r["set"], r["filtered"]
        token, token99 = r["token"]
        lines.append(
            f"| {r['dialect']} | {r['rows']:,} | {r['teams']} | {team:.1f} / {team99:.1f} ms | {prov:.1f} ms |"
            f" {team / prov:.2f}× | {token:.1f} / {token99:.1f} ms | {filt:.1f} / {filt99:.1f} ms | {dash:.1f} ms |"
            f" {filt / dash:.2f}× |"
            f" {'yes' if r['adds_up'] else 'NO'} | {r['rss']:,.0f} MiB ({r['cap'] or 'default'}) |"
        )
    lines += ["", "Targets:", ""]
    for r in results:
        team, filt, token = r["team"][0], r["filtered"][0], r["token"][0]
        lines.append(
            f"- {r['dialect']} {r['rows']:,}: group_by=tag:team p50 ≤ {BY_TEAM_P50_MS:g} ms: {team:.1f} ms:"
            f" {'met' if team <= BY_TEAM_P50_MS else 'MISSED'}"
        )
        lines.append(
            f"- {r['dialect']} {r['rows']:,}: tag-filtered dashboard set p50 ≤ {FILTERED_SET_P50_MS:g} ms:"
            f" {filt:.1f} ms: {'met' if filt <= FILTERED_SET_P50_MS else 'MISSED'}"
        )
        lines.append(
            f"- {r['dialect']} {r['rows']:,}: group_by=token (20,000 tokens) p50 ≤ {BY_TEAM_P50_MS:g} ms (issue 18):"
            f" {token:.1f} ms: {'met' if token <= BY_TEAM_P50_MS else 'MISSED'}"
        )
    return "\n".join(lines)


def _log(dialect: str, rows: int, data: Path, server: str | None, keep: bool) -> str:
    """The demo log of `rows` rows with 20,000 tokens in 40 teams (made unless kept): its URL."""
    name = f"tags{rows}"
    if dialect == "sqlite":
        path = data / f"{name}.db"
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        assert server is not None
        subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], capture_output=True)  # kept: exists
        url = server.rsplit("/", 1)[0] + f"/{name}"
    started = time.monotonic()
    run_demo(url, days=60, requests_per_day=rows // 60, seed=7, progress=True, tokens=TOKENS, teams=TEAMS)
    if dialect == "postgres":
        subprocess.run(["psql", url, "-qc", "ANALYZE"], check=True, capture_output=True)
    print(f"{dialect}: {name} ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1M,10M")
    parser.add_argument("--dialects", default="sqlite,postgres")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tags.md")
    parser.add_argument("--keep", type=Path, help="keep the generated logs here and reuse them")
    parser.add_argument("--postgres", help="a Postgres server's URL to use instead of a throwaway cluster")
    parser.add_argument("--memory-mb", type=float, help="the server's rollup_memory_mb (default: the setting's)")
    args = parser.parse_args()
    data = args.keep or HERE / "data"
    data.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    cluster = None
    try:
        for dialect in args.dialects.split(","):
            server = args.postgres
            if dialect == "postgres" and server is None:
                bindir = find_bindir()
                if bindir is None:
                    print("postgres: no server binaries, skipped", file=sys.stderr)
                    continue
                cluster = PgCluster(bindir)
                cluster.start()
                server = cluster.dsn
            for rows in map(_size, args.sizes.split(",")):
                url = _log(dialect, rows, data, server, args.keep is not None)
                results.append(run_one(dialect, url, _count(url), args.iterations, args.memory_mb))
                print(table(results[-1:]), file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.destroy()
    report = (
        f"# Team views benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {os.cpu_count()} cores. {args.iterations} warm iterations. {TOKENS:,} tokens in {TEAMS} teams.\n\n"
        f"{table(results)}\n"
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
