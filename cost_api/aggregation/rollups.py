"""Closed hours, aggregated and kept in memory: one rollup per lens dimension.

The closed hours' priced groups are kept as numpy columns, sorted by hour: the base rollup (provider,
model, size class, cache hit) serves totals, providers, models and trends; the endpoint rollup the
endpoint lens and budgets; the token rollup the token lens. They are read from the log once, at
warm-up, up to one id; from then on every row arrives through the open-hours reader (recent.py),
which hands over the rows of each hour as it closes and every late row (a row dated in a closed
hour, committed after it closed: a slow stream, a backfill) as it is read. Deletes and updates,
which no incremental read sees, are found by the reconciliation sweep (aggregate.py), which compares
per-hour fingerprints of the log with `fingerprints()` and reads the hours that differ again with
`reread()`. These are aggregates of what the database holds, not a response cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cost_api.aggregation.concurrency import gather_or_cancel
from cost_api.aggregation.groups import COUNTS, EXCLUDED, Groups
from cost_api.aggregation.memory import CAPPED, MemoryCap, nbytes, release
from cost_api.aggregation.views import View, Views, hourly_pieces
from cost_api.clock import Clock
from cost_api.errors import WarmingUp
from cost_api.store.database import QueryTimeout, background_reads
from cost_api.windows import HOUR_MS, from_ms, hour_runs

if TYPE_CHECKING:
    from cost_api.aggregation.snapshot import Snapshots

log = logging.getLogger("cost_api.aggregation.rollups")

DIMENSIONS: tuple[str | None, ...] = (None, "endpoint", "token")
# the rollups that also keep a sum per closed UTC day; the token rollup's would be most of its own size
# again (20,000 tokens are active on most days), and its answers over whole days are kept runs (views.py)
DAILY: tuple[str | None, ...] = (None, "endpoint")
_CHUNK_HOURS = 24  # a day per query: well inside query_timeout on a large log
SAVE_EVERY_HOURS = 6  # hours read or closed since the last snapshot before the next is saved
RESTORE_WAIT_SECONDS = 8.0  # how long an answer waits for a warm-up (docs/performance.md#cold-numbers)
COLD_READ_HOURS = 24  # an answer over more closed hours waits for a warm-up from the log too, then is a 503
_PENDING_CELLS = 100_000  # late cells kept beside the sorted rollups before they are merged in
# the counts a fingerprint compares: what a delete or a corrected token count changes
FINGERPRINT = ("requests", "errors", *COUNTS[2:], EXCLUDED)


@dataclass(frozen=True, slots=True)
class Bound:
    """Which ids a read of the log may count: up to `max_id` (None: all) except the ranges in `skip` —
    the rows the open-hours reader has not taken yet and will hand over itself."""

    max_id: int | None = None
    skip: tuple[tuple[int, int], ...] = ()  # id ranges, both ends included, sorted

    def params(self) -> dict[str, Any]:
        """`:max_id`, `:skip_from` and `:skip_to` of the queries that take a bound (NULL: none): query
        parameters, which `Database.fetch` takes as `**params` (typed so: it also takes `table`)."""
        return {
            "max_id": self.max_id,
            "skip_from": [lo for lo, _ in self.skip] or None,
            "skip_to": [hi for _, hi in self.skip] or None,
        }


UNBOUNDED = Bound()


@dataclass(frozen=True, slots=True)
class Held:
    """What the rollups hold: every dimension's cells of the hours before `horizon`, sorted by hour; and,
    where the token rollup is not held, the pieces of the unfiltered read by token for totals
    (`Views.totals`: per UTC day or hour, summed per token) of those hours."""

    horizon: int
    parts: dict[str | None, Groups]
    pieces: dict[tuple[int, int], Groups] = field(default_factory=dict)

    @property
    def piece_hours(self) -> int:
        """The hours the pieces cover."""
        return sum(b - a for a, b in self.pieces)


# reads the `groups` query over whole hours [h0, h1) for one dimension, unfiltered, within a bound
HourReader = Callable[[str | None, int, int, Bound], Awaitable[Groups]]


def _projected(read: int, h0: int, end: int, h1: int) -> int:
    """The bytes a rollup of hours [h0, h1) will take, of the `read` bytes of hours [end, h1) read so far
    (newest first): their hours' size times all of the hours, halved (a growing log's newest days are its
    largest), halved again while less than a day is read (the newest hour may be the day's busiest), and
    never less than what is read. Past the cap at the first hour, a rollup that cannot fit is not read
    to the end first (at 100M rows: ~4 GB by token, ~70 MB a day, ~3 MB an hour)."""
    share = 4 if h1 - end < _CHUNK_HOURS else 2
    return max(read, read * (h1 - h0) // max(1, h1 - end) // share)


def floor_hour(ms: int) -> int:
    return ms // HOUR_MS


def ceil_hour(ms: int) -> int:
    return -(-ms // HOUR_MS)


def per_dimension(hourly: Callable[[str | None], Groups]) -> dict[str | None, Groups]:
    """Hourly groups of one set of rows for every rollup, from a function of the key dimension."""
    return {dim: hourly(dim).collapsed() for dim in DIMENSIONS}


class Rollups:
    def __init__(
        self,
        read: HourReader,
        grace_seconds: float,
        clock: Clock,
        snapshots: Snapshots | None = None,
        cap: MemoryCap | None = None,
        pieces: Hashable = None,
    ) -> None:
        self._read = read
        self._pieces = pieces  # the name the unfiltered read by token for totals keeps its pieces under
        self.cap = cap or MemoryCap()  # past it the token rollup is dropped (memory.py)
        self.dropped: set[str | None] = set()
        self._grace_ms = int(grace_seconds * 1000)
        self._clock = clock
        self._snapshots = snapshots
        self._settled = asyncio.Event()  # set when a warm-up ends, or turns out not to restore a snapshot
        self._warmed = asyncio.Event()  # set when a warm-up ends, done or failed; cleared when one begins
        self.warming = False  # a warm-up runs (the aggregator's, from its first read of the log)
        # a long answer's SQL passed query_timeout during this warm-up: the engine does not sum such
        # windows in time (ClickHouse on a large log), and the next ones wait for the warm-up instead
        self.engine_too_slow = False
        self.hours_read = 0  # closed hours read from the log (per rollup set): what a snapshot saves
        self.progress = 0  # closed hours by endpoint read so far in this warm-up (its 503s say so)
        self.hours_restored = 0
        self.parts: dict[str | None, Groups] = {}  # sorted by hour
        self.pending: dict[str | None, Groups] = {}  # late cells not merged into `parts` yet, any order
        self.days: dict[str | None, Groups] = {}  # whole UTC days before the horizon, sorted by day
        self.views = Views()  # what answers' filters and groupings make of the held cells, per day
        self.horizon = 0  # hours < horizon are closed and held (hours before the log's start are empty)
        self.oldest_ms: int | None = None
        self.ready = False
        self.warm_seconds: float | None = None
        self.warm_ups = 0  # warm-ups begun: a read begun before one is not put in place after it
        self._added: list[dict[str | None, Groups]] | None = None  # late cells `add` took while `reread_apart` read

    def closed_horizon(self) -> int:
        """The first hour that is not closed yet: hours end + grace before now are closed."""
        now_ms = int(self._clock.time() * 1000)
        return floor_hour(now_ms - self._grace_ms)

    def pick(self, dim: str | None, endpoints: bool, tokens: bool) -> tuple[bool, str | None]:
        """Whether a rollup serves a read of `dim` with these filters, and which one."""
        if not self.ready or dim not in DIMENSIONS or (endpoints and tokens):
            return False, None
        needed = "endpoint" if endpoints else "token" if tokens else dim
        return (needed == dim or dim is None) and needed not in self.dropped, needed

    def holds(self, dim: str | None) -> bool:
        """Whether the rollup of `dim` is held (what is read of its dimension is no bigger than it)."""
        return dim in DIMENSIONS and dim not in self.dropped

    def slice(
        self,
        dim: str | None,
        h0: int,
        h1: int,
        *,
        coarse: bool = False,
        whole: bool = False,
        keyed: bool = False,
        view: View | None = None,
    ) -> Groups:
        """Hours [h0, h1) of one rollup, through `view` (None: the cells as held); `coarse`: whole UTC
        days as one group per day and key; `whole`: all the hours as one group per key (`keyed`: see
        `Views.run`), kept until one of their days changes."""
        part = self.parts[dim]
        late = _within(self.pending.get(dim), h0, h1)
        late = late if view is None else view.of(late)
        name = (None if view is None else view.name, dim)
        if whole:
            summed = self.views.run(name, h0, h1, lambda: self._whole(name, h0, h1, view, keyed), keyed=keyed)
            return Groups.concat(part.vocab, HOUR_MS, [summed, late])
        if not coarse:
            return Groups.concat(part.vocab, HOUR_MS, [*self._hours(dim, h0, h1, view), late])
        days = self._coarse(dim, h0, h1, view, lambda d0, d1: self._days(dim, d0, d1, view))
        return Groups.concat(part.vocab, HOUR_MS, [days, late])

    def _whole(self, name: tuple[Hashable, str | None], h0: int, h1: int, view: View | None, keyed: bool) -> Groups:
        """The cells of hours [h0, h1) for `Views.run`: their whole days summed once per run of days."""
        dim = name[1]

        def run(d0: int, d1: int) -> Groups:
            return self.views.run(name, d0 * 24, d1 * 24, lambda: self._days(dim, d0, d1, view), keyed=keyed)

        return self._coarse(dim, h0, h1, view, run)

    def _coarse(
        self, dim: str | None, h0: int, h1: int, view: View | None, days: Callable[[int, int], Groups]
    ) -> Groups:
        """Hours [h0, h1): the hours before the first midnight and after the last one hourly, the whole
        days [d0, d1) between them as `days(d0, d1)` gives them."""
        d0, d1 = -(-h0 // 24), h1 // 24
        if d0 >= d1:
            return Groups.concat(self.parts[dim].vocab, HOUR_MS, self._hours(dim, h0, h1, view))
        head, tail = self._hours(dim, h0, d0 * 24, view), self._hours(dim, d1 * 24, h1, view)
        return Groups.concat(self.parts[dim].vocab, HOUR_MS, [*head, days(d0, d1), *tail])

    def _hours(self, dim: str | None, h0: int, h1: int, view: View | None) -> list[Groups]:
        """The hourly cells of hours [h0, h1), through `view`."""
        if h0 >= h1:
            return []
        if view is None:
            return [_between(self.parts[dim], h0, h1)]
        return hourly_pieces(self.views, view, dim, self.parts[dim], h0, h1)

    def _days(self, dim: str | None, d0: int, d1: int, view: View | None) -> Groups:
        """The daily cells of whole days [d0, d1), through `view`."""
        if view is None:
            return _between(self.days[dim] if dim in self.days else self.parts[dim], d0 * 24, d1 * 24)
        part = self.parts[dim]
        return Groups.concat(part.vocab, HOUR_MS, [self.views.day(view, dim, part, d).daily for d in range(d0, d1)])

    async def warm(self, oldest_ms: int | None, horizon: int, bound: Bound) -> None:
        """Hold every closed hour of the log before `horizon` within `bound` (the open-hours reader
        takes every other row): from the saved snapshot, where there is a valid one, reading only the
        hours it lacks or that changed since; else every hour, chunk by chunk, newest first."""
        started = time.monotonic()
        self.oldest_ms = oldest_ms
        first = horizon if oldest_ms is None else min(floor_hour(oldest_ms), horizon)
        try:
            restored = await self._restore(first, horizon, bound)
            if restored is None:
                # every hour from the log, behind the answers' queries (only answers over many closed
                # hours wait for it, on SQLite and Postgres); not a restore, which every answer waits for
                with background_reads():
                    self.parts, stale = await self._load_all(first, horizon, bound), set[int]()
            else:
                held, stale = restored
                fresh = await self._load_all(held.horizon, horizon, bound)
                self.parts = {
                    d: Groups.concat(p.vocab, HOUR_MS, [p, fresh[d]]) for d, p in held.parts.items() if d in fresh
                }
            self.pending = {}
            self.horizon = horizon
            whole_days = horizon // 24 * 24
            self.days = {dim: _between(part, 0, whole_days).daily() for dim, part in self.parts.items() if dim in DAILY}
            self._enforce_cap()
            self.views.clear()
            if restored is not None and CAPPED in self.dropped:  # before the stale hours are read again
                self.views.restore_pieces(self._pieces, restored[0].pieces)
            await self.reread(stale, bound)
            self._enforce_cap()
            self.ready = True
            if self._snapshots is not None and self.hours_read >= SAVE_EVERY_HOURS:
                self._snapshots.saved_horizon = None  # save what was read, at once
        finally:
            self._settled.set()
            release()
        self.warm_seconds = time.monotonic() - started
        cells = {d: len(p) for d, p in self.parts.items()}
        log.info(
            "rollups warm in %.1fs: %d hours from a snapshot, %d read; %s cells",
            self.warm_seconds,
            self.hours_restored,
            self.hours_read,
            cells,
        )

    async def _restore(self, first: int, horizon: int, bound: Bound) -> tuple[Held, set[int]] | None:
        """The snapshot's hours of [first, horizon) and those of them to read again; None without a
        valid snapshot (then answers stop waiting for one)."""
        snapshots = self._snapshots
        if snapshots is None or not snapshots.present():
            self._settled.set()
            return None
        vocab = (await self._read(None, first, first, bound)).vocab  # the codes every rollup is in
        # the file (read in a thread) and the log's figures (read by the database) at once
        loaded, logged = await gather_or_cancel(snapshots.load(vocab), snapshots.hour_ids(first, horizon, bound))
        if loaded is None:
            self._settled.set()
            return None
        saved, ids = loaded
        end = max(first, min(saved.horizon, horizon))
        # pieces of hours before the log's first row hold rows deleted since (retention) where such an
        # hour held rows at the save; the others are empty, as those hours are now
        base = saved.parts[None].slot
        gone = {h for h in ids if h < first} | set(base[base < first].tolist())
        pieces = {(a, b): g for (a, b), g in saved.pieces.items() if b <= end and gone.isdisjoint(range(a, b))}
        held = Held(end, {dim: _between(part, first, end).narrowed() for dim, part in saved.parts.items()}, pieces)
        if CAPPED not in saved.parts:  # saved past the memory cap: read from the log, if this one lets it
            token = await self._load(CAPPED, first, end, bound)
            if token is None:
                self._drop(CAPPED)
            else:
                held.parts[CAPPED] = token
        stale = snapshots.stale_hours(held, ids, logged, first)
        self.hours_restored = end - first - len(stale)
        return held, stale

    async def _load_all(self, h0: int, h1: int, bound: Bound) -> dict[str | None, Groups]:
        """Hours [h0, h1) of every rollup: the endpoint and token ones read side by side (two
        connections, two cores), the base one summed from the endpoint one."""
        endpoint, token = await gather_or_cancel(
            self._load("endpoint", h0, h1, bound), self._load("token", h0, h1, bound)
        )
        self.hours_read += max(0, h1 - h0)
        assert endpoint is not None
        base = endpoint.subset(slice(None))
        base.key = np.zeros(len(base), dtype=np.int32)
        summed = base.collapsed().narrowed()
        if token is None:  # past the memory cap
            self._drop(CAPPED)
            return {None: summed, "endpoint": endpoint}
        return {None: summed, "endpoint": endpoint, "token": token}

    async def _load(self, dim: str | None, h0: int, h1: int, bound: Bound) -> Groups | None:
        """Hours [h0, h1) of one dimension, a day per query (over more than a day, the token rollup's newest
        hour alone first: one that cannot fit is not read a day of), sorted by hour; None for the token
        rollup dropped, or once it would not fit the memory cap with what is held (`_projected`)."""
        if dim in self.dropped:
            return None
        chunks = [await self._read(dim, h1, h1, bound)]
        end = h1
        probe = dim == CAPPED and h1 - h0 > _CHUNK_HOURS  # (hours read again, or closing: one read, as before)
        while end > h0:
            start = max(h0, end - (1 if probe and end == h1 else _CHUNK_HOURS))
            # each day sorted and narrowed as it comes (newest first): the whole is concatenated once,
            # in hour order, and never sorted or held at full width
            chunks.append(_sorted(await self._read_halving(dim, start, end, bound)).narrowed())
            if dim == "endpoint":
                self.progress += end - start
            end = start
            if dim == CAPPED and not self.cap.fits(self.held_bytes() + _projected(nbytes(chunks), h0, end, h1)):
                return None
        return Groups.concat(chunks[0].vocab, HOUR_MS, chunks[::-1])

    async def _read_halving(self, dim: str | None, h0: int, h1: int, bound: Bound) -> Groups:
        """Hours [h0, h1) of one dimension; a read that runs past `query_timeout` is read again in two
        halves, down to single hours. A day's read takes a second or two alone, but while a cold start's
        requests scan their windows in SQL on the same cores it can take longer, and one timed-out read
        used to start the whole warm-up over: under a page's polling it never ended."""
        try:
            return await self._read(dim, h0, h1, bound)
        except QueryTimeout:
            if h1 - h0 <= 1:
                raise
            mid = (h0 + h1) // 2
            log.info("rollup read of hours %d-%d past query_timeout: read again in halves", h0, h1)
            halves = [await self._read_halving(dim, a, b, bound) for a, b in ((mid, h1), (h0, mid))]
            return Groups.concat(halves[0].vocab, HOUR_MS, halves)

    def add(self, cells: dict[str | None, Groups]) -> None:
        """Late rows' hourly cells (hours before the horizon): counted by every answer from now on."""
        if self._added is not None:  # hours are being read again: these cells go on top of them too
            self._added.append(cells)
        for dim, groups in cells.items():
            self.views.changed(groups.slot)  # what answers read of these hours and kept is stale
            if dim in self.dropped:
                continue
            self.pending[dim] = Groups.concat(groups.vocab, HOUR_MS, [self.pending.get(dim), groups])
        if sum(len(p) for p in self.pending.values()) > _PENDING_CELLS:
            self._merge({})

    def close(self, horizon: int, cells: dict[str | None, Groups]) -> None:
        """Hours [self.horizon, horizon) closed: their cells, summed from the open rows, join the rollups."""
        old_days = self.horizon // 24
        self._merge(cells)
        self.horizon = horizon
        new_days = horizon // 24
        if new_days > old_days:  # whole days closed: their daily cells, after every day held
            for dim in self.days:
                part = self.parts[dim]
                fresh = _between(part, old_days * 24, new_days * 24).daily()
                self.days[dim] = Groups.concat(part.vocab, HOUR_MS, [self.days[dim], fresh])

    def _merge(self, cells: dict[str | None, Groups]) -> None:
        """Pending late cells (and `cells`) into the sorted rollups and, for whole days, the daily ones:
        inserted in hour order, one column copied at a time (no sort of the whole)."""
        whole_days = self.horizon // 24 * 24
        for changed in (*self.pending.values(), *cells.values()):
            self.views.changed(changed.slot)
        for dim, part in self.parts.items():
            late = self.pending.pop(dim, None)
            added = Groups.concat(part.vocab, HOUR_MS, [late, cells.get(dim)]).narrowed()
            self.parts[dim] = part.insert_sorted(added)
            late_days = _within(late, 0, whole_days)
            if late_days is not None and len(late_days) and dim in self.days:
                self.days[dim] = self.days[dim].insert_sorted(late_days.daily())
        self._enforce_cap()

    def held_bytes(self) -> int:
        return nbytes([*self.parts.values(), *self.days.values(), *self.pending.values()])

    def _enforce_cap(self) -> None:
        """Drop the token rollup when what is held passed the memory cap."""
        if CAPPED in self.parts and not self.cap.fits(self.held_bytes()):
            self._drop(CAPPED)

    def _drop(self, dim: str) -> None:
        """No longer hold `dim`'s rollup: its answers are read from the log (`pick`). Once dropped, nothing
        more: what answers kept stays (an hour read again used to clear it, and at 100M rows the summary's
        two weeks by token were read again, a day at a time)."""
        if dim in self.dropped:
            return
        self.cap.dropped()
        self.dropped.add(dim)
        for held in (self.parts, self.days, self.pending):
            held.pop(dim, None)
        self.views.clear()

    async def wait_for_warm_up(
        self, hours: int, limit: float = RESTORE_WAIT_SECONDS, *, engine_sums: bool = False
    ) -> None:
        """Wait (at most `limit` seconds) while a warm-up runs, for an answer that reads `hours` closed
        hours, rather than read its window in SQL over the raw rows:
        - while a snapshot is restored, any answer: it then comes from memory in a few seconds;
        - while the log itself is read (no snapshot: a deployment's first start, or a lost cache
          directory), an answer over more than COLD_READ_HOURS: on a large log its SQL would not end
          within `query_timeout` (a 504), and would slow the warm-up that every later answer waits for.
          If the warm-up still runs after `limit`, that answer is WarmingUp: a 503 with Retry-After.
        `engine_sums` (ClickHouse, whose engine sums a month of raw rows itself): no answer waits for a
        warm-up from the log, and one over more than COLD_READ_HOURS that a restore outlasts is
        WarmingUp (at 100M rows a restore took 7–11 s, and such a window in SQL 13–20 s: a 504). Once
        such an answer's SQL passed `query_timeout` in this warm-up (`engine_too_slow`), long answers
        wait for it as on the other dialects.
        No wait while no warm-up runs (one that cannot reach the log, a one-shot command's)."""
        if self.ready or not self.warming:
            return
        engine_sums = engine_sums and not self.engine_too_slow
        long = hours > COLD_READ_HOURS
        restoring = self._snapshots is not None and self._snapshots.present() and not self._settled.is_set()
        if not restoring and (engine_sums or not long):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((self._warmed if long and not engine_sums else self._settled).wait(), limit)
        if engine_sums and long and not self._settled.is_set():
            raise WarmingUp(
                f"the service is restoring its sums from the snapshot after its start: an answer over more "
                f"than {COLD_READ_HOURS} hours comes from memory once that ends",
                retry_after=5,
            )
        if not engine_sums and long and self.warming and not self.ready:
            raise self._reading_the_log()

    def timed_out_warming(self, hours: int) -> WarmingUp | None:
        """An answer over `hours` closed hours that arrived while the rollups warmed from the log passed
        `query_timeout`: a 503 `warming-up` rather than a 504, since it comes from memory once warm. Its
        SQL over the window, while they still warm (ClickHouse: `wait_for_warm_up`'s `engine_sums`):
        long answers wait for the warm-up from now on (`engine_too_slow`). Its reads after the warm-up
        ended during its wait, in what was left of its time (at 100M rows on ClickHouse, the first read
        of the open rows takes a second or two): asked again, it comes from memory, Retry-After: 1.
        None (the 504 stands) for a short answer."""
        if hours <= COLD_READ_HOURS:
            return None
        if self.ready or not self.warming:
            return WarmingUp(
                "the service read the log into memory after its start while this answer waited for it, and "
                "what was left of its time did not fit its reads: asked again, it comes from memory",
                retry_after=1,
            )
        self.engine_too_slow = True
        return self._reading_the_log()

    def _reading_the_log(self) -> WarmingUp:
        return WarmingUp(
            f"the service is reading the log into memory after its start ({self.progress:,} hours read so "
            f"far): an answer over more than {COLD_READ_HOURS} hours comes from memory once that ends",
            retry_after=5,
        )

    def begin(self) -> None:
        """A warm-up begins: answers over long windows wait for its end (`wait_for_warm_up`)."""
        self.warm_ups += 1
        self.warming = True
        self.engine_too_slow = False
        self.progress = 0
        self._warmed.clear()

    def settle(self) -> None:
        """A warm-up is over, done or failed: answers that wait for it go on."""
        self.warming = False
        self._settled.set()
        self._warmed.set()

    async def save_if_due(self, lock: asyncio.Lock, bound: Callable[[], Bound]) -> None:
        """Save a snapshot when SAVE_EVERY_HOURS more hours closed since the last one (or none was
        saved or loaded yet): what is held is taken under `lock`, the log's figures read after it."""
        if self._snapshots is None or not self.ready or self.views.filling or not self._due(self._snapshots):
            return  # (pieces being read: saved once they are)
        async with lock:
            if not self.ready:
                return
            self._merge({})
            held, within = self.held(), bound()
        await self._snapshots.save(held, held.parts[None].vocab, within)

    def snapshot_due(self) -> bool | None:
        """Whether what is held is past the snapshot saved or loaded (closed hours, pieces read: saved at
        the maintenance loop's next turn once no pieces are being read), or is being read; None without
        a snapshot file (`cache_dir = off`)."""
        if self._snapshots is None:
            return None
        return not self.ready or bool(self.views.filling) or self._snapshots.saving or self._due(self._snapshots)

    def _due(self, snapshots: Snapshots) -> bool:
        return snapshots.due(self.held())

    def held(self) -> Held:
        pieces = self.views.kept_pieces(self._pieces, self.horizon) if CAPPED in self.dropped else {}
        return Held(self.horizon, dict(self.parts), pieces)

    def fingerprints(self, h0: int, h1: int) -> dict[int, tuple[int, ...]]:
        """Per closed hour of [h0, h1) that holds rows: its FINGERPRINT counts."""
        held = self.slice(None, h0, min(h1, self.horizon))
        return fingerprint(held.slot, held.counts)

    async def reread(self, hours: Iterable[int], bound: Bound) -> None:
        """Read these closed hours again (within `bound`) and put them in place of what is held."""
        wanted = sorted(h for h in set(hours) if h < self.horizon)
        if wanted:
            self._put(wanted, [await self._load_all(h0, h1, bound) for h0, h1 in hour_runs(wanted)])

    async def reread_apart(self, hours: Iterable[int], lock: asyncio.Lock, bound: Callable[[], Bound]) -> bool:
        """`reread`, holding `lock` (the one late rows are added under) only to take the bound and to
        put the hours in place: answers go on while the log is read. The late cells `add` takes in
        between (ids past that bound) are added again on top of the hours read, which lack them.
        False when nothing was put in place: a warm-up began meanwhile, or the log's start moved."""
        async with lock:
            wanted = sorted(h for h in set(hours) if h < self.horizon)
            if not (wanted and self.ready) or self._added is not None:
                return False
            warm_ups, oldest, within, self._added = self.warm_ups, self.oldest_ms, bound(), []
        try:
            fresh = [await self._load_all(h0, h1, within) for h0, h1 in hour_runs(wanted)]
            async with lock:
                added, self._added = self._added, None
                if not self.ready or self.warm_ups != warm_ups or self.oldest_ms != oldest:
                    return False
                self._put(wanted, fresh)
                hours_read = np.asarray(wanted)
                for cells in added:
                    self.add({dim: groups.subset(np.isin(groups.slot, hours_read)) for dim, groups in cells.items()})
                return True
        finally:
            self._added = None

    def _put(self, wanted: list[int], fresh: list[dict[str | None, Groups]]) -> None:
        """The hours `wanted` (sorted), read again in `fresh` (one per run of them), in place of what is held."""
        runs = hour_runs(wanted)
        self._merge({})
        self.views.changed(wanted)
        days = sorted({h // 24 for h in wanted if h // 24 < self.horizon // 24})
        for dim, part in self.parts.items():
            cuts = [_bounds(part, h0, h1) for h0, h1 in runs]
            self.parts[dim] = part.splice(cuts, [f[dim] for f in fresh])
            if days and dim in self.days:  # the daily cells of the days those hours are in, summed again
                daily = self.days[dim]
                redone = [_between(self.parts[dim], d * 24, d * 24 + 24).daily() for d in days]
                self.days[dim] = daily.splice([_bounds(daily, d * 24, d * 24 + 24) for d in days], redone)

    async def follow_oldest(self, oldest_ms: int | None, bound: Bound) -> None:
        """The log's first row moved. Later (retention deleted old days): drop the hours before it and
        read its hour again. Earlier (a backfill): nothing to do, its rows arrive as late rows."""
        if not self.ready or oldest_ms == self.oldest_ms:
            return
        if oldest_ms is None or self.oldest_ms is None:
            self.ready = False  # emptied, or first rows: start over
            self.oldest_ms = oldest_ms
            return
        new = floor_hour(oldest_ms)
        if oldest_ms > self.oldest_ms:
            self._merge({})
            for dim, part in self.parts.items():
                self.parts[dim] = _between(part, new, 2**62)
                if dim in self.days:
                    self.days[dim] = _between(self.days[dim], -(-new // 24) * 24, 2**62)
            self.views.clear()
            await self.reread([new], bound)
        self.oldest_ms = oldest_ms
        log.info("log now starts at %s: rollups follow", from_ms(oldest_ms))


def fingerprint(hours: np.ndarray, counts: dict[str, np.ndarray]) -> dict[int, tuple[int, ...]]:
    """Per hour present in `hours`: the FINGERPRINT counts summed over its cells (or rows)."""
    if not len(hours):
        return {}
    present, inverse = np.unique(hours, return_inverse=True)
    sums = [np.bincount(inverse.reshape(-1), weights=counts[name], minlength=len(present)) for name in FINGERPRINT]
    return {int(h): tuple(round(s[i]) for s in sums) for i, h in enumerate(present.tolist())}


def _bounds(part: Groups, h0: int, h1: int) -> tuple[int, int]:
    """Where hours [h0, h1) are in sorted groups: a slice's start and end."""
    lo, hi = np.searchsorted(part.slot, [h0, h1], side="left")
    return int(lo), int(hi)


def _between(part: Groups, h0: int, h1: int) -> Groups:
    return part.subset(slice(*_bounds(part, h0, h1)))


def _within(groups: Groups | None, h0: int, h1: int) -> Groups | None:
    """The cells of unsorted `groups` in hours [h0, h1)."""
    if groups is None or not len(groups):
        return None
    return groups.subset((groups.slot >= h0) & (groups.slot < h1))


def _sorted(groups: Groups) -> Groups:
    order = np.argsort(groups.slot, kind="stable")
    return groups.subset(order)
