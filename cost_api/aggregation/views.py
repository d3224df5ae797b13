"""What answers make of the rollups' cells, kept while those cells stay the same.

An answer's filters and grouping turn each held cell into at most one cell (a tag filter keeps a
team's tokens; `group_by=tag:team` puts each token's cell under its team; a filter on tokens then
summed without the token). Such a transform is the same over any hours, so it is computed once per
UTC day and kept (`View`), and an answer over 30 days concatenates 30 kept days instead of masking
and regrouping millions of token cells. An answer that only totals over its range (`whole`) also
gets its whole days summed into one group per key, kept per run of days.

A read for totals that no rollup serves (by token past the memory cap, by cache key) is kept in
pieces read from the log (`Views.totals`): each whole UTC day and each hour at a window's edges,
summed per key.

Every change to the held cells of a day (an hour closing, late rows merged, hours read again) gives
the day (and the hour) a new stamp (`Views.changed`); what was kept for it is computed again when
next asked. A change to everything (a warm-up, the log's start moving, a rollup dropped) starts
anew (`clear`).
Rows not merged into the rollups yet (late cells pending, the open hours) are transformed for each
answer: they are few.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cost_api.aggregation.groups import NO_TIER_RATE, Groups
from cost_api.aggregation.memory import nbytes, release
from cost_api.windows import hour_runs

log = logging.getLogger("cost_api.aggregation.views")

VIEWS_KEPT = 16  # views kept (each: its days' cells), least recently used dropped first
READS_KEPT = 8  # reads kept (each: its closed hours' groups), likewise
PRICED = "(priced)"  # the price entry of `keys_only` cells: matched, no longer which
HOURS_KEPT = 64 * 24  # hours kept per read: two 30-day windows and more
RUN_CELLS = 1_500_000  # cells of runs of whole days summed kept (~200 MB), likewise
RUN_CHUNK = 200_000  # cells summed at a time into a run (`_summed`)
READ_NOW = 2  # pieces of a read for totals an answer reads itself; with more, `totals` reads them in the background


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
        self._hour_stamps: dict[int, int] = {}  # hour → its stamp (absent: 0, never changed)
        self._totals: OrderedDict[Hashable, tuple[object, Any]] = OrderedDict()  # per read: its pieces
        self.filling: dict[Hashable, asyncio.Task[None]] = {}  # per read: the task reading its pieces
        self._queued: dict[Hashable, list[tuple[int, int]]] = {}  # per read: the pieces that task reads next
        self.unkept: set[Hashable] = set()  # reads whose pieces passed the budget: read whole from then on

    def clear(self) -> None:
        self._days.clear()
        self._runs.clear()
        self._reads.clear()
        self._totals.clear()  # a filling task sees its pieces are no longer kept, and ends
        self.unkept.clear()

    def changed(self, hours: Iterable[int] | np.ndarray) -> None:
        """The held cells of these hours changed: what was kept for them and their days is stale."""
        slots = hours.astype(np.int64) if isinstance(hours, np.ndarray) else np.fromiter(hours, dtype=np.int64)
        for hour in np.unique(slots).tolist():
            self._hour_stamps[hour] = self._stamps[hour // 24] = next(self._counter)

    def _stamp(self, day: int) -> int:
        return self._stamps.get(day, 0)

    def _piece_stamp(self, a: int, b: int) -> int:
        """The stamp of hours [a, b): a whole UTC day's, or one hour's."""
        return self._stamp(a // 24) if b - a == 24 else self._hour_stamp(a)

    def _hour_stamp(self, hour: int) -> int:
        return self._hour_stamps.get(hour, 0)

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
        return self._run((name, h0, h1, keyed), stamps, h0, cells, keyed)

    def _run(self, key: Hashable, stamps: tuple[int, ...], h0: int, cells: Callable[[], Groups], keyed: bool) -> Groups:
        """`cells()` summed into one group per key (slot: h0), kept under `key` while `stamps` hold."""
        found = self._runs.get(key)
        if found is not None and found[0] == stamps:
            self._runs.move_to_end(key)
            return found[1]
        total = _summed(cells(), h0, keyed)
        self._runs[key] = (stamps, total)
        while len(self._runs) > 1 and sum(len(kept) for _, kept in self._runs.values()) > RUN_CELLS:
            self._runs.popitem(last=False)
        return total

    async def hours(
        self, name: Hashable, h0: int, h1: int, read: Callable[[int, int], Awaitable[Groups]], keep: object = None
    ) -> list[Groups]:
        """The groups of closed hours [h0, h1) of a read no rollup serves (a filter on tokens of the
        endpoint lens), read a run of hours at a time with `read(h0, h1)` (hourly groups) and kept per
        hour until it changes: the next answer reads only the hours closed or changed since."""
        kept: dict[int, tuple[int, Groups]] = _entry(self._reads, name, READS_KEPT, keep)
        stale = [h for h in range(h0, h1) if h not in kept or kept[h][0] != self._hour_stamp(h)]
        got = {h: kept[h][1] for h in range(h0, h1) if h in kept}  # taken now: other answers may prune
        if len(kept) > HOURS_KEPT:  # a window that slid for weeks: the oldest hours it left go
            outside = sorted(h for h in kept if not h0 <= h < h1)
            for hour in outside[: len(outside) // 2 + 1]:
                del kept[hour]
        for a, b in hour_runs(stale):
            stamps = {h: self._hour_stamp(h) for h in range(a, b)}  # as of before the read
            groups = await read(a, b)
            order = np.argsort(groups.slot, kind="stable")
            slots = groups.slot[order]
            for hour in range(a, b):
                lo, hi = np.searchsorted(slots, [hour, hour + 1], side="left")
                got[hour] = groups.subset(order[int(lo) : int(hi)])
                kept[hour] = (stamps[hour], got[hour])
        return [got[h] for h in range(h0, h1)]

    async def totals(
        self,
        name: Hashable,
        h0: int,
        h1: int,
        read: Callable[[int, int], Awaitable[Groups]],
        *,
        keyed: bool,
        budget: int | None,
    ) -> Groups | None:
        """Closed hours [h0, h1) of a read for totals only that no rollup serves (by token past the
        memory cap, by cache key), in pieces: each whole UTC day, and each hour at the edges. A piece is
        read with `read(a, b)` (groups in one slot: no rate changes within a UTC day), summed per key
        (`keyed`: over provider, model and tier too, `keys_only`) and kept until its hours change, while
        what is kept fits `budget` bytes: a window that slides reads only the hours it gained, once.
        The answer: the pieces summed into one group per key (slot h0), kept while they stay the same.
        With more than READ_NOW pieces to read, None: they are read in the background (`filling`), one
        at a time, and the caller waits for them or answers later; or, once they did not fit `budget`
        (`unkept`), the caller reads its window whole (docs/scale-out.md#answers-by-token)."""
        kept: dict[tuple[int, int], tuple[int, Groups]] = _entry(self._totals, name, READS_KEPT, None)
        pieces = _pieces(h0, h1)
        self._prune(kept, set(pieces), budget)
        got = {p: kept[p] for p in pieces if p in kept and kept[p][0] == self._piece_stamp(*p)}  # taken now
        stale = [p for p in pieces if p not in got]
        if len(stale) > READ_NOW:
            if name in self.unkept:
                return None
            queue = self._queued.setdefault(name, [])
            queue.extend(p for p in reversed(stale) if p not in queue)  # newest first
            if name not in self.filling:
                task = asyncio.ensure_future(self._fill(name, kept, queue, read, keyed, budget))
                self.filling[name] = task
                task.add_done_callback(lambda _: (self.filling.pop(name, None), self._queued.pop(name, None)))
            return None
        for piece in stale:
            got[piece] = await self._read_piece(kept, piece, read, keyed)
        # summed into one group per key, kept while every piece stays the one read (an answer then
        # copies ~20,000 token groups, not the 7 days' and 23 hours' pieces: ~450,000 at 100M rows)
        stamps = tuple(got[p][0] for p in pieces)
        return self._run(("totals", name, h0, h1), stamps, h0, lambda: _concat([got[p][1] for p in pieces]), keyed)

    async def _read_piece(
        self,
        kept: dict[tuple[int, int], tuple[int, Groups]],
        piece: tuple[int, int],
        read: Callable[[int, int], Awaitable[Groups]],
        keyed: bool,
    ) -> tuple[int, Groups]:
        stamp = self._piece_stamp(*piece)  # as of before the read: a change meanwhile makes it stale
        groups = await read(*piece)
        kept[piece] = (stamp, (keys_only(groups) if keyed else groups).collapsed().narrowed())
        return kept[piece]

    async def _fill(
        self,
        name: Hashable,
        kept: dict[tuple[int, int], tuple[int, Groups]],
        queue: list[tuple[int, int]],
        read: Callable[[int, int], Awaitable[Groups]],
        keyed: bool,
        budget: int | None,
    ) -> None:
        """Read the pieces in `queue` into `kept`, one at a time, while answers add to it; stop once what
        is kept passes `budget`, or when `kept` is no longer kept (another read's pruning, a `clear`)."""
        try:
            while queue:
                piece = queue.pop(0)
                if self._totals.get(name, (None, None))[1] is not kept:
                    return
                if budget is not None and _bytes(self._totals) > budget:
                    self.unkept.add(name)
                    return
                if piece not in kept or kept[piece][0] != self._piece_stamp(*piece):
                    await self._read_piece(kept, piece, read, keyed)
                    # a day of ~600,000 groups taken apart (100M rows): its heap back before the next
                    # (kept until the end, the peak at 100M was ~100–300 MiB higher: docs/performance.md)
                    await asyncio.to_thread(release)
        except Exception as exc:  # the next answer that needs the pieces starts again
            log.info("reading pieces of %s stopped: %s", name, exc)
            await asyncio.to_thread(release)

    def kept_pieces(self, name: Hashable, horizon: int) -> dict[tuple[int, int], Groups]:
        """The pieces of the read for totals `name` kept as they were read (none of their hours changed
        since), of hours before `horizon`: what a snapshot saves of it."""
        found = self._totals.get(name)
        if found is None:
            return {}
        kept: dict[tuple[int, int], tuple[int, Groups]] = found[1]
        return {p: g for p, (stamp, g) in kept.items() if p[1] <= horizon and stamp == self._piece_stamp(*p)}

    def restore_pieces(self, name: Hashable, pieces: dict[tuple[int, int], Groups]) -> None:
        """Pieces of the read for totals `name` that a snapshot saved, kept as if read now: an hour of
        theirs read again later (a late row, a delete) makes them stale, as for any piece read."""
        kept: dict[tuple[int, int], tuple[int, Groups]] = _entry(self._totals, name, READS_KEPT, None)
        for piece, groups in pieces.items():
            kept[piece] = (self._piece_stamp(*piece), groups)

    def _prune(
        self, kept: dict[tuple[int, int], tuple[int, Groups]], wanted: set[tuple[int, int]], budget: int | None
    ) -> None:
        """Past `budget` bytes: other reads' pieces go first, then those of this one outside its window."""
        if budget is None or _bytes(self._totals) <= budget:
            return
        for other in [n for n, (_, entry) in self._totals.items() if entry is not kept]:
            del self._totals[other]
        for piece in [p for p in kept if p not in wanted]:
            del kept[piece]


def _summed(cells: Groups, slot: int, keyed: bool) -> Groups:
    """`cells` summed into one group per key, in `slot`: RUN_CHUNK cells at a time, each chunk's sums
    added to the sum so far. A 30-day run by token is ~3M cells at 10M rows; summed at once, its sorts
    and sums took ~120 MB of heap for a moment, which the allocator kept (RSS +374 MiB after the token
    lens's first answer, two such runs). Where the first chunk hardly shrinks (about as many keys as
    cells: cache keys), chunks would only sum the same groups again, and the cells are summed at once."""

    def chunk(lo: int, hi: int) -> Groups:
        part = cells.subset(slice(lo, hi))
        part.slot = np.full(len(part), slot, dtype=np.int64)
        return (keys_only(part) if keyed else part).collapsed()

    total = chunk(0, RUN_CHUNK)
    if len(cells) > RUN_CHUNK and 2 * len(total) > RUN_CHUNK:
        return chunk(0, len(cells))
    for lo in range(RUN_CHUNK, len(cells), RUN_CHUNK):
        total = _concat([total, chunk(lo, lo + RUN_CHUNK)]).collapsed()
    return total


def _concat(parts: list[Groups]) -> Groups:
    return Groups.concat(parts[0].vocab, parts[0].slot_ms, parts)


def _bytes(totals: OrderedDict[Hashable, tuple[object, Any]]) -> int:
    return nbytes(g for _, entry in totals.values() for _, g in entry.values())


def _pieces(h0: int, h1: int) -> list[tuple[int, int]]:
    """Hours [h0, h1) as whole UTC days and, at the edges, single hours."""
    d0, d1 = -(-h0 // 24), h1 // 24
    if d0 >= d1:
        return [(h, h + 1) for h in range(h0, h1)]
    head, tail = range(h0, d0 * 24), range(d1 * 24, h1)
    return [*((h, h + 1) for h in head), *((d * 24, d * 24 + 24) for d in range(d0, d1)), *((h, h + 1) for h in tail)]


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
