"""Single rows where whole hours do not fit: the open hours, and closed hours a window only partly covers.

The open hours (from the rollups' horizon on) are read once, up to the id the rollups were read to,
and then incrementally by id: each read takes the rows with an id above the highest seen, plus the
ids below it not seen yet (holes.py: a transaction that took an id may commit after a later one),
`PAGE_ROWS` at a time. Every row such a read returns is counted exactly once: in the open rows, or —
dated before them — handed to the rollups as a late row, a page at a time (a backfill of millions
never sits in memory whole). A read on an answer's path takes at most `REQUEST_PAGES` pages; the
maintenance loop takes the rest (`caught_up`), so a backfill never holds an answer past its deadline.

The open rows' sums per hour are kept up to `cut`, a few seconds behind the newest row, and the rows
after it (the tail) summed per second, kept too and added to as rows join it: a window ending now (at
a whole second) costs the same with 60,000 open rows as with 60, and copies none of them. Closed hours
that a window's edge cuts are read once as single rows and kept (a few dozen, least recently used
first out); the hours used last also keep their rows ordered by group and time (`Spans`), so that an
edge's sums per group are a few searches, not a copy of the rows summed anew by every answer.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from cost_api.aggregation.groups import Groups, Vocab
from cost_api.aggregation.holes import Holes
from cost_api.aggregation.priced import column_array, from_columns, from_rows
from cost_api.aggregation.rollups import Bound
from cost_api.aggregation.views import keys_only
from cost_api.clock import Clock
from cost_api.pricing.table import PriceTable
from cost_api.store.result import Rows, Table
from cost_api.windows import HOUR_MS, from_ms, hour_runs

PAGE_ROWS = 10_000  # rows per incremental read: a backfill is taken in pages, memory stays bounded
REQUEST_PAGES = 2  # pages an answer reads itself; the maintenance loop reads the rest
TAIL_MS = 5_000  # the open rows this far behind the newest (or now) are summed per answer, not kept summed
_CHUNKS = 64  # chunks of the open rows' body before they are joined into one
_CACHED_HOURS = 64
_SPANS_KEPT = 4  # spans of one kept hour whose sums are kept (a window's start, another's end, ...)
_SPANS_HOURS = 8  # kept hours, the most recently used, that keep their rows ordered for sums (`RowSet.summed`)
_FAR = 253_402_300_799_000  # 9999-12-31T23:59:59Z: "no end"

Fetch = Callable[..., Awaitable[Rows | Table]]  # Database.fetch: with table=True, a Table (or a test's Rows)


@dataclass(slots=True)
class RowSet:
    """Rows as one-row groups (slot = created_at in ms, key = endpoint), with their tokens and ids."""

    rows: Groups
    token: np.ndarray
    ids: np.ndarray
    # per key: the rows in order of group and time, for `summed` (a set is never changed in place:
    # rows that join a kept hour make a new set, so what is kept here always matches the rows)
    _spans: dict[tuple[str | None, bool], Spans] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def summed(self, start_ms: int, end_ms: int, key: str | None, *, keyed: bool = False) -> Groups:
        """`between(start_ms, end_ms).hourly(key)` summed per group (hour, provider, model, key, tier,
        size class, cache hit, quality, price entry): the same in every sum, without copying a row (a
        window's start or end cutting a closed hour asks it of the hour's kept rows on every answer).
        `keyed`: summed over provider, model and tier too where `views.keys_only` would."""
        if self._spans is None:
            self._spans = {}
        spans = self._spans.get((key, keyed))
        if spans is None:
            hourly = self.hourly(key)
            spans = self._spans[key, keyed] = Spans.of(keys_only(hourly) if keyed else hourly, self.rows.slot)
        return spans.between(start_ms, end_ms)

    def drop_spans(self) -> None:
        """Let go of what `summed` keeps (built again when next asked)."""
        self._spans = None

    def between(self, start_ms: int, end_ms: int) -> RowSet:
        return self.subset((self.rows.slot >= start_ms) & (self.rows.slot < end_ms))

    def subset(self, mask: np.ndarray | slice) -> RowSet:
        return RowSet(self.rows.subset(mask), self.token[mask], self.ids[mask])

    def hourly(self, key: str | None, slot_ms: int = HOUR_MS) -> Groups:
        """As groups of the hour (slot = hour; or of another `slot_ms`), keyed by endpoint, token or nothing."""
        rows = self.rows.subset(slice(None))
        rows.slot = rows.slot // slot_ms
        rows.slot_ms = slot_ms
        if key == "token":
            rows.key = self.token
        elif key is None:
            rows.key = np.zeros(len(rows), dtype=np.int32)
        return rows

    @staticmethod
    def concat(vocab: Vocab, parts: Iterable[RowSet]) -> RowSet:
        parts = list(parts)
        if not parts:
            return RowSet(Groups.empty(vocab, 1), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64))
        return RowSet(
            Groups.concat(vocab, 1, [p.rows for p in parts]),
            np.concatenate([p.token for p in parts]),
            np.concatenate([p.ids for p in parts]),
        )


@dataclass(frozen=True, slots=True)
class Spans:
    """Rows (as one-row groups) put in order of their group and time once, so that the sums per group
    of the rows of any span of time cost a few searches and subtractions per group, not a copy of the
    rows: counts as differences of running sums (exact in int64), money summed in order (`reduceat`)."""

    cells: Groups  # one per group: its columns (counts and money replaced by each answer's sums)
    at: np.ndarray  # int64, ascending: each row's group * width + its time - base
    base: int
    width: int
    counts: tuple[str, ...]
    running: np.ndarray  # (rows + 1, len(counts)) int64: the counts summed up to each row, in `at`'s order
    money: np.ndarray  # (2, rows + 1) float64: spend and saved in `at`'s order, a 0 last
    starts: np.ndarray  # int64: each group's first place in `at`'s scale (group * width)
    # the last spans asked and their sums (answers in the same second ask the same): never changed
    asked: OrderedDict[tuple[int, int], Groups] = field(default_factory=OrderedDict)

    @staticmethod
    def of(groups: Groups, times: np.ndarray) -> Spans:
        """`groups` (one per row, hourly) and each row's time (epoch ms)."""
        n = len(groups)
        if not n:
            empty = np.zeros(0, dtype=np.int64)
            counts = tuple(groups.counts)
            return Spans(groups, empty, 0, 1, counts, np.zeros((1, len(counts)), np.int64), np.zeros((2, 1)), empty)
        columns = (groups.slot, groups.provider, groups.model, groups.key, groups.tier, groups.priced_as)
        combined = np.zeros(n, dtype=np.int64)
        for column in (*columns, groups.size_class, groups.cache_hit, groups.quality):
            compact = np.unique(column, return_inverse=True)[1].reshape(-1)
            combined = combined * (int(compact.max()) + 1) + compact
        _, first, group = np.unique(combined, return_index=True, return_inverse=True)
        base = int(times.min())
        width = int(times.max()) - base + 1
        at = group.reshape(-1).astype(np.int64) * width + (times.astype(np.int64) - base)
        order = np.argsort(at, kind="stable")
        counts = tuple(groups.counts)
        running = np.zeros((n + 1, len(counts)), dtype=np.int64)
        for i, name in enumerate(counts):
            np.cumsum(groups.counts[name][order], out=running[1:, i])
        money = np.zeros((2, n + 1))
        money[0, :n], money[1, :n] = groups.spend[order], groups.saved[order]
        starts = np.arange(len(first), dtype=np.int64) * width
        return Spans(groups.subset(first), at[order], base, width, counts, running, money, starts)

    def between(self, start_ms: int, end_ms: int) -> Groups:
        """The rows of [start_ms, end_ms), summed per group (the same groups for the same span: they
        are shared, as every answer's groups are, and never changed)."""
        lo = min(max(start_ms - self.base, 0), self.width)
        hi = min(max(end_ms - self.base, 0), self.width)
        found = self.asked.get((lo, hi))
        if found is None:
            found = self.asked[lo, hi] = self._sums(lo, hi)
            if len(self.asked) > _SPANS_KEPT:
                self.asked.popitem(last=False)
        return found

    def _sums(self, lo: int, hi: int) -> Groups:
        first = np.searchsorted(self.at, self.starts + lo, side="left")
        last = np.searchsorted(self.at, self.starts + hi, side="left")
        present = np.flatnonzero(last > first)
        if not len(present):
            return Groups.empty(self.cells.vocab, self.cells.slot_ms)
        first, last = first[present], last[present]
        counts = self.running[last] - self.running[first]
        bounds = np.empty(2 * len(present), dtype=np.int64)
        bounds[0::2], bounds[1::2] = first, last
        money = np.add.reduceat(self.money, bounds, axis=1)[:, 0::2]
        cells = self.cells.subset(present)
        cells.counts = {name: counts[:, i].copy() for i, name in enumerate(self.counts)}
        cells.spend, cells.saved = money[0].copy(), money[1].copy()
        return cells


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
        self.open_from_ms = 0
        self.cut = 0  # the open rows dated before it are in `_body`, and in `_summed` once asked
        self._body: list[RowSet] = []  # the open rows dated before `cut`, in the chunks they came in
        self._tail: RowSet | None = None  # the open rows dated from `cut` on (None: not started)
        self._summed: dict[str | None, Groups] = {}  # `_body` summed per hour, by key (filled when asked)
        # by key: how many of the tail's first rows are summed per second in the groups beside (filled
        # when asked; rows join the tail at its end, and leave it a second at a time as `cut` moves)
        self._tail_summed: dict[str | None, tuple[int, Groups]] = {}
        self._after = 0
        self.holes = Holes(clock)
        self.caught_up = True  # the last incremental read found every committed row
        self._reads = 0  # incremental reads begun
        self._epoch = 0  # counts `forget`s

    def _rowset(self, rows: Table | Rows) -> RowSet:
        """The rows of `rows_between` or `rows_after`, taken apart into columns once."""
        cols, n = rows.columns(), len(rows)
        groups = from_columns(self._vocab, 1, cols, n, self._pricing)
        tokens = self._vocab.encode(cols["token_id"])
        return RowSet(groups, tokens, column_array(cols["id"], np.int64, n))

    def _no_rows(self) -> RowSet:
        return RowSet(from_rows(self._vocab, 1, [], None), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64))

    async def between(self, start_ms: int, end_ms: int, max_id: int | None = None) -> RowSet:
        rows = await self._fetch(
            "rows_between", table=True, start=from_ms(start_ms), end=from_ms(end_ms), max_id=max_id, **self._thresholds
        )
        return self._rowset(rows)

    async def start(self, from_ms: int, max_id: int) -> None:
        """The rows from `from_ms` on with an id up to `max_id` (the rollups hold the rest of those
        ids); every later id comes through `refresh`."""
        rows = await self.between(from_ms, _FAR, max_id)
        self.open_from_ms = self.cut = from_ms
        self._set_open(rows)
        self._after = max_id
        self.holes = Holes(self._clock)
        self.caught_up = True
        self._hours.clear()
        self._advance_cut()

    @property
    def started(self) -> bool:
        return self._tail is not None

    @property
    def open(self) -> RowSet | None:
        """Every open row (from `open_from_ms` on), in one set: a copy, for the reads that need them
        all (the sweep, an hour closing, a window starting inside the open hours)."""
        if self._tail is None:
            return None
        if len(self._body) > 1:
            self._body = [RowSet.concat(self._vocab, self._body)]
        return RowSet.concat(self._vocab, [*self._body, self._tail])

    def _set_open(self, rows: RowSet | None) -> None:
        """The open rows anew, split at `cut`; their sums are summed again when asked."""
        self._summed, self._tail_summed = {}, {}
        if rows is None:
            self._body, self._tail = [], None
            return
        before = rows.rows.slot < self.cut
        self._body, self._tail = [rows.subset(before)], rows.subset(~before)

    def bound(self) -> Bound:
        """The ids a read of closed hours may count now: the rest arrive through `refresh`."""
        return Bound(self._after, self.holes.ranges())

    def ticket(self) -> int:
        """Taken before waiting to `refresh`: see `since` there."""
        return self._reads

    async def refresh(
        self, take_late: Callable[[RowSet], None], pages: int = REQUEST_PAGES, since: int | None = None
    ) -> None:
        """Take in the rows committed since the last read, `pages` pages at most (`caught_up` says
        whether that was all): new rows join the open ones, late ones (dated before them) go to
        `take_late` a page at a time, for the rollups. With `since` (a `ticket()`), nothing is read
        when a read began after the ticket: it saw every row committed before, up to a page's worth
        (the answers of one request, six windows for a summary, read the log once; under a backfill,
        answers queued behind one read do not each read pages more)."""
        assert self._tail is not None
        if since is not None and self._reads > since:
            return
        epoch = self._epoch
        for _ in range(pages):
            self._reads += 1
            self.holes.expire()
            holes = self.holes.ranges()
            fresh = self._rowset(
                await self._fetch(
                    "rows_after",
                    table=True,
                    after=self._after,
                    hole_from=[lo for lo, _ in holes],
                    hole_to=[hi for _, hi in holes],
                    limit=PAGE_ROWS,
                    **self._thresholds,
                )
            )
            if self._epoch != epoch:  # forgotten while reading: these rows are another database's
                return
            self.caught_up = len(fresh) < PAGE_ROWS
            if len(fresh):
                self.holes.note(fresh.ids, self._after)
                self._after = max(self._after, int(fresh.ids.max()))
                early = fresh.rows.slot < self.open_from_ms
                late = fresh.subset(early)
                if len(late):
                    self._add_to_cut_hours(late)
                    take_late(late)
                self._add_open(fresh.subset(~early))
            if self.caught_up:
                return

    def _add_open(self, rows: RowSet) -> None:
        """New open rows: those dated before `cut` join the body (and its sums) as a chunk of their
        own, the others the tail; no read copies the rows already held."""
        if not len(rows):
            return
        assert self._tail is not None
        before = rows.rows.slot < self.cut
        self._to_body(rows.subset(before))
        self._tail = RowSet.concat(self._vocab, [self._tail, rows.subset(~before)])
        self._advance_cut()
        if len(self._body) > _CHUNKS:
            self._body = [RowSet.concat(self._vocab, self._body)]

    def _advance_cut(self) -> None:
        """Move `cut` to `TAIL_MS` before the newest open row (or before now, for rows dated ahead):
        the tail's rows it passes join the body."""
        assert self._tail is not None
        if not len(self._tail):
            return
        newest = min(int(self._tail.rows.slot.max()), int(self._clock.time() * 1000))
        cut = (newest - TAIL_MS) // 1000 * 1000
        if cut > self.cut:
            passed = self._tail.rows.slot < cut
            self._to_body(self._tail.subset(passed))
            self._tail = self._tail.subset(~passed)
            self.cut = cut
            for key, (summed_rows, summed) in self._tail_summed.items():  # `cut` is a whole second
                left = summed.subset(summed.slot >= cut // 1000)
                self._tail_summed[key] = (summed_rows - int(np.count_nonzero(passed[:summed_rows])), left)

    def _to_body(self, rows: RowSet) -> None:
        if not len(rows):
            return
        self._body.append(rows)
        for key, summed in self._summed.items():
            self._summed[key] = Groups.concat(self._vocab, HOUR_MS, [summed, rows.hourly(key)]).collapsed()

    async def reread_open(self) -> None:
        """Read the open rows again (a delete or an update in the open hours), within the bound."""
        assert self._tail is not None
        epoch = self._epoch
        fresh = await self.between(self.open_from_ms, _FAR, self._after)
        if self._epoch != epoch:  # forgotten while reading
            return
        self._set_open(fresh.subset(~self.holes.mask(fresh.ids)))

    def take_closed(self, until_ms: int) -> RowSet:
        """Hand over the open rows before `until_ms` (their hours closed); the open rows start there."""
        every = self.open
        assert every is not None
        self.open_from_ms = until_ms
        self.cut = max(self.cut, until_ms)
        self._set_open(every.between(until_ms, _FAR))
        return every.between(0, until_ms)

    def open_parts(self, start_ms: int, end_ms: int, key: str | None) -> list[Groups]:
        """The open rows of [start_ms, end_ms) summed per hour and key (as of the last `refresh`), in
        parts that the caller concatenates with its others (one copy of all). A range from the open
        hours' start to past `cut` (any window ending now) takes the kept sums and sums only the rows
        after `cut`: per second, kept too, when it ends at a whole second."""
        assert self._tail is not None
        if start_ms > self.open_from_ms or end_ms < self.cut:
            every = self.open
            assert every is not None
            return [every.between(start_ms, end_ms).hourly(key)]
        if key not in self._summed:
            self._summed[key] = Groups.concat(self._vocab, HOUR_MS, [b.hourly(key) for b in self._body]).collapsed()
        if end_ms % 1000:  # not a whole second (a window ending now ends at one): the tail's rows
            tail = self._tail.between(self.cut, end_ms).hourly(key)
        else:
            seconds = self._tail_seconds(key)
            tail = seconds.subset(seconds.slot < end_ms // 1000)
            tail.slot, tail.slot_ms = tail.slot * 1000 // HOUR_MS, HOUR_MS
        return [self._summed[key], tail]

    def _tail_seconds(self, key: str | None) -> Groups:
        """The tail's rows summed per second (slot) and key, the rows that joined it since last asked
        added to what was summed then."""
        assert self._tail is not None
        summed_rows, summed = self._tail_summed.get(key, (0, None))
        if summed_rows < len(self._tail) or summed is None:
            fresh = self._tail.subset(slice(summed_rows, None)).hourly(key, 1000)
            summed = Groups.concat(self._vocab, 1000, [summed, fresh]).collapsed(keep_sizes=True)
            self._tail_summed[key] = (len(self._tail), summed)
        return summed

    async def closed_hour(self, hour: int) -> RowSet:
        """The single rows of one closed hour, kept for the next window that cuts it."""
        found = self._hours.get(hour)
        if found is None:
            found = await self.between(hour * HOUR_MS, (hour + 1) * HOUR_MS)
            self._hours[hour] = found
            while len(self._hours) > _CACHED_HOURS:
                self._hours.popitem(last=False)
            # the sums by span only for the hours used last (each about the size of the rows again)
            for kept in itertools.islice(self._hours.values(), max(0, len(self._hours) - _SPANS_HOURS)):
                kept.drop_spans()
        else:
            self._hours.move_to_end(hour)
        return found

    def _add_to_cut_hours(self, late: RowSet) -> None:
        """Late rows join the kept rows of their hour (unless that read already had them)."""
        if not self._hours:
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

    async def lost_hours(self) -> list[tuple[int, int]]:
        """Runs of hours [h0, h1) where an id no incremental read asks for any more has committed
        (holes.py): the caller compares them with the log and reads them again."""
        return hour_runs(await self.holes.lost.changed_hours(self._span_hours))

    async def _span_hours(self, lo: int, hi: int) -> dict[int, int]:
        rows = await self._fetch("id_span_hours", lo=lo, hi=hi)
        assert isinstance(rows, Rows)
        return {int(hour): int(count) for hour, count in rows.pick("hour", "rows")}

    def forget(self) -> None:
        """Another database behind the URL: everything is read again. A read in flight (`refresh`,
        `reread_open`: they run under the aggregator's lock, this may not) keeps nothing it read."""
        self._epoch += 1
        self._hours.clear()
        self._set_open(None)
        self.holes = Holes(self._clock)
        self.caught_up = True
