"""Single rows where whole hours do not fit: the open hours, and closed hours a window only partly covers.

The open hours (from the rollups' horizon on) are read once, up to the id the rollups were read to,
and then incrementally by id: each read takes the rows with an id above the highest seen, plus the
ids below it not seen yet (a transaction that took an id may commit after a later one; such "holes"
are asked for again for `HOLE_SECONDS`, the newest `MAX_HOLES` of them at most, so the bookkeeping
never grows with a gap in the ids). Every row such a read returns is counted exactly once: in the
open rows, or — dated before them — handed to the rollups as a late row. Closed hours that a
window's edge cuts are read once as single rows and kept (a few dozen, least recently used first out).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import numpy as np

from cost_api.aggregation.groups import Groups, Vocab, from_columns, from_rows
from cost_api.aggregation.rollups import Bound
from cost_api.clock import Clock
from cost_api.pricing.table import PriceTable
from cost_api.store.result import Rows
from cost_api.windows import HOUR_MS, from_ms

MAX_HOLES = 10_000
HOLE_SECONDS = 600.0  # a transaction open this long after a later id committed: left to the sweep
PAGE_ROWS = 50_000  # rows per incremental read: a backfill is taken in pages, memory stays bounded
_CACHED_HOURS = 64
_FAR = 253_402_300_799_000  # 9999-12-31T23:59:59Z: "no end"

Fetch = Callable[..., Awaitable[Rows]]


@dataclass(slots=True)
class RowSet:
    """Rows as one-row groups (slot = created_at in ms, key = endpoint), with their tokens and ids."""

    rows: Groups
    token: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def between(self, start_ms: int, end_ms: int) -> RowSet:
        return self.subset((self.rows.slot >= start_ms) & (self.rows.slot < end_ms))

    def subset(self, mask: np.ndarray) -> RowSet:
        return RowSet(self.rows.subset(mask), self.token[mask], self.ids[mask])

    def hourly(self, key: str | None) -> Groups:
        """As groups of the hour (slot = hour), keyed by endpoint, token or nothing."""
        rows = self.rows.subset(slice(None))
        rows.slot = rows.slot // HOUR_MS
        rows.slot_ms = HOUR_MS
        if key == "token":
            rows.key = self.token
        elif key is None:
            rows.key = np.zeros(len(rows), dtype=np.int32)
        return rows

    @staticmethod
    def concat(vocab: Vocab, parts: Iterable[RowSet]) -> RowSet:
        parts = list(parts)
        return RowSet(
            Groups.concat(vocab, 1, [p.rows for p in parts]),
            np.concatenate([p.token for p in parts]),
            np.concatenate([p.ids for p in parts]),
        )


class RowStore:
    def __init__(
        self,
        fetch: Fetch,
        vocab: Vocab,
        pricing: PriceTable,
        thresholds: dict[str, int],
        clock: Clock,
    ) -> None:
        self._fetch = fetch
        self._vocab = vocab
        self._pricing = pricing
        self._thresholds = thresholds
        self._clock = clock
        self._hours: OrderedDict[int, RowSet] = OrderedDict()
        self.open: RowSet | None = None  # rows from open_from_ms on
        self._summed: dict[str | None, Groups] = {}  # the open rows summed per hour, by key
        self.open_from_ms = 0
        self._after = 0
        self._holes: dict[int, float] = {}  # id → when it was first missed (clock seconds)
        self._epoch = 0  # counts `forget`s

    def _rowset(self, rows: Rows) -> RowSet:
        """The rows of `rows_between` or `rows_after`, taken apart into columns once."""
        cols, n = rows.columns(), len(rows)
        groups = from_columns(self._vocab, 1, cols, n, self._pricing)
        tokens = self._vocab.encode(cols["token_id"])
        ids = np.fromiter(cols["id"], dtype=np.int64, count=n)
        return RowSet(groups, tokens, ids)

    def _no_rows(self) -> RowSet:
        return RowSet(from_rows(self._vocab, 1, [], None), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64))

    async def between(self, start_ms: int, end_ms: int, max_id: int | None = None) -> RowSet:
        rows = await self._fetch(
            "rows_between", start=from_ms(start_ms), end=from_ms(end_ms), max_id=max_id, **self._thresholds
        )
        return self._rowset(rows)

    async def start(self, from_ms: int, max_id: int) -> None:
        """The rows from `from_ms` on with an id up to `max_id` (the rollups hold the rest of those
        ids); every later id comes through `refresh`."""
        self.open = await self.between(from_ms, _FAR, max_id)
        self.open_from_ms = from_ms
        self._summed = {}
        self._after = max_id
        self._holes = {}
        self._hours.clear()

    @property
    def started(self) -> bool:
        return self.open is not None

    def bound(self) -> Bound:
        """The ids a read of closed hours may count now: the rest arrive through `refresh`."""
        return Bound(self._after, tuple(sorted(self._holes)))

    async def refresh(self) -> RowSet:
        """Take in every row committed since the last read; return the late ones (dated before the
        open rows), which the caller hands to the rollups."""
        assert self.open is not None
        late: list[RowSet] = []
        epoch = self._epoch
        while True:
            self._expire_holes()
            fresh = self._rowset(
                await self._fetch(
                    "rows_after", after=self._after, holes=sorted(self._holes), limit=PAGE_ROWS, **self._thresholds
                )
            )
            if self._epoch != epoch:  # forgotten while reading: these rows are another database's
                return self._no_rows()
            full = len(fresh) == PAGE_ROWS
            self._note_ids(fresh.ids)
            if len(fresh):
                early = fresh.rows.slot < self.open_from_ms
                late.append(fresh.subset(early))
                current = fresh.subset(~early)
                if len(current):
                    self.open = RowSet.concat(self._vocab, [self.open, current])
                    for key, summed in self._summed.items():  # keep the sums current: add the fresh rows' own
                        fresh_sums = current.hourly(key).collapsed()
                        self._summed[key] = Groups.concat(self._vocab, HOUR_MS, [summed, fresh_sums])
            if not full:
                break
        taken = RowSet.concat(self._vocab, late) if late else self._no_rows()
        self._add_to_cut_hours(taken)
        return taken

    async def reread_open(self) -> None:
        """Read the open rows again (a delete or an update in the open hours), within the bound."""
        assert self.open is not None
        epoch = self._epoch
        fresh = await self.between(self.open_from_ms, _FAR, self._after)
        if self._epoch != epoch:  # forgotten while reading
            return
        self.open = fresh.subset(~np.isin(fresh.ids, np.fromiter(self._holes, dtype=np.int64)))
        self._summed = {}

    def take_closed(self, until_ms: int) -> RowSet:
        """Hand over the open rows before `until_ms` (their hours closed); the open rows start there."""
        assert self.open is not None
        closed = self.open.between(0, until_ms)
        self.open = self.open.between(until_ms, _FAR)
        self.open_from_ms = until_ms
        self._summed = {}
        return closed

    def open_hourly(self, key: str | None) -> tuple[Groups, int]:
        """All open rows summed per hour and key (as of the last `refresh`), and the newest row's
        created_at: a window that ends after it and starts before the open hours takes them all."""
        assert self.open is not None
        if key not in self._summed:
            self._summed[key] = self.open.hourly(key).collapsed()
        newest = int(self.open.rows.slot.max()) if len(self.open) else -1
        return self._summed[key], newest

    def _note_ids(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        for seen in ids.tolist():
            self._holes.pop(seen, None)
        top = int(ids.max())
        if top > self._after:
            now = self._clock.time()
            missing = np.setdiff1d(np.arange(max(self._after + 1, top - MAX_HOLES), top, dtype=np.int64), ids)
            self._holes.update(dict.fromkeys(missing.tolist(), now))
            self._after = top
        if len(self._holes) > MAX_HOLES:  # keep the newest only
            for old in sorted(self._holes)[: len(self._holes) - MAX_HOLES]:
                del self._holes[old]

    def _expire_holes(self) -> None:
        cutoff = self._clock.time() - HOLE_SECONDS
        for hole in [h for h, since in self._holes.items() if since < cutoff]:
            del self._holes[hole]

    async def closed_hour(self, hour: int) -> RowSet:
        """The single rows of one closed hour, kept for the next window that cuts it."""
        found = self._hours.get(hour)
        if found is None:
            found = await self.between(hour * HOUR_MS, (hour + 1) * HOUR_MS)
            self._hours[hour] = found
            while len(self._hours) > _CACHED_HOURS:
                self._hours.popitem(last=False)
        else:
            self._hours.move_to_end(hour)
        return found

    def _add_to_cut_hours(self, late: RowSet) -> None:
        """Late rows join the kept rows of their hour (unless that read already had them)."""
        if not len(late) or not self._hours:
            return
        hours = late.rows.slot // HOUR_MS
        for hour in set(hours.tolist()) & set(self._hours):
            kept = self._hours[hour]
            new = late.subset((hours == hour) & ~np.isin(late.ids, kept.ids))
            self._hours[hour] = RowSet.concat(self._vocab, [kept, new])

    def forget_cut_hours(self, h0: int, h1: int) -> None:
        """Drop the kept rows of hours [h0, h1): read again when next needed (the sweep ran over them)."""
        for hour in [h for h in self._hours if h0 <= h < h1]:
            del self._hours[hour]

    def forget(self) -> None:
        """Another database behind the URL: everything is read again. A read in flight (`refresh`,
        `reread_open`: they run under the aggregator's lock, this may not) keeps nothing it read."""
        self._epoch += 1
        self._hours.clear()
        self.open = None
        self._summed = {}
        self._holes = {}
