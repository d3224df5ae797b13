"""The query registry: both dialects define the same queries with the same parameters."""

from __future__ import annotations

import ast
import json
import re
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from cost_api.aggregation.priced import ROW_COLUMNS
from cost_api.aggregation.rollups import FINGERPRINT
from cost_api.resources import sql_dir
from cost_api.store.clickhouse import ch_value
from cost_api.store.queries import OPTIONAL, LogColumns, QueryRegistryError, Registry, parse_file, result_columns
from cost_api.store.result import Rows
from cost_api.store.sqlite import _sqlite_value, key_hash
from cost_api.tools.smoke import harmless_params

from ..logdb import LogDB

PACKAGE = Path(__file__).parents[2] / "cost_api"


def test_shipped_queries_load_on_both_dialects() -> None:
    for dialect in ("sqlite", "postgres"):
        registry = Registry.load(sql_dir(), dialect)
        assert "groups" in registry.queries
        for query in registry:
            assert query.description, query.name


# where a query's name is passed on, not chosen: the store's fetch() (and the driver's own fetch of the
# query's SQL) and smoke (every query once)
PASS_THROUGH = {"store/base.py", "store/postgres.py", "tools/smoke.py"}
OWN_SQL = {"tools/demo/stores.py"}  # the demo generator writes a database of its own with its own driver calls


def _fetched_names() -> dict[str, list[str]]:
    """Every query name the package runs: the literal first argument of each `fetch(...)` or
    `_fetch(...)` call, read from the syntax tree (a name in a comment or a docstring is no use)."""
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() in OWN_SQL:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("fetch", "_fetch")
                and node.args
            ):
                first = node.args[0]
                if path.relative_to(PACKAGE).as_posix() in PASS_THROUGH and not isinstance(first, ast.Constant):
                    continue
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path}:{node.lineno}: a query is named by a literal, so that this test can check it"
                )
                found.setdefault(first.value, []).append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_every_query_is_used_and_every_used_query_exists() -> None:
    fetched = _fetched_names()
    registered = {q.name for q in Registry.load(sql_dir(), "sqlite")}
    assert sorted(registered - set(fetched)) == []  # registered, run by nothing
    assert {name: fetched[name] for name in set(fetched) - registered} == {}  # run, never registered


def test_parameters_are_rewritten_per_driver(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- name: pick\n-- Picks.\nSELECT :a, :b::int, ':c', :a FROM t WHERE x = :b\n")
    (lite,) = parse_file(path, "sqlite")
    (pg,) = parse_file(path, "postgres")
    assert lite.sql == "SELECT ?, ?::int, ':c', ? FROM t WHERE x = ?"
    assert lite.params == ("a", "b", "a", "b")
    assert pg.sql == "SELECT $1, $2::int, ':c', $1 FROM t WHERE x = $2"
    assert pg.params == ("a", "b")
    assert pg.bind({"a": 1, "b": 2}) == [1, 2]


def test_clickhouse_parameters_are_its_own_typed_ones(tmp_path: Path) -> None:
    """`{name:Type}`, bound by name: the text stays as written; none is read from a string literal, a
    comment (an apostrophe in one included) or the `{request_log}` placeholder."""
    path = tmp_path / "q.sql"
    text = (
        "SELECT {a:Int64}, '{c:String}' -- the holes' part\n"
        "FROM {request_log} WHERE x = {b:Nullable(String)} OR y = {a:Int64}"
    )
    path.write_text(f"-- name: pick\n-- Picks.\n{text}\n")
    (ch,) = parse_file(path, "clickhouse")
    assert (ch.sql, ch.params) == (text, ("a", "b"))
    assert ch.bind({"a": 1, "b": None}) == [1, None]


def _copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(sql_dir(), target)
    return target


def test_a_query_in_one_dialect_only_stops_start_up(tmp_path: Path) -> None:
    sql = _copy_sql(tmp_path)
    (sql / "sqlite" / "extra.sql").write_text("-- name: lonely\n-- Only here.\nSELECT 1;\n")
    with pytest.raises(QueryRegistryError, match=re.escape("lonely (only in sql/sqlite/)")):
        Registry.load(sql, "postgres")


def test_different_parameters_stop_start_up(tmp_path: Path) -> None:
    sql = _copy_sql(tmp_path)
    (sql / "sqlite" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT :a, :b;\n")
    (sql / "postgres" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT :a;\n")
    (sql / "clickhouse" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT {a:Int64};\n")
    with pytest.raises(QueryRegistryError, match="query pair: the dialects take different parameters"):
        Registry.load(sql, "sqlite")


def test_a_query_without_description_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "q.sql"
    path.write_text("-- name: bare\nSELECT 1;\n")
    with pytest.raises(QueryRegistryError, match="needs a description"):
        parse_file(path, "sqlite")


def test_queries_reading_the_log_run_only_once_bound() -> None:
    """`{request_log}`: the log itself when it has every optional column, else a fixed subquery giving
    each missing one its default; unbound, such a query refuses to run."""
    registry = Registry.load(sql_dir(), "postgres")
    reading = sorted(q.name for q in registry if q.reads_log)
    assert reading == ["groups", "hour_fingerprints", "hour_ids", "request_rows", "rows_after", "rows_between"]
    with pytest.raises(QueryRegistryError, match="groups reads"):
        registry["groups"]
    assert registry["log_bounds"].sql  # the others need no binding
    full = LogColumns.of(["id", "created_at", *OPTIONAL])
    assert full.table_expression("postgres") == "request_log"
    bound = registry.bind(full.table_expression("postgres"))
    assert "FROM request_log\n" in bound["groups"].sql and "{request_log}" not in bound["groups"].sql
    partial = LogColumns.of(["id", "created_at", "USAGE_EXACT"])
    assert (partial.read, partial.absent) == (("usage_exact",), ("cache_write_1h_tokens", "service_tier"))
    expression = partial.table_expression("postgres")
    assert expression == (
        "(SELECT *, 0 AS cache_write_1h_tokens, NULL::text AS service_tier FROM request_log) AS request_log"
    )
    rebound = bound.bind(expression)  # from the unbound text, not the first binding
    assert rebound["rows_after"].sql.count(expression) == 2
    assert rebound["rows_after"].params == registry.queries["rows_after"].params
    assert not LogColumns.of([]).table_found


def test_a_placeholder_in_one_dialect_only_stops_start_up(tmp_path: Path) -> None:
    for dialect, table in (("sqlite", "{request_log}"), ("postgres", "request_log"), ("clickhouse", "request_log")):
        (tmp_path / dialect).mkdir()
        (tmp_path / dialect / "q.sql").write_text(f"-- name: q\n-- Reads.\nSELECT 1 FROM {table};\n")
    with pytest.raises(QueryRegistryError, match="only some dialects read"):
        Registry.load(tmp_path, "sqlite")


# --------------------------------------------------------------------------- named result columns


def test_result_columns_are_read_from_the_outermost_select_list() -> None:
    text = """WITH x AS (SELECT 1 AS inner_only)  -- a comment, with, commas
    SELECT DISTINCT t.a, b AS c, CAST(z AS int) AS z2, 'x, y' AS s, (SELECT max(q) FROM r) AS newest,
           count(*) FILTER (WHERE k = 0) AS n
    FROM x UNION ALL SELECT 1, 2, 3, 4, 5, 6"""
    assert result_columns(text) == ("a", "c", "z2", "s", "newest", "n")
    for unnamed, shown in [
        ("SELECT a, sum(b) FROM t", "result column 2 (sum(b))"),
        ("SELECT x::int FROM t", "(x::int)"),
        ("SELECT CAST(x AS int) FROM t", "(CAST(x AS int))"),
        ("SELECT 0, NULL", "result column 1 (0)"),
        ("SELECT a AS Upper FROM t", "(a AS Upper)"),
        ("SELECT * FROM t", "(*)"),
    ]:
        with pytest.raises(QueryRegistryError, match=re.escape(shown)):
            result_columns(unnamed)
    with pytest.raises(QueryRegistryError, match="two result columns are named a"):
        result_columns("SELECT a, b AS a FROM t")


def test_every_shipped_query_names_its_columns_alike_in_both_dialects() -> None:
    lite, pg = (Registry.load(sql_dir(), d) for d in ("sqlite", "postgres"))
    for query in lite:
        assert query.columns, query.name
        assert query.columns == pg.queries[query.name].columns, query.name
    # the names the readers above the store ask for
    assert set(lite.queries["groups"].columns) == set(ROW_COLUMNS)
    assert set(ROW_COLUMNS) | {"token_id", "id"} == set(lite.queries["rows_between"].columns)
    assert lite.queries["rows_after"].columns == lite.queries["rows_between"].columns
    assert lite.queries["hour_fingerprints"].columns == ("hour", *FINGERPRINT)


def test_an_unnamed_result_column_or_different_names_stop_start_up(tmp_path: Path) -> None:
    sql = _copy_sql(tmp_path)
    (sql / "sqlite" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT a, count(*) FROM t GROUP BY a;\n")
    (sql / "postgres" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT a, count(*) AS n FROM t GROUP BY a;\n")
    (sql / "clickhouse" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT a, count() AS n FROM t GROUP BY a;\n")
    with pytest.raises(QueryRegistryError, match=r"sqlite/extra.sql: query pair: result column 2 \(count\(\*\)\)"):
        Registry.load(sql, "postgres")
    (sql / "sqlite" / "extra.sql").write_text("-- name: pair\n-- Two.\nSELECT a, count(*) AS m FROM t GROUP BY a;\n")
    with pytest.raises(
        QueryRegistryError, match=re.escape("query pair: the dialects name different result columns (sqlite: a, m;")
    ):
        Registry.load(sql, "sqlite")


async def test_the_driver_names_each_column_as_the_registry_does(log: LogDB) -> None:
    """What `Rows` calls a column is what the database itself calls it, on both dialects: the names
    the registry reads from the SQL are checked against the driver's, for every query."""
    registry = Registry.load(sql_dir(), log.dialect)
    registry = registry.bind(LogColumns.of(["id", *OPTIONAL]).table_expression(log.dialect))
    params = harmless_params({f"t{i}": 2**62 for i in range(1, 9)}, datetime(2026, 11, 20, 12, tzinfo=UTC))
    if log.dialect == "sqlite":
        with sqlite3.connect(log.path) as conn:  # type: ignore[attr-defined]
            conn.create_function("key_hash", 1, key_hash, deterministic=True)  # as the store's connections
            for query in registry:
                cursor = conn.execute(query.sql, [_sqlite_value(v) for v in query.bind(params)])
                assert tuple(d[0] for d in cursor.description) == query.columns, query.name
        return
    if log.dialect == "clickhouse":
        for query in registry:
            values = {p: ch_value(v) for p, v in zip(query.params, query.bind(params), strict=True)}
            answer = json.loads(log.conn.query(query.sql, "JSONCompact", params=values).bytes())  # type: ignore[attr-defined]
            assert tuple(column["name"] for column in answer["meta"]) == query.columns, query.name
        return
    conn = await asyncpg.connect(log.url)
    try:
        for query in registry:
            statement = await conn.prepare(query.sql)
            assert tuple(a.name for a in statement.get_attributes()) == query.columns, query.name
    finally:
        await conn.close()


def test_rows_are_read_by_column_name() -> None:
    rows = Rows([(1, "a", None), (2, "b", 5)], ("id", "name", "n"))
    assert rows == [(1, "a", None), (2, "b", 5)]  # still a list of tuples
    assert rows.columns() == {"id": (1, 2), "name": ("a", "b"), "n": (None, 5)}
    assert rows.column("name") == ["a", "b"]
    assert list(rows.pick("n", "id")) == [(None, 1), (5, 2)]
    assert list(rows.pick("id")) == [(1,), (2,)]
    assert rows.first("name") == "a"
    assert rows.first("id", "n") == (1, None)
    empty = Rows([], ("oldest", "newest"))
    assert empty.first("oldest", "newest", default=(None, None)) == (None, None)
    assert empty.columns() == {"oldest": (), "newest": ()}
    for read in (rows.column, rows.pick, empty.first, lambda name: rows.columns()[name], empty.columns().__getitem__):
        with pytest.raises(KeyError, match="has no column 'missing'"):
            read("missing")
    with pytest.raises(ValueError):  # a row wider than the names: not read silently
        Rows([(1, 2)], ("id",)).columns()
