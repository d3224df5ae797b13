"""The query registry: hand-written SQL files, one folder per dialect, loaded once at start-up.

Each query in `sql/<dialect>/*.sql` starts with `-- name: <name>`, then at least one `--` line
describing it, then the SQL with `:named` parameters. At load time the parameters are rewritten
to the driver's style: `?` for sqlite3/aiosqlite, `$1…$n` for asyncpg. Both dialects must define
the same queries with the same parameters, or start-up fails saying which query differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DIALECTS = ("sqlite", "postgres")

_HEADER = re.compile(r"^--\s*name:\s*([a-z][a-z0-9_]*)\s*$")
# `:name`, but not the `::type` casts of Postgres and not inside string literals.
_PARAM = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([a-z_][a-z0-9_]*)")


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

    def bind(self, values: dict[str, object]) -> list[object]:
        missing = [p for p in dict.fromkeys(self.params) if p not in values]
        if missing:
            raise QueryRegistryError(f"query {self.name}: missing parameters {', '.join(missing)}")
        return [values[p] for p in self.params]


def _rewrite(text: str, dialect: str) -> tuple[str, tuple[str, ...]]:
    order: list[str] = []

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
                raise QueryRegistryError(
                    f"query {query.name} is defined twice ({found[query.name].source} and {path})"
                )
            found[query.name] = query
    return found


class Registry:
    """All queries of one dialect, checked against the other dialect at load time."""

    def __init__(self, queries: dict[str, Query], dialect: str) -> None:
        self.queries = queries
        self.dialect = dialect

    def __getitem__(self, name: str) -> Query:
        return self.queries[name]

    def __iter__(self):
        return iter(self.queries.values())

    @classmethod
    def load(cls, sql_dir: Path, dialect: str) -> Registry:
        if dialect not in DIALECTS:
            raise QueryRegistryError(f"unknown dialect {dialect!r}")
        loaded = {d: _load_dialect(sql_dir / d, d) for d in DIALECTS}
        names = {d: set(q) for d, q in loaded.items()}
        only_one = names["sqlite"] ^ names["postgres"]
        if only_one:
            details = ", ".join(
                f"{n} (only in sql/{'sqlite' if n in names['sqlite'] else 'postgres'}/)"
                for n in sorted(only_one)
            )
            raise QueryRegistryError(f"queries defined in one dialect only: {details}")
        for name in sorted(names["sqlite"]):
            lite, pg = (set(loaded[d][name].params) for d in DIALECTS)
            if lite != pg:
                listed = {
                    d: ", ".join(sorted(p)) or "none" for d, p in zip(DIALECTS, (lite, pg), strict=True)
                }
                raise QueryRegistryError(
                    f"query {name}: the dialects take different parameters "
                    f"(sqlite: {listed['sqlite']}; postgres: {listed['postgres']})"
                )
        return cls(loaded[dialect], dialect)
