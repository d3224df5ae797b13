"""The ids the open-hours reader has not seen below the highest it has: kept as ranges, never id by id.

A transaction that took an id may commit after a later one (Postgres: concurrent inserts; a backfill
that runs for minutes beside the gateway's traffic; ids given by hand that jump by millions). Each
gap is one range `[lo, hi]`, however many ids it spans, asked for again by the incremental read for
`HOLE_SECONDS`. At most `MAX_HOLES` ranges are kept (a long backfill interleaved with traffic splits
its ids into many); past either bound a range is *lost*: no incremental read asks for it any more.

Lost ranges are watched instead (`LostSpans`): per id span, how many rows each hour holds, read with
one look-up by primary key (`id_span_hours`). An hour whose count changed — a lost id committed — is
handed back to be compared with the log and read again (the reconciliation sweep's fingerprints), so
its rows count once they are committed, within one maintenance tick. Spans are merged past
`MAX_LOST_SPANS` (a wider span only costs a longer look-up) and dropped after `LOST_SECONDS`; a
transaction open longer than that is left to the periodic sweep (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from cost_api.clock import Clock

MAX_HOLES = 256  # id ranges asked for again; each costs a primary-key look-up per incremental read
HOLE_SECONDS = 600.0  # a transaction open this long after a later id committed: watched as lost
MAX_LOST_SPANS = 8
LOST_SECONDS = 3600.0  # a lost span watched this long; after it, the sweep (≤ 3,017 s per hour)

Range = tuple[int, int]  # ids lo..hi, both included


@dataclass(slots=True)
class _Hole:
    lo: int
    hi: int
    since: float  # when first missed (clock seconds)


@dataclass(slots=True)
class _Span:
    lo: int
    hi: int
    since: float
    hours: dict[int, int] | None = None  # rows per hour at the last look-up; None: not looked up yet


class Holes:
    """Sorted, disjoint ranges of ids not seen yet, below the highest id seen."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._holes: list[_Hole] = []
        self.lost = LostSpans(clock)

    def __len__(self) -> int:
        return len(self._holes)

    def ranges(self) -> tuple[Range, ...]:
        return tuple((h.lo, h.hi) for h in self._holes)

    def note(self, ids: np.ndarray, after: int) -> None:
        """`ids` were read (any order) and `after` was the highest id seen before: the seen ones
        leave their ranges, the gaps among the new ones above `after` become ranges."""
        if not len(ids):
            return
        seen = np.unique(ids)
        now = self._clock.time()
        kept: list[_Hole] = []
        for hole in self._holes:
            kept.extend(_split(hole, seen))
        fresh = seen[seen > after]
        if len(fresh):
            edges = np.concatenate(([after], fresh))
            gaps = np.flatnonzero(np.diff(edges) > 1)
            kept.extend(_Hole(int(edges[i]) + 1, int(edges[i + 1]) - 1, now) for i in gaps.tolist())
        kept.sort(key=lambda h: h.lo)
        excess = len(kept) - MAX_HOLES
        if excess > 0:  # the oldest ids go first: the likeliest never to commit
            for hole in kept[:excess]:
                self.lost.add(hole.lo, hole.hi, now)
            kept = kept[excess:]
        self._holes = kept

    def expire(self) -> None:
        """Ranges waited for `HOLE_SECONDS` are lost: watched, no longer read by id."""
        cutoff = self._clock.time() - HOLE_SECONDS
        for hole in self._holes:
            if hole.since < cutoff:
                self.lost.add(hole.lo, hole.hi, self._clock.time())
        self._holes = [h for h in self._holes if h.since >= cutoff]

    def mask(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` are in a range."""
        if not self._holes:
            return np.zeros(len(ids), dtype=bool)
        lo = np.array([h.lo for h in self._holes], dtype=np.int64)
        hi = np.array([h.hi for h in self._holes], dtype=np.int64)
        at = np.searchsorted(lo, ids, side="right") - 1
        return (at >= 0) & (ids <= hi[np.maximum(at, 0)])


def _split(hole: _Hole, seen: np.ndarray) -> list[_Hole]:
    """What is left of `hole` once the sorted ids `seen` are taken out of it."""
    a, b = np.searchsorted(seen, [hole.lo, hole.hi], side="left")
    b = int(b) + int(b < len(seen) and seen[b] == hole.hi)
    inside = seen[a:b]
    if not len(inside):
        return [hole]
    edges = np.concatenate(([hole.lo - 1], inside, [hole.hi + 1]))
    gaps = np.flatnonzero(np.diff(edges) > 1)
    return [_Hole(int(edges[i]) + 1, int(edges[i + 1]) - 1, hole.since) for i in gaps.tolist()]


@dataclass(slots=True)
class LostSpans:
    """Id spans no incremental read asks for: watched by their rows per hour."""

    clock: Clock
    spans: list[_Span] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans)

    def add(self, lo: int, hi: int, now: float) -> None:
        self.spans.append(_Span(lo, hi, now))
        self.spans.sort(key=lambda s: s.lo)
        while len(self.spans) > MAX_LOST_SPANS:  # the two nearest spans become one, looked up anew
            gaps = [b.lo - a.hi for a, b in zip(self.spans, self.spans[1:], strict=False)]
            i = gaps.index(min(gaps))
            a, b = self.spans[i], self.spans.pop(i + 1)
            self.spans[i] = _Span(a.lo, max(a.hi, b.hi), max(a.since, b.since))

    async def changed_hours(self, look_up: Callable[[int, int], Awaitable[dict[int, int]]]) -> set[int]:
        """The hours (epoch hour index) whose rows in a lost span changed since the last `look_up`
        (rows per hour of ids lo..hi; at a span's first, all its hours); spans watched
        `LOST_SECONDS` are dropped after this one."""
        changed: set[int] = set()
        for span in list(self.spans):
            hours = await look_up(span.lo, span.hi)
            before = span.hours
            if before is None:
                changed.update(hours)
            else:
                changed.update(h for h in set(hours) | set(before) if hours.get(h) != before.get(h))
            span.hours = hours
        cutoff = self.clock.time() - LOST_SECONDS
        self.spans = [s for s in self.spans if s.since >= cutoff]
        return changed
