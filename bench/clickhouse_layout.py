"""The ClickHouse table's layout, measured on chDB: which sorting key, and whether `id` needs a skip
index. For each candidate it generates N rows inside the engine (from `numbers()`: 60 days, ids rising
with created_at, 6 providers, 40 models, 20 endpoints, 2,000 tokens) into sql/schema/clickhouse.sql's
table with that key, then reports the table's size on disk and the median (and p99) of 15 runs of:

- `groups`-like: a 30-day sum by hour, provider, model (the dashboard's base read);
- `groups`-like by token over 7 days (a high-cardinality lens);
- `rows_after`-like: the rows with an id above the last 1,000 (the incremental read of new rows).

    python -m bench.clickhouse_layout              # 10M rows (~3 min)
    python -m bench.clickhouse_layout --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from cost_api.store.clickhouse import chdb_connect

DAY_MS = 86_400_000
CANDIDATES = {
    "created_at": ("ORDER BY created_at", ""),
    "created_at + id minmax": ("ORDER BY created_at", ", INDEX id_minmax id TYPE minmax GRANULARITY 1"),
    "hour, provider, model, created_at": ("ORDER BY (toStartOfHour(created_at), provider, model, created_at)", ""),
}
TABLE = """CREATE TABLE request_log (
    id UInt64, created_at DateTime64(3, 'UTC'), provider LowCardinality(String), model LowCardinality(String),
    endpoint LowCardinality(String), token_id Nullable(String), status_code Nullable(Int32),
    prompt_tokens Int64, completion_tokens Int64, cache_hit Bool{index}
) ENGINE = MergeTree PARTITION BY toYYYYMM(created_at) {order}"""
FILL = """INSERT INTO request_log SELECT number + 1,
    fromUnixTimestamp64Milli(toInt64(1760000000000 + intDiv(number * {span}, {rows})), 'UTC'),
    ['openai', 'anthropic', 'google', 'mistral', 'cohere', 'xai'][number % 6 + 1],
    concat('model-', toString(sipHash64(number, 1) % 40)), concat('/e', toString(sipHash64(number, 2) % 20)),
    concat('tok_', toString(sipHash64(number, 3) % 2000)), if(number % 50 = 0, 500, 200),
    sipHash64(number, 4) % 4000, sipHash64(number, 5) % 800, number % 7 = 0
FROM numbers({rows})"""
QUERIES = {
    "30-day base": "SELECT intDiv(toUnixTimestamp64Milli(created_at), 3600000) AS h, provider, model, count(),"
    " sum(prompt_tokens), sum(completion_tokens) FROM request_log WHERE created_at >= {start} AND created_at < {end}"
    " GROUP BY h, provider, model",
    "7-day by token": "SELECT intDiv(toUnixTimestamp64Milli(created_at), 3600000) AS h, provider, model, token_id,"
    " count(), sum(prompt_tokens) FROM request_log WHERE created_at >= {week} AND created_at < {end}"
    " GROUP BY h, provider, model, token_id",
    "rows after id": "SELECT * FROM request_log WHERE id > {after} ORDER BY id",
}


def _ms(when: int) -> str:
    return f"fromUnixTimestamp64Milli({when}, 'UTC')"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    rows, start = args.rows, 1_760_000_000_000
    end = start + 60 * DAY_MS
    with tempfile.TemporaryDirectory() as directory:
        conn = chdb_connect(directory)
        print(f"{rows:,} rows; median / p99 of 15 runs, ms")
        for name, (order, index) in CANDIDATES.items():
            conn.query("DROP TABLE IF EXISTS request_log SYNC")
            conn.query(TABLE.format(order=order, index=index))
            conn.query(FILL.format(rows=rows, span=60 * DAY_MS))
            conn.query("OPTIMIZE TABLE request_log FINAL")
            size = json.loads(
                bytes(
                    conn.query(
                        "SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'request_log' AND active",
                        "JSONCompact",
                    ).bytes()
                )
            )["data"][0][0]
            print(f"{name}: {int(size) / 2**20:.0f} MiB on disk")
            for label, sql in QUERIES.items():
                text = sql.format(
                    start=_ms(end - 30 * DAY_MS), end=_ms(end), week=_ms(end - 7 * DAY_MS), after=rows - 1000
                )
                times = []
                for _ in range(15):
                    t0 = time.perf_counter()
                    conn.query(text, "JSONCompact")
                    times.append((time.perf_counter() - t0) * 1000)
                p99 = sorted(times)[-1]
                print(f"  {label}: {statistics.median(times):.1f} / {p99:.1f}")
        conn.close()


if __name__ == "__main__":
    main()
