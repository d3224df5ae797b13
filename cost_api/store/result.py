"""A query's result: its rows, and the name of each of their columns.

The names are the query's own (its select list, `queries.Query.columns`, checked at load time to be
the same in both dialects), not the driver's: every layer above reads a column by its name and none
needs to know which driver answered. The rows are plain tuples in the order of the select list, so
a `Rows` is still a list of them for whoever only iterates or counts. A `Table` is the same answer
as columns, for the reads of many rows that are only ever taken apart into columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

Row = tuple[Any, ...]


class Rows(list[Row]):
    """The rows of one query, and its column names (`names`).

    - `columns()`: every column at once, by name (the rows transposed once: the fast path for many rows);
    - `column(name)`: one column's values;
    - `pick(*names)`: each row as a tuple of the named columns, in that order;
    - `first(*names, default=None)`: the first row's named columns (a single value for one name), or
      `default` when there is no row.

    A name the query does not give is a KeyError naming the query's columns, empty result or not.
    """

    __slots__ = ("_at", "names")

    def __init__(self, rows: Iterable[Row], names: tuple[str, ...]) -> None:
        super().__init__(rows)
        self.names = names
        self._at: dict[str, int] | None = None

    def at(self, name: str) -> int:
        """The position of the column `name` in each row."""
        if self._at is None:
            self._at = {n: i for i, n in enumerate(self.names)}
        try:
            return self._at[name]
        except KeyError:
            raise KeyError(f"the result has no column {name!r} (its columns: {', '.join(self.names)})") from None

    def columns(self) -> dict[str, tuple[Any, ...]]:
        if not self:
            return _Columns(self.names, dict.fromkeys(self.names, ()))
        # strict: every row as wide as the select list names columns
        return _Columns(self.names, zip(self.names, zip(*self, strict=True), strict=True))

    def column(self, name: str) -> list[Any]:
        at = self.at(name)
        return [row[at] for row in self]

    def pick(self, *names: str) -> Iterator[Row]:
        positions = [self.at(name) for name in names]
        if len(positions) == 1:
            (at,) = positions
            return ((row[at],) for row in self)
        return map(itemgetter(*positions), self)

    def first(self, *names: str, default: Any = None) -> Any:
        picked = next(self.pick(*names), None)
        if picked is None:
            return default
        return picked[0] if len(names) == 1 else picked


class _Columns(dict[str, tuple[Any, ...]]):
    """Columns by name; a name the query does not give is a KeyError saying which it gives."""

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...], columns: Any) -> None:
        super().__init__(columns)
        self.names = names

    def __missing__(self, name: str) -> tuple[Any, ...]:
        raise KeyError(f"the result has no column {name!r} (its columns: {', '.join(self.names)})")


@dataclass(frozen=True, slots=True)
class Coded:
    """A text column as codes: row i's value is `values[codes[i]]` (None: NULL). How a columnar driver
    answers text, each distinct value once (a day of token groups: ~20,000 ids for ~576,000 rows)."""

    codes: np.ndarray
    values: list[str | None]


class Table:
    """A query's rows as columns (`Database.fetch_table`), by the query's column names, and their count
    (`len`). From a columnar driver (ClickHouse's Arrow) a column is a numpy array (numbers, booleans;
    NULL read as 0) or a `Coded` (text); from the others, a tuple of the rows' values (`Rows.columns`).
    A name the query does not give is a KeyError naming the query's columns."""

    __slots__ = ("_columns", "_n", "names")

    def __init__(self, names: tuple[str, ...], columns: Iterable[tuple[str, Any]], n: int) -> None:
        self.names = names
        self._columns = _Columns(names, columns)
        self._n = n

    @classmethod
    def of(cls, rows: Rows) -> Table:
        return cls(rows.names, rows.columns().items(), len(rows))

    def __len__(self) -> int:
        return self._n

    def columns(self) -> dict[str, Any]:
        return self._columns
