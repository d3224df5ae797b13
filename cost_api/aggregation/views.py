"""What answers make of the rollups' cells, kept while those cells stay the same.

An answer's filters and grouping turn each held cell into at most one cell (a tag filter keeps a
team's tokens; `group_by=tag:team` puts each token's cell under its team; a filter on tokens then
summed without the token). Such a transform is the same over any hours, so it is computed once per
UTC day and kept (`View`), and an answer over 30 days concatenates 30 kept days instead of masking
and regrouping millions of token cells. An answer that only totals over its range (`whole`) also
gets its whole days summed into one group per key, kept per run of days.

Every change to the held cells of a day (an hour closing, late rows merged, hours read again) gives
the day a new stamp (`Views.changed`); what was kept for it is computed again when next asked. A
change to everything (a warm-up, the log's start moving, a rollup dropped) starts anew (`clear`).
Rows not merged into the rollups yet (late cells pending, the open hours) are transformed for each
answer: they are few.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cost_api.aggregation.groups import NO_TIER_RATE, Groups
from cost_api.windows import hour_runs

VIEWS_KEPT = 16  # views kept (each: its days' cells), least recently used dropped first
READS_KEPT = 8  # reads kept (each: its closed hours' groups), likewise
PRICED = "(priced)"  # the price entry of `keys_only` cells: matched, no longer which
HOURS_KEPT = 64 * 24  # hours kept per read: two 30-day windows and more
RUN_CELLS = 1_500_000  # cells of runs of whole days summed kept (~200 MB), likewise


@dataclass(frozen=True, slots=True)
class View:
    """A transform of cells, one cell into at most one, the same over any hours. `name` says what it
    does (it names what is kept); `keep` holds the objects whose ids are in the name while it is kept."""

    name: Hashable
    apply: Callable[[Groups], Groups]
    keep: object = None

    def of(self, cells: Groups | None) -> Groups | None:
        return None if cells is None else self.apply(cells)


@dataclass(slots=True)
class _Day:
    stamp: int
    hourly: Groups  # the view's cells of the day's hours, summed per hour and key
    daily: Groups  # the same summed per day


class Views:
    """What is kept per view and day, and per run of whole days, for one set of rollups."""

    def __init__(self) -> None:
        self._stamps: dict[int, int] = {}  # UTC day → its stamp (absent: 0, never changed)
        self._counter = itertools.count(1)
        self._days: OrderedDict[Hashable, tuple[object, Any]] = OrderedDict()  # per view: its days
        self._runs: OrderedDict[Hashable, tuple[tuple[int, ...], Groups]] = OrderedDict()
        self._reads: OrderedDict[Hashable, tuple[object, Any]] = OrderedDict()  # per read: its hours

    def clear(self) -> None:
        self._days.clear()
        self._runs.clear()
        self._reads.clear()

    def changed(self, hours: Iterable[int] | np.ndarray) -> None:
        """The held cells of these hours changed: what was kept for their days is stale."""
        slots = hours.astype(np.int64) if isinstance(hours, np.ndarray) else np.fromiter(hours, dtype=np.int64)
        for day in np.unique(slots // 24).tolist():
            self._stamps[day] = next(self._counter)

    def _stamp(self, day: int) -> int:
        return self._stamps.get(day, 0)

    def day(self, view: View, dim: str | None, part: Groups, day: int) -> _Day:
        """The view's cells of one UTC day of `part` (a rollup's hourly cells, sorted by hour)."""
        kept: dict[int, _Day] = _entry(self._days, (view.name, dim), VIEWS_KEPT, view)
        stamp = self._stamp(day)
        found = kept.get(day)
        if found is None or found.stamp != stamp:
            lo, hi = np.searchsorted(part.slot, [day * 24, day * 24 + 24], side="left")
            hourly = view.apply(part.subset(slice(int(lo), int(hi)))).collapsed(keep_sizes=True)
            found = kept[day] = _Day(stamp, hourly, hourly.daily())
        return found

    def run(self, name: Hashable, h0: int, h1: int, cells: Callable[[], Groups], *, keyed: bool = False) -> Groups:
        """Hours [h0, h1) summed into one group per key (slot: h0), from their cells `cells()`; kept
        until one of their days changes. `keyed`: the answer reads only each key's figures (and the
        pricing coverage), so priced groups are also summed over provider, model and tier."""
        stamps = tuple(self._stamp(d) for d in range(h0 // 24, -(-h1 // 24)))
        key = (name, h0, h1, keyed)
        found = self._runs.get(key)
        if found is not None and found[0] == stamps:
            self._runs.move_to_end(key)
            return found[1]
        summed = cells().subset(slice(None))
        summed.slot = np.full(len(summed), h0, dtype=np.int64)
        total = (keys_only(summed) if keyed else summed).collapsed()
        self._runs[key] = (stamps, total)
        while len(self._runs) > 1 and sum(len(kept) for _, kept in self._runs.values()) > RUN_CELLS:
            self._runs.popitem(last=False)
        return total

    async def hours(
        self, name: Hashable, h0: int, h1: int, read: Callable[[int, int], Awaitable[Groups]], keep: object = None
    ) -> list[Groups]:
        """The groups of closed hours [h0, h1) of a read no rollup serves (a filter on tokens of the
        endpoint lens), read a run of hours at a time with `read(h0, h1)` (hourly groups) and kept per
        hour until its day changes: the next answer reads only the hours closed since."""
        kept: dict[int, tuple[int, Groups]] = _entry(self._reads, name, READS_KEPT, keep)
        stale = [h for h in range(h0, h1) if h not in kept or kept[h][0] != self._stamp(h // 24)]
        got = {h: kept[h][1] for h in range(h0, h1) if h in kept}  # taken now: other answers may prune
        if len(kept) > HOURS_KEPT:  # a window that slid for weeks: the oldest hours it left go
            outside = sorted(h for h in kept if not h0 <= h < h1)
            for hour in outside[: len(outside) // 2 + 1]:
                del kept[hour]
        for a, b in hour_runs(stale):
            stamps = {d: self._stamp(d) for d in range(a // 24, -(-b // 24))}  # as of before the read
            groups = await read(a, b)
            order = np.argsort(groups.slot, kind="stable")
            slots = groups.slot[order]
            for hour in range(a, b):
                lo, hi = np.searchsorted(slots, [hour, hour + 1], side="left")
                got[hour] = groups.subset(order[int(lo) : int(hi)])
                kept[hour] = (stamps[hour // 24], got[hour])
        return [got[h] for h in range(h0, h1)]


def _entry(entries: OrderedDict[Hashable, tuple[object, Any]], name: Hashable, limit: int, keep: object) -> Any:
    """What is kept under `name` (a new dict if nothing), the least recently used beyond `limit` dropped;
    `keep`: held beside it (the objects whose ids are in the name)."""
    found = entries.get(name)
    if found is None:
        found = entries[name] = (keep, {})
        while len(entries) > limit:
            entries.popitem(last=False)
    entries.move_to_end(name)
    return found[1]


def keys_only(cells: Groups) -> Groups:
    """The cells with provider, model and tier left out of the priced ones (so that collapsing sums
    them per key): those the pricing coverage lists — unpriced, or of a tier without rates — keep
    theirs. `priced_as` becomes one code for all of them: priced, as which no longer said."""
    plain = (cells.priced_as != 0) & (cells.counts[NO_TIER_RATE] == 0)
    if not plain.any():
        return cells
    return dataclasses.replace(
        cells,
        provider=np.where(plain, 0, cells.provider),
        model=np.where(plain, 0, cells.model),
        tier=np.where(plain, 0, cells.tier),
        priced_as=np.where(plain, cells.vocab.code(PRICED), cells.priced_as),
    )


def hourly_pieces(views: Views, view: View, dim: str | None, part: Groups, h0: int, h1: int) -> list[Groups]:
    """The view's hourly cells of hours [h0, h1), a kept day at a time."""
    pieces = []
    for day in range(h0 // 24, -(-h1 // 24)):
        cells = views.day(view, dim, part, day).hourly
        lo, hi = np.searchsorted(cells.slot, [max(h0, day * 24), min(h1, day * 24 + 24)], side="left")
        pieces.append(cells.subset(slice(int(lo), int(hi))))
    return pieces
