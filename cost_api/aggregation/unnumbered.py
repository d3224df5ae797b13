"""A log without ids (ClickHouse, which has no identity column: `id` is optional there): the open
hours summed by created_at on each answer.

With ids, the open hours' rows are read once and then incrementally by id (rows.py). A log without
them has nothing to read incrementally by, so (docs/scale-out.md#a-log-without-id):

- the open hours (from the rollups' horizon on) are summed by the engine for each answer: the
  `groups` query over the window's part after the horizon, for the rollup's dimension; the rollups'
  filters then apply to them as to the closed hours;
- hours that close are read whole from the log with the same query, and join the rollups only once
  read (nothing held changes before);
- rows that land in closed hours afterwards (late rows, a backfill), deletes and updates are found by
  the reconciliation sweep's per-hour fingerprints, which read the hours that differ again: within
  SWEEP_RECENT_SECONDS for the last week, SWEEP_OLDER_SECONDS for older hours;
- the closed hours a window's edge cuts: their rows are read once and kept, as with ids, until the
  sweep passes over them.

`TimedRows` is the row store for such a log: it holds no open rows and reads nothing by id; the
aggregator asks `by_time` where its paths part.
"""

from __future__ import annotations

from collections.abc import Callable

from cost_api.aggregation.holes import Holes
from cost_api.aggregation.rollups import UNBOUNDED, Bound
from cost_api.aggregation.rows import RowSet, RowStore
from cost_api.store.database import Database


class TimedRows(RowStore):
    """The row store of a log without ids: no open rows, no incremental read, no id bound; the
    closed hours a window cuts are read and kept as with ids."""

    async def start(self, from_ms: int, max_id: int) -> None:
        """The open hours start at `from_ms`; nothing of them is held (`max_id`: none here)."""
        self.open_from_ms = self.cut = from_ms
        self._set_open(self._no_rows())
        self.holes = Holes(self._clock)
        self.caught_up = True
        self._hours.clear()

    def bound(self) -> Bound:
        """Every row: nothing arrives by id, so a read of closed hours counts them all."""
        return UNBOUNDED

    async def refresh(self, take_late: Callable[[RowSet], None], pages: int = 0, since: int | None = None) -> None:
        """Nothing to read by id: the open hours are summed on each answer, late rows found by the sweep."""

    async def reread_open(self) -> None:
        """No open rows held: nothing to read again."""


def by_time(rows: RowStore) -> bool:
    """Whether the aggregator's paths for a log without ids apply."""
    return isinstance(rows, TimedRows)


async def has_ids(db: Database) -> bool:
    """Whether the log has ids: always on SQLite and Postgres (the contract's identity column, no
    query asked); on ClickHouse, as its columns say."""
    return db.dialect != "clickhouse" or (await db.read_log_columns()).ids


def row_store(rows: RowStore, ids: bool) -> RowStore:
    """The row store for a log with (`ids`) or without ids: `rows` when it is of that kind, else a new
    one on the same reader."""
    if by_time(rows) != ids:
        return rows
    kind = RowStore if ids else TimedRows
    return kind(rows._fetch, rows._vocab, rows._pricing, rows._thresholds, rows._clock)
