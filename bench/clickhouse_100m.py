"""The dashboard benchmark on ClickHouse (chDB) at 100M rows, the log generated inside the engine.

`INSERT … SELECT … FROM numbers(N)` writes N rows over the 60 days up to now into a chDB directory
(sql/schema/clickhouse.sql's table; the demo catalogue's models and 20 endpoints, skewed: the first
ones most called, as in the demo; 20,000 tokens, skewed more; one request in fifty anonymous, one in
ten a cache hit, one in fifty an error), then bench.dashboard's `run_one` serves it and
measures what bench.dashboard measures: the first dashboard set after start, the time until the
rollups are warm, the warm set (median, p99), every lens alone, and the server's RSS.

    python -m bench.clickhouse_100m                       # 100M rows (~10 min)
    python -m bench.clickhouse_100m --rows 10M --iterations 10
    python -m bench.clickhouse_100m --memory-mb 256 --dir /tmp/chdb-100m   # the rollups' cap; the log elsewhere
    python -m bench.clickhouse_100m --dir /tmp/chdb-100m --reuse           # the log of an earlier run again

It prints issue 19's goals met or MISSED; the server is stopped past --rss-limit-mib.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from bench.dashboard import _size, run_one, table
from cost_api.resources import sql_dir
from cost_api.store.clickhouse import chdb_connect
from cost_api.tools.demo.catalogue import MODELS

HERE = Path(__file__).parent
DAY_MS = 86_400_000
FILL = """INSERT INTO request_log (id, created_at, request_id, provider, model, endpoint, token_id, status_code,
    streamed, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cache_hit,
    prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key)
SELECT number + 1,
    fromUnixTimestamp64Milli(toInt64({start} + intDiv(number * {span}, {rows})), 'UTC'),
    toString(generateUUIDv4(number)),
    {providers}[m], {models}[m],
    concat('/v1/e', toString(toUInt32(20 * pow((sipHash64(number, 2) % 1000000) / 1e6, 2)))),
    if(sipHash64(number, 10) % 50 = 0, NULL,
       concat('tok_', lower(hex(sipHash64(toUInt32(20000 * pow((sipHash64(number, 3) % 1000000) / 1e6, 3))))))),
    if(number % 50 = 0, 500, 200), number % 3 = 0,
    if(hit, 0, 200 + sipHash64(number, 4) % 4000), if(hit, 0, 20 + sipHash64(number, 5) % 800),
    if(hit, 0, sipHash64(number, 6) % 1000), 0, hit,
    if(hit, 200 + sipHash64(number, 4) % 4000, 0), if(hit, 20 + sipHash64(number, 5) % 800, 0),
    100 + sipHash64(number, 7) % 3000, if(hit, concat('ck_', toString(sipHash64(number, 8) % 100000)), NULL)
FROM (SELECT number, toUInt32({n_models} * pow((sipHash64(number, 1) % 1000000) / 1e6, 2)) + 1 AS m,
             sipHash64(number, 9) % 10 = 0 AS hit
      FROM numbers({rows}))"""


def generate(directory: Path, rows: int) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    conn = chdb_connect(str(directory))
    try:
        for statement in (sql_dir() / "schema" / "clickhouse.sql").read_text().split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
            if body.strip():
                conn.query(body)
        end = int(time.time() * 1000)
        conn.query(
            FILL.format(
                start=end - 60 * DAY_MS,
                span=60 * DAY_MS,
                rows=rows,
                providers=[p for p, *_ in MODELS],
                models=[m for _, m, *_ in MODELS],
                n_models=len(MODELS),
            )
        )
    finally:
        conn.close()


# issue 19's goals at 100M rows: the dashboard set and every lens (warm p50, ms), the first correct set
# and warm rollups (s after `cost-api serve` starts), the served process's RSS, chDB included (MiB)
SET_P50_MS, LENS_P50_MS, FIRST_SET_S, READY_S, RSS_MIB = 100.0, 250.0, 15.0, 60.0, 2048.0


def targets(r: dict) -> list[str]:
    """Each goal of issue 19 for one run, met or MISSED."""

    def line(what: str, value: float, unit: str, most: float) -> str:
        verdict = "met" if value <= most else "MISSED"
        return f"- chdb {r['rows']:,}: {what} ≤ {most:g} {unit}: {value:,.1f} {unit}: {verdict}"

    return [
        line("dashboard set p50", r["set_p50"], "ms", SET_P50_MS),
        *(line(f"`{path}` p50", ms, "ms", LENS_P50_MS) for path, ms in r["lenses"].items()),
        line("first correct set after start", r["first_set_s"], "s", FIRST_SET_S),
        line("rollups warm after start", r["ready_s"], "s", READY_S),
        line("RSS at its peak", r["rss_peak_mib"], "MiB", RSS_MIB),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="100M")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--memory-mb", type=float, help="the server's rollup_memory_mb (default: the setting's)")
    parser.add_argument("--dir", type=Path, help="where to write the log (default: bench/data/chdb-gen-<rows>)")
    parser.add_argument("--reuse", action="store_true", help="serve the log an earlier run wrote in --dir")
    parser.add_argument(
        "--rss-limit-mib", type=float, default=8192, help="stop the server past this RSS (default 8192)"
    )
    args = parser.parse_args()
    rows = _size(args.rows)
    directory = (args.dir or HERE / "data" / f"chdb-gen-{rows}").resolve()
    if not args.reuse:
        started = time.monotonic()
        generate(directory, rows)
        print(f"chdb: {rows:,} rows generated in {time.monotonic() - started:.0f}s", file=sys.stderr)
    url = f"chdb:///{directory}"
    result = run_one("chdb", url, rows, args.iterations, args.memory_mb, rss_limit_mib=args.rss_limit_mib)
    print(table([result], targets))
    primed = ", ".join(f"{path} {ms / 1000:.1f} s" for path, ms in result["primed_ms"].items() if ms >= 1000)
    print(f"\nonce warm, the first full set after {result['settled_ms'] / 1000:.1f} s; first answers: {primed or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
