"""The query registry: both dialects define the same queries with the same parameters."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from cost_api.resources import sql_dir
from cost_api.store.queries import OPTIONAL, LogColumns, QueryRegistryError, Registry, parse_file

PACKAGE = Path(__file__).parents[1] / "cost_api"


def test_shipped_queries_load_on_both_dialects() -> None:
    for dialect in ("sqlite", "postgres"):
        registry = Registry.load(sql_dir(), dialect)
        assert "groups" in registry.queries
        for query in registry:
            assert query.description, query.name


# where a query's name is passed on, not chosen: the store's fetch() (and the driver's own fetch of the
# query's SQL) and smoke (every query once)
PASS_THROUGH = {"store/base.py", "store/postgres.py", "tools/smoke.py"}
OWN_SQL = {"tools/demo.py"}  # the demo generator writes a database of its own with its own driver calls


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
    assert reading == ["groups", "hour_fingerprints", "request_rows", "rows_after", "rows_between"]
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
    for dialect, table in (("sqlite", "{request_log}"), ("postgres", "request_log")):
        (tmp_path / dialect).mkdir()
        (tmp_path / dialect / "q.sql").write_text(f"-- name: q\n-- Reads.\nSELECT 1 FROM {table};\n")
    with pytest.raises(QueryRegistryError, match="only one dialect reads"):
        Registry.load(tmp_path, "sqlite")
