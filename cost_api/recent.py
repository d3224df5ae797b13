"""Single rows where whole hours do not fit: the open hours, and closed hours a window only partly covers.

The open hours (from the rollups' horizon on) are read once and then incrementally: each read takes the
rows with an id above the highest seen, plus the ids below it not seen yet (a transaction that took an
id may commit after a later one; those "holes" are asked for again until their hour closes). So every
answer counts every committed row without re-reading the open hours. Closed hours that a window's edge
cuts are read once as single rows and kept (a few dozen, least recently used first out).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .groups import Groups, Vocab, from_rows
from .pricing import PriceTable

HOUR_MS = 3_600_000
_MAX_HOLES = 10_000
_CACHED_HOURS = 64
_FAR = 253_402_300_799_000  # 9999-12-31T23:59:59Z: "no end"

Fetch = Callable[..., Awaitable[list[tuple[Any, ...]]]]


@dataclass(slots=True)
class RowSet:
    """Rows as one-row groups (slot = created_at in ms, key = endpoint), with their tokens and ids."""

    rows: Groups
    token: np.ndarray
    ids: np.ndarray

    def between(self, start_ms: int, end_ms: int) -> RowSet:
        mask = (self.rows.slot >= start_ms) & (self.rows.slot < end_ms)
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
    def concat(vocab: Vocab, parts: list[RowSet]) -> RowSet:
        return RowSet(
            Groups.concat(vocab, 1, [p.rows for p in parts]),
            np.concatenate([p.token for p in parts]),
            np.concatenate([p.ids for p in parts]),
        )


class RowStore:
    def __init__(self, fetch: Fetch, vocab: Vocab, pricing: PriceTable, thresholds: dict[str, int]) -> None:
        self._fetch = fetch
        self._vocab = vocab
        self._pricing = pricing
        self._thresholds = thresholds
        self._lock = asyncio.Lock()
        self._hours: OrderedDict[int, RowSet] = OrderedDict()
        self.open: RowSet | None = None  # rows from open_from_ms on
        self._summed: dict[str | None, Groups] = {}  # the open rows summed per hour, by key
        self.open_from_ms = 0
        self._after = 0
        self._holes: set[int] = set()

    def _rowset(self, rows: list[tuple[Any, ...]]) -> RowSet:
        groups = from_rows(self._vocab, 1, rows, self._pricing)
        tokens = self._vocab.encode([r[14] for r in rows])
        ids = np.fromiter((r[15] for r in rows), dtype=np.int64, count=len(rows))
        return RowSet(groups, tokens, ids)

    async def between(self, start_ms: int, end_ms: int) -> RowSet:
        return self._rowset(await self._fetch("rows_between", start=_dt(start_ms), end=_dt(end_ms), **self._thresholds))

    async def open_rows(self, horizon: int) -> RowSet:
        """Every committed row from hour `horizon` on: read once, then only what was committed since."""
        async with self._lock:
            start = horizon * HOUR_MS
            if self.open is None or start < self.open_from_ms:
                last = (await self._fetch("last_id"))[0][0]
                self.open = await self.between(start, _FAR)
                self._summed = {}
                self._after = int(last or 0)
                ids = set(self.open.ids.tolist())
                low = min(ids) if ids else self._after + 1
                self._holes = set(range(low, self._after + 1)) - ids
                self.open_from_ms = start
            else:
                fresh = self._rowset(
                    await self._fetch("rows_after", after=self._after, holes=sorted(self._holes), **self._thresholds)
                )
                self._note_ids(fresh.ids)
                fresh = fresh.between(start, _FAR)
                parts = [self.open, fresh] if len(fresh.ids) else [self.open]
                if start > self.open_from_ms:  # hours that closed went to the rollups
                    parts[0] = parts[0].between(start, _FAR)
                    self.open_from_ms = start
                    self._summed = {}
                elif len(fresh.ids):  # keep the sums current: add the fresh rows' own sums
                    for key, summed in self._summed.items():
                        self._summed[key] = Groups.concat(self._vocab, HOUR_MS, [summed, fresh.hourly(key).collapsed()])
                self.open = RowSet.concat(self._vocab, parts)
            return self.open

    def open_hourly(self, key: str | None) -> tuple[Groups, int]:
        """All open rows summed per hour and key (as of the last `open_rows`), and the newest row's
        created_at: a window that ends after it and starts before the open hours takes them all."""
        assert self.open is not None
        if key not in self._summed:
            self._summed[key] = self.open.hourly(key).collapsed()
        newest = int(self.open.rows.slot.max()) if len(self.open.ids) else -1
        return self._summed[key], newest

    def _note_ids(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        seen = set(ids.tolist())
        self._holes -= seen
        top = max(seen)
        if top > self._after:
            self._holes |= set(range(self._after + 1, top)) - seen
            self._after = top
        if len(self._holes) > _MAX_HOLES:  # rolled-back ids never come: keep the newest only
            self._holes = set(sorted(self._holes)[-_MAX_HOLES:])

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

    def forget(self) -> None:
        """The log's start moved (retention, backfill): closed hours are read again when needed."""
        self._hours.clear()
        self.open = None
        self._summed = {}


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
