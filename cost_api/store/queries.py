"""The query registry: hand-written SQL files, one folder per dialect, loaded once at start-up.

Each query in `sql/<dialect>/*.sql` starts with `-- name: <name>`, then at least one `--` line
describing it, then the SQL with `:named` parameters. At load time the parameters are rewritten
to the driver's style: `?` for sqlite3/aiosqlite, `$1…$n` for asyncpg; ClickHouse queries write
their parameters typed in its own syntax, `{name:Type}`, which its drivers bind by name. Every dialect
must define the same queries with the same parameters, or start-up fails saying which query differs.

Every column a query returns has a name: a column of its own (`provider`, `t.provider`) or an alias
(`count(*) AS requests`), read from the outermost select list at load time (`Query.columns`). Both
dialects must name the same columns in the same order; the rows come back as a `result.Rows`, whose
columns are read by those names.

A query that names the table `{request_log}` reads the log's optional columns: it runs only from a
registry `bind()`-ing that placeholder to the table expression of the log at hand (`LogColumns`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

DIALECTS = ("sqlite", "postgres", "clickhouse")

_HEADER = re.compile(r"^--\s*name:\s*([a-z][a-z0-9_]*)\s*$")
# `:name`, but not the `::type` casts of Postgres and not inside string literals.
_PARAM = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([a-z_][a-z0-9_]*)")
# ClickHouse's own `{name:Type}` (the `{request_log}` placeholder has no type), not inside string literals
# or comments.
_TYPED_PARAM = re.compile(r"--[^\n]*|'(?:[^'\\]|\\.|'')*'|\{([a-z_][a-z0-9_]*):[^}]+\}")


class QueryRegistryError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    description: str
    text: str  # as written, with :named parameters
    sql: str  # rewritten for the driver
    params: tuple[str, ...]  # the driver's positional order (asyncpg: distinct names, $1…$n)
    source: str  # file the query came from
    columns: tuple[str, ...] = ()  # the result's column names, in the select list's order (`Registry.load`)

    @property
    def reads_log(self) -> bool:
        """Whether the query names the table `{request_log}` (bound by `Registry.bind`)."""
        return PLACEHOLDER in self.text

    def bind(self, values: dict[str, object]) -> list[object]:
        missing = [p for p in dict.fromkeys(self.params) if p not in values]
        if missing:
            raise QueryRegistryError(f"query {self.name}: missing parameters {', '.join(missing)}")
        return [values[p] for p in self.params]


def _rewrite(text: str, dialect: str) -> tuple[str, tuple[str, ...]]:
    order: list[str] = []
    if dialect == "clickhouse":  # bound by name: the text stays as written
        names = (match.group(1) for match in _TYPED_PARAM.finditer(text))
        return text, tuple(dict.fromkeys(name for name in names if name is not None))

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:  # a string literal
            return match.group(0)
        if dialect == "sqlite":
            order.append(name)
            return "?"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _PARAM.sub(replace, text), tuple(order)


# The select list's pieces: string literals, quoted names and comments (each read whole), parentheses,
# commas, words; any other character alone.
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|[A-Za-z_][A-Za-z0-9_$]*|\S""")
# words that end the outermost select list
_AFTER_SELECT = frozenset(
    {"from", "where", "group", "having", "window", "order", "limit", "offset", "fetch", "for", "into"}
    | {"union", "intersect", "except"}
)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_NOT_A_COLUMN = frozenset({"null", "true", "false", "current_date", "current_time", "current_timestamp"})


def result_columns(text: str) -> tuple[str, ...]:
    """The names of a query's result columns, from its outermost select list: each item is a column
    (`x`, `t.x`) or ends with `AS name`, a lower-case name (which both drivers return as written)."""
    items: list[list[tuple[re.Match[str], int]]] = []  # each item's tokens, with their depth
    depth = 0
    for token in _TOKEN.finditer(text):
        word = token.group(0).lower()
        if word.startswith("--"):
            continue
        if not items:  # before the outermost SELECT (a WITH clause, say)
            if depth == 0 and word == "select":
                items.append([])
            depth += (word == "(") - (word == ")")
            continue
        if depth == 0 and (word in _AFTER_SELECT or word == ";"):
            break
        depth += (word == "(") - (word == ")")
        if depth == 0 and word == ",":
            items.append([])
        elif not (items == [[]] and word in ("distinct", "all")):
            items[-1].append((token, depth))
    if not items:
        raise QueryRegistryError("no SELECT")
    names: list[str] = []
    for number, item in enumerate(items, 1):
        words = [token.group(0) for token, _ in item]
        aliased = len(words) >= 3 and words[-2].lower() == "as" and item[-2][1] == 0
        column = len(words) == 1 or (len(words) == 3 and words[1] == ".")  # x, or t.x
        name = words[-1] if aliased or column else ""
        if not _NAME.fullmatch(name) or name in _NOT_A_COLUMN:
            shown = " ".join(text[item[0][0].start() : item[-1][0].end()].split()) if item else "nothing"
            raise QueryRegistryError(f"result column {number} ({shown}) needs a lower-case name: end it with AS <name>")
        if name in names:
            raise QueryRegistryError(f"two result columns are named {name}")
        names.append(name)
    return tuple(names)


def parse_file(path: Path, dialect: str) -> list[Query]:
    queries: list[Query] = []
    name: str | None = None
    description: list[str] = []
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        text = "\n".join(body).strip()
        if not description:
            raise QueryRegistryError(f"{path}: query {name}: needs a description line after its name")
        if not text:
            raise QueryRegistryError(f"{path}: query {name}: has no SQL")
        sql, params = _rewrite(text, dialect)
        queries.append(Query(name, " ".join(description), text, sql, params, str(path)))

    for line in path.read_text().splitlines():
        header = _HEADER.match(line.strip())
        if header:
            flush()
            name, description, body = header.group(1), [], []
        elif name is None:
            if line.strip() and not line.strip().startswith("--"):
                raise QueryRegistryError(f"{path}: SQL before the first `-- name:` header")
        elif not body and line.strip().startswith("--"):
            description.append(line.strip().lstrip("-").strip())
        else:
            body.append(line)
    flush()
    return queries


def _load_dialect(folder: Path, dialect: str) -> dict[str, Query]:
    found: dict[str, Query] = {}
    for path in sorted(folder.glob("*.sql")):
        for query in parse_file(path, dialect):
            if query.name in found:
                raise QueryRegistryError(f"query {query.name} is defined twice ({found[query.name].source} and {path})")
            found[query.name] = query
    return found


class Registry:
    """All queries of one dialect, checked against the other dialects at load time."""

    def __init__(
        self, queries: dict[str, Query], dialect: str, table: str | None = None, unbound: dict[str, Query] | None = None
    ) -> None:
        self.queries = queries
        self.dialect = dialect
        self.table = table  # what `{request_log}` stands for; None: not bound yet
        self._unbound = queries if unbound is None else unbound

    def __getitem__(self, name: str) -> Query:
        query = self.queries[name]
        if query.reads_log and self.table is None:
            raise QueryRegistryError(f"query {name} reads {PLACEHOLDER}: bind the log's table expression first")
        return query

    def reads_log(self, name: str) -> bool:
        return self.queries[name].reads_log

    def bind(self, table: str) -> Registry:
        """The same queries with `{request_log}` read as `table` (a table expression of our own)."""
        bound = {
            name: replace(q, sql=q.sql.replace(PLACEHOLDER, table)) if q.reads_log else q
            for name, q in self._unbound.items()
        }
        return Registry(bound, self.dialect, table, self._unbound)

    def __iter__(self) -> Iterator[Query]:
        return iter(self.queries.values())

    @classmethod
    def load(cls, sql_dir: Path, dialect: str) -> Registry:
        if dialect not in DIALECTS:
            raise QueryRegistryError(f"unknown dialect {dialect!r}")
        loaded = {d: _load_dialect(sql_dir / d, d) for d in DIALECTS}
        every = sorted(set().union(*loaded.values()))
        partial = {n: [d for d in DIALECTS if n in loaded[d]] for n in every}
        partial = {n: found for n, found in partial.items() if len(found) < len(DIALECTS)}
        if partial:
            details = ", ".join(
                f"{n} (only in {', '.join(f'sql/{d}/' for d in found)})" for n, found in partial.items()
            )
            raise QueryRegistryError(f"queries not defined in every dialect: {details}")
        for name in every:
            if len({loaded[d][name].reads_log for d in DIALECTS}) > 1:
                raise QueryRegistryError(f"query {name}: only some dialects read {PLACEHOLDER}")
            params = {d: set(loaded[d][name].params) for d in DIALECTS}
            if len({frozenset(p) for p in params.values()}) > 1:
                listed = "; ".join(f"{d}: {', '.join(sorted(p)) or 'none'}" for d, p in params.items())
                raise QueryRegistryError(f"query {name}: the dialects take different parameters ({listed})")
            named = {d: _named(loaded[d][name]) for d in DIALECTS}
            if len({q.columns for q in named.values()}) > 1:
                listed = "; ".join(f"{d}: {', '.join(q.columns)}" for d, q in named.items())
                raise QueryRegistryError(f"query {name}: the dialects name different result columns ({listed})")
            for d in DIALECTS:
                loaded[d][name] = named[d]
        return cls(loaded[dialect], dialect)


def _named(query: Query) -> Query:
    """The query with the names of its result columns (`result_columns`), or the error saying which
    column has none."""
    try:
        return replace(query, columns=result_columns(query.text))
    except QueryRegistryError as exc:
        raise QueryRegistryError(f"{query.source}: query {query.name}: {exc}") from None


# --------------------------------------------------------------------------- optional log columns
# `cache_write_1h_tokens`, `service_tier` and `usage_exact` (docs/request-log.md) are read when the log
# has them. The queries that read them (groups, rows_between, rows_after, request_rows,
# hour_fingerprints) name the table `{request_log}`. Before the first of them runs (and again when
# another SQLite file answers behind the URL), the database reads the log's column names (query
# `log_columns`: `pragma_table_info` on SQLite, `information_schema.columns` on Postgres) and binds
# the placeholder, once for every query, to:
#
# - `request_log`, when every optional column is there;
# - `(SELECT *, <default> AS <column>, … FROM request_log) AS request_log` otherwise, with the
#   default of each missing column (0, NULL, NULL: what a row without the detail means).
#
# Column names and defaults are the constants below: nothing read from the database, and no user
# input, becomes SQL. Both planners flatten the subquery, so the `created_at` index serves as before.

PLACEHOLDER = "{request_log}"
TABLE = "request_log"
OPTIONAL = ("cache_write_1h_tokens", "service_tier", "usage_exact")
# per dialect, the value a row has without the column: no 1-hour writes, standard tier, exact usage
DEFAULTS = {
    "sqlite": {"cache_write_1h_tokens": "0", "service_tier": "NULL", "usage_exact": "NULL"},
    "postgres": {"cache_write_1h_tokens": "0", "service_tier": "NULL::text", "usage_exact": "NULL::boolean"},
    "clickhouse": {
        "cache_write_1h_tokens": "toInt64(0)",
        "service_tier": "CAST(NULL AS Nullable(String))",
        "usage_exact": "CAST(NULL AS Nullable(Bool))",
    },
}


# A ClickHouse log may have no `id` (ClickHouse has no identity column; docs/request-log.md): the
# queries then read a hash of the row in its place, positive in an Int64. It orders the audit view's
# rows of one millisecond (its cursor stays exact) and fingerprints an hour's rows for a snapshot
# (`hour_ids`); nothing reads it as a sequence: without ids the open hours
# are summed by created_at (aggregation/unnumbered.py).
SYNTHETIC_ID = (
    "toInt64(bitShiftRight(sipHash64(tuple(created_at, request_id, provider, model, endpoint, token_id, "
    "status_code, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, "
    "prompt_tokens_avoided, completion_tokens_avoided, latency_ms, cache_key)), 1))"
)


@dataclass(frozen=True, slots=True)
class LogColumns:
    """The optional columns a log has (`read`), and whether its table was found at all."""

    read: tuple[str, ...]
    table_found: bool = True
    ids: bool = True  # the log has an `id` column (optional on ClickHouse only: SYNTHETIC_ID)

    @classmethod
    def of(cls, names: Iterable[str]) -> LogColumns:
        found = {str(n).lower() for n in names}
        return cls(tuple(c for c in OPTIONAL if c in found), bool(found), "id" in found or not found)

    @property
    def absent(self) -> tuple[str, ...]:
        return tuple(c for c in OPTIONAL if c not in self.read)

    def table_expression(self, dialect: str) -> str:
        """What the queries read in place of `{request_log}`."""
        if not self.absent and self.ids:
            return TABLE
        defaults = [f"{DEFAULTS[dialect][c]} AS {c}" for c in self.absent]
        if not self.ids:
            defaults.append(f"{SYNTHETIC_ID} AS id")
        return f"(SELECT *, {', '.join(defaults)} FROM {TABLE}) AS {TABLE}"

    def as_json(self) -> dict[str, list[str]]:
        return {"read": list(self.read), "absent": list(self.absent)}
